r"""Closed-form loss max-pooling in NumPy (sort-based, $O(n \log n)$ per pool).

Solves, independently for every pool ``losses[..., :]``,

.. math::

    L(l) = \max \{ \langle w, l \rangle : w \ge 0,\ \|w\|_p \le \gamma,\ w_i \le \tau \}

and returns the canonical (least Euclidean norm) maximizer (``docs/theory.md``, "The closed
form"). With $q = p/(p-1)$ and the cap count $m = (\gamma/\tau)^p$, the maximizer is

.. math::

    w_i = \tau \min\left(1, (l_i / t^*)^{q-1}\right) \ \text{for}\ l_i > 0, \qquad
    \sum_i \min\left(1, (l_i^+ / t^*)^q\right) = m,

that is, the ``k`` largest losses sit at the cap and the rest follow Hölder's weighting
$c\, l_i^{q-1}$ with what is left of the norm budget. ``p = 1`` is the top-``m`` mean
(the CVaR, fractional ``m`` exact, ties at the cut sharing equally) and ``p = inf`` gives
$\min(\gamma, \tau)$ to every positive loss.

Numerics: losses are scaled by the pool maximum, the number ``k`` of capped entries is found
from suffix log-sum-exps of $q \log l$, and the threshold is then recomputed with a
pairwise sum scaled by the largest uncapped loss, so that $l^q$ never overflows or
underflows into a wrong answer, for ``p`` as close to 1 as ``1 + 1e-3`` (``q ~ 1000``) and as
large as ``1e6``. Computation is in float64 whatever the input dtype; weights come back in the
input's floating dtype.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import numpy as np

from lmp_theory.problem import (
    cap_count,
    check_gamma,
    check_losses,
    check_p,
    check_pool_parameter,
    check_tau,
    conjugate,
    log_ratio,
)

from ._numpy_select import SAMPLE, capped_power_weights, select_holder, select_p1

__all__ = ["lmp_weights", "lmp_value", "lmp_solve", "LMPResult"]


class LMPResult(NamedTuple):
    """Weights (shape of ``losses``), values and thresholds (shape ``losses.shape[:-1]``)."""

    weights: np.ndarray
    value: np.ndarray
    threshold: np.ndarray


def lmp_weights(losses, p, gamma, tau, *, mask=None, method: str = "auto") -> np.ndarray:
    r"""Canonical maximizer $w^*$ of $\langle w, l \rangle$ over the LMP set.

    Parameters
    ----------
    losses : array_like, shape (..., n)
        Every leading index is an independent pool over the last axis. Must be finite in the pool.
        A ``np.ma.MaskedArray``'s masked entries are out of the pool (combined with ``mask``).
    p : float
        Norm exponent: ``1``, any float ``> 1``, or ``inf``.
    gamma : float or array_like
        Norm budget ``> 0`` (finite), scalar or broadcastable to ``losses.shape[:-1]``.
    tau : float or array_like
        Per-weight cap ``> 0``; ``inf`` means no cap. Scalar or broadcastable like ``gamma``.
    mask : bool ndarray of shape ``losses.shape``, optional
        True = in the pool. Entries outside get weight 0 and are not inspected.
    method : {"auto", "sort", "select"}
        ``"sort"``: vectorised over chunks of pools, $O(n \log n)$; ``"select"``: pool by pool,
        expected $O(n)$ (sampled bracket, then exact; pools below 4,096 losses take the sort
        path); ``"auto"``: select for pools of at least 16,384 losses, sort otherwise. All give
        the same canonical answer.

    Returns
    -------
    ndarray
        Weights with the shape and floating dtype of ``losses`` (float64 for integer input).
    """
    return lmp_solve(losses, p, gamma, tau, mask=mask, method=method).weights


def lmp_value(losses, p, gamma, tau, *, mask=None, method: str = "auto"):
    r"""The pooled loss $L(l) = \langle w^*, l \rangle$, one value per pool.

    Same arguments as ``lmp_weights``; returns an array of shape ``losses.shape[:-1]``
    (a scalar for 1-D losses). An empty pool has value 0.
    """
    return lmp_solve(losses, p, gamma, tau, mask=mask, method=method).value


def lmp_solve(losses, p, gamma, tau, *, mask=None, method: str = "auto") -> LMPResult:
    r"""Weights, values and thresholds $t^*$ of every pool.

    $t^*$ is the root of $\sum_i \min(1, (l_i^+/t)^q) = m$, the loss level at which
    weights reach the cap ($w_i = \tau \min(1, (l_i/t^*)^{q-1})$); it minimises the dual
    function $g(t) = \tau \sum_i (l_i - t)^+ + \gamma \|\min(l^+, t)\|_q$ (claim ``dual``).
    It is 0 when every positive loss is capped and ``inf`` when there is no cap.
    Same arguments as ``lmp_weights``.
    """
    p = check_p(p)
    if method not in ("auto", "sort", "select"):
        raise ValueError(f"method must be 'auto', 'sort' or 'select', got {method!r}")
    gamma = check_gamma(gamma)
    tau = check_tau(tau)
    arr, mask = check_losses(losses, mask)
    batch_shape, n = arr.shape[:-1], arr.shape[-1]
    gamma = check_pool_parameter(gamma, "gamma", batch_shape).reshape(-1)
    tau = check_pool_parameter(tau, "tau", batch_shape).reshape(-1)
    out_dtype = arr.dtype

    pools = math.prod(batch_shape)
    flat_mask = None if mask is None else mask.reshape(pools, n)
    if n == 0 or pools == 0:
        weights, value, threshold = np.zeros((pools, n)), np.zeros(pools), np.zeros(pools)
    elif math.isinf(p):  # min(gamma, tau) on every positive loss: one vectorised pass, no copies
        positive = arr.reshape(pools, n) > 0
        if flat_mask is not None:
            positive &= flat_mask
        cap = np.minimum(gamma, tau)
        weights = np.where(positive, cap.astype(arr.dtype)[:, None], arr.dtype.type(0))
        value = cap * np.sum(arr.reshape(pools, n), axis=1, where=positive, dtype=np.float64)
        threshold = np.where(gamma >= tau, 0.0, np.inf)
    elif method == "sort" or (method == "auto" and n < AUTO_SELECT_MIN_N):
        weights, value, threshold = sort_pools(arr.reshape(pools, n), flat_mask, p, gamma, tau)
    else:
        weights, value, threshold = select_pools(arr.reshape(pools, n), flat_mask, p, gamma, tau)
    weights = weights.reshape(arr.shape).astype(out_dtype, copy=False)
    value = value.reshape(batch_shape).astype(out_dtype, copy=False)[()]
    threshold = threshold.reshape(batch_shape)[()]
    return LMPResult(weights, value, threshold)


AUTO_SELECT_MIN_N = 16384
# method="select" on pools below the selection core's sample size would sort each whole pool in a
# Python loop: such pools take the vectorised sort path instead (same answer).
SELECT_MIN_N = SAMPLE
# The sort path runs over chunks of whole pools, 1/16 of the batch (at least 2^16 losses, below which
# chunks cost more time than they save, and at least one pool), and passes over each chunk in blocks
# of columns of about 2^16 losses. Besides the weights it holds the sorted copy of one chunk (in the
# input's dtype) and the temporaries of one block (up to about eight float64 values per loss), so
# that its peak extra memory stays within a few times the input's size, even for one pool
# (benchmarks/run.py measures it).
SORT_CHUNKS = 16
SORT_CHUNK_MIN = 2**16
# NumPy's pairwise summation adds blocks of up to 128 values without splitting them: sums over blocks
# of at least 128 columns, split as it splits (_pairwise), are the sums of one np.sum over the rows.
PAIRWISE_BLOCK = 128
# Below this p a float32 ratio's rounding is amplified more than 8-fold by (l/t)^(q-1): compute in float64.
FLOAT64_BELOW_P = 1.125


def work_dtype(dtype: np.dtype, p: float) -> np.dtype:
    """float64 for float64 input or 1 < p < 1.125 (powers amplify rounding); float32 otherwise.

    p = 1 and p = inf take no powers of the losses, so they stay in float32. Half precision
    is computed in float32.
    """
    amplifying = 1.0 < p < FLOAT64_BELOW_P
    return np.dtype(np.float64) if dtype == np.float64 or amplifying else np.dtype(np.float32)


def _positive_part(flat: np.ndarray, mask: np.ndarray | None, dtype=None) -> np.ndarray:
    """A copy of the losses (in ``dtype``, default theirs) with non-positive and masked-out entries
    set to 0 (they get weight 0)."""
    out = flat.astype(flat.dtype if dtype is None else dtype)
    drop = out <= 0
    if mask is not None:
        drop |= ~mask
    np.copyto(out, 0, where=drop)
    return out


def chunk_elements(pools: int, n: int, min_elements: int | None = None) -> int:
    """Losses per chunk of the sort path: 1/``SORT_CHUNKS`` of the batch, at least ``min_elements``
    (default ``SORT_CHUNK_MIN``)."""
    return max(SORT_CHUNK_MIN if min_elements is None else min_elements, pools * n // SORT_CHUNKS)


def chunk_rows(pools: int, n: int, min_elements: int | None = None) -> int:
    """Pools per chunk of the sort path: a chunk's worth of losses (``chunk_elements``), at least one pool."""
    return max(1, chunk_elements(pools, n, min_elements) // n)


def chunk_columns(rows: int, n: int) -> int:
    """Columns per block of a chunk of ``rows`` pools: about ``SORT_CHUNK_MIN`` losses per block
    (small enough to stay in cache), at least ``PAIRWISE_BLOCK`` columns (or the whole pools)."""
    return min(n, max(SORT_CHUNK_MIN // rows, PAIRWISE_BLOCK))


def sort_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray):
    """The sort path (finite p), chunk by chunk of pools: weights (``flat``'s dtype), values, thresholds.

    Per chunk: a sorted copy of the positive losses in ``flat``'s dtype, passes over it block by
    block of columns (``chunk_columns``) that find the threshold, then one pass over ``flat`` that
    writes the weights. Every float64 temporary of pool size has the size of one block.
    """
    pools, n = flat.shape
    weights = np.empty((pools, n), dtype=flat.dtype)
    value, threshold = np.empty(pools), np.empty(pools)
    rows = chunk_rows(pools, n)
    width = chunk_columns(rows, n)
    for start in range(0, pools, rows):
        chunk = slice(start, start + rows)
        losses = flat[chunk], None if mask is None else mask[chunk]
        y = _positive_part(*losses)
        y.sort(axis=1)  # ascending, in place: in float64 the same values, since the conversion is exact
        solve = _p1_weights if p == 1.0 else partial(_holder_weights, p=p)
        weight_of, threshold[chunk] = solve(y, gamma[chunk], tau[chunk], width)
        value[chunk] = _write_weights(losses, weight_of, y[:, -1].astype(np.float64), width, weights[chunk])
    return weights, value, threshold


def select_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray):
    """Pool by pool with the selection core (finite p): weights (``flat``'s dtype), values, thresholds.

    Memory: the weights, the pool's positive losses (a copy unless every loss is positive, in the
    work dtype), one weight buffer for them and a few boolean masks of one pool. Pools below
    ``SELECT_MIN_N`` losses take the sort path, vectorised over pools.
    """
    pools, n = flat.shape
    if n < SELECT_MIN_N:
        return sort_pools(flat, mask, p, gamma, tau)
    work = work_dtype(flat.dtype, p)
    weights = np.zeros((pools, n), dtype=flat.dtype)
    value, threshold = np.zeros(pools), np.zeros(pools)
    for i in range(pools):
        row = flat[i]
        positive = row > 0
        if mask is not None:
            positive &= mask[i]
        dense = bool(positive.all())
        x = (row if dense else np.extract(positive, row)).astype(work, copy=False)  # extract: no index array
        if x.size == 0:
            continue
        in_place = dense and work == flat.dtype  # dense pools are solved in place
        out = weights[i] if in_place else np.empty_like(x)
        solved = _select_one(x, p, float(gamma[i]), float(tau[i]), out)
        if solved is None:  # the sampled bracket missed: the sort path for this pool
            w_row, v_row, t_row = sort_pools(flat[i : i + 1], None if mask is None else mask[i : i + 1],
                                             p, gamma[i : i + 1], tau[i : i + 1])
            weights[i], value[i], threshold[i] = w_row[0], v_row[0], t_row[0]
            continue
        threshold[i], value[i] = solved
        if dense and not in_place:
            weights[i] = out
        elif not dense:
            np.place(weights[i], positive, out.astype(weights.dtype, copy=False))  # no index array, unlike w[mask] = ...
    return weights, value, threshold


def _select_one(x: np.ndarray, p: float, gamma: float, tau: float, out: np.ndarray):
    """(threshold, value) for the positive losses x of one pool, finite p, weights into ``out``;
    None on a miss."""
    if p == 1.0:
        return select_p1(x, gamma, tau, out)
    m = float(cap_count(p, gamma, tau))
    if x.size <= m:
        out[...] = tau
        return 0.0, tau * float(np.sum(x, dtype=np.float64))
    if m == 0.0:  # no cap: Hölder's weighting, L = gamma ||x||_q
        q = conjugate(p)
        top = float(x.max())
        with np.errstate(under="ignore"):
            norm = float(np.sum((x / x.dtype.type(top)) ** q, dtype=np.float64))  # sum (x/top)^q, >= 1
        capped_power_weights(x, top, gamma / norm ** (1.0 / p), q, math.inf, out=out)
        return math.inf, gamma * top * norm ** (1.0 / q)
    return select_holder(x, p, gamma, tau, m, out)


def _blocks(n: int, width: int):
    """Slices of ``width`` columns covering ``range(n)``, in order."""
    return [slice(lo, min(lo + width, n)) for lo in range(0, n, width)]


def _pairwise(leaf, lo: int, hi: int, width: int) -> np.ndarray:
    """Row sums over columns ``[lo, hi)`` from ``leaf(lo, hi)`` (row sums of at most ``width``
    columns), split and added as NumPy's pairwise summation splits a row (halves rounded down to a
    multiple of 8), so that for ``width >= PAIRWISE_BLOCK`` they are the sums that one ``np.sum``
    over the whole rows gives. Leaves are visited from left to right.
    """
    if hi - lo <= width:
        return leaf(lo, hi)
    half = (hi - lo) // 2
    half = half - half % 8 or half  # widths below 16 (tests): plain halves
    return _pairwise(leaf, lo, lo + half, width) + _pairwise(leaf, lo + half, hi, width)


def _write_weights(losses, weight_of, scale: np.ndarray, width: int, out: np.ndarray) -> np.ndarray:
    """One pass over the losses ``(flat, mask)``: ``out = weight_of(l+)`` block by block (``l+`` in
    float64), and the values ``<w, l+>`` (summed scaled by the pool maxima ``scale``)."""
    flat, mask = losses
    safe = np.where(scale > 0, scale, 1.0)

    def leaf(lo, hi):
        cols = slice(lo, hi)
        lp = _positive_part(flat[:, cols], None if mask is None else mask[:, cols], np.float64)
        w = weight_of(lp)
        out[:, cols] = w
        lp /= safe[:, None]
        lp *= w
        return np.sum(lp, axis=1)  # sum w (l+ / scale)

    return safe * _pairwise(leaf, 0, flat.shape[1], width)


def _p1_weights(y: np.ndarray, gamma, tau, width: int):
    """p = 1 on ascending rows ``y``: tau on the losses above the floor(m)-th largest, the remainder
    shared at the cut. Returns the weights as a function of the (float64) positive losses, and the
    thresholds."""
    pools, n = y.shape
    m = np.where(np.isinf(tau), 0.0, gamma / tau)
    cut = np.floor(np.minimum(m, n)).astype(np.int64)
    candidate = y[np.arange(pools), n - 1 - np.minimum(cut, n - 1)].astype(np.float64)  # the cut-th largest
    positives, above, at = (np.zeros(pools, dtype=np.int64) for _ in range(3))
    for cols in _blocks(n, width):
        block = y[:, cols]
        positives += np.count_nonzero(block > 0, axis=1)
        above += np.count_nonzero(block > candidate[:, None], axis=1)
        at += np.count_nonzero((block == candidate[:, None]) & (block > 0), axis=1)
    partial = cut < positives  # otherwise every positive loss gets tau
    threshold = np.where(partial, candidate, 0.0)
    above, at = np.where(partial, above, positives), np.where(partial, at, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spent = np.where(above > 0, tau * above, 0.0)
        share = np.minimum(tau, (gamma - spent) / np.maximum(at, 1))
    t = threshold[:, None]

    def weight_of(lp):
        weights = np.where((lp == t) & (lp > 0), share[:, None], 0.0)
        np.copyto(weights, tau[:, None], where=lp > t)
        return weights

    return weight_of, threshold


def _holder_weights(y: np.ndarray, gamma, tau, width: int, p: float):
    """1 < p < inf on ascending rows ``y``: the number k of capped losses, then the threshold.
    Returns the weights as a function of the (float64) positive losses, and the thresholds."""
    pools, n = y.shape
    q = conjugate(p)
    m = cap_count(p, gamma, tau)
    k, positives = _capped_count(y, q, m, width)
    partial = k < positives
    ref = y[np.arange(pools), n - 1 - np.minimum(k, n - 1)].astype(np.float64)  # largest uncapped loss
    ref = np.where(partial, ref, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        tail_sum = _tail_sum(y, k, ref, q, width)  # >= 1 where partial: sum_{i>=k} (y_i / y_k)^q, descending
        frac = np.where(k > 0, k / np.where(m > 0, m, 1.0), 0.0)
        budget = gamma * np.exp(np.log1p(-np.minimum(frac, 1.0)) / p)  # (gamma^p - k tau^p)^(1/p)
        coef = budget / tail_sum ** (1.0 / p)
        # t* solves k + (R_k / t^q) = m: t* = y_{k+1} (tail_sum / (m - k))^(1/q), at most max(l).
        t = ref * np.exp((np.log(tail_sum) - np.log(m - k)) / q)
    threshold = np.where(partial, t, 0.0)

    def weight_of(lp):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            weights = capped_power_weights(lp, ref[:, None], coef[:, None], q, tau[:, None])
        np.copyto(weights, 0.0, where=lp <= 0)
        np.copyto(weights, tau[:, None], where=(lp > 0) & ~partial[:, None])  # every positive loss capped
        return weights

    return weight_of, threshold


def _capped_count(y: np.ndarray, q: float, m: np.ndarray, width: int):
    """Per row of ascending losses ``y``: the number k of capped losses and the number of positive ones.

    The loss y_j is capped iff h_j < m, where h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q
    is the dual's h(t) at t = y_j. Strict "<": then k < m, so the budget left for the uncapped
    losses is never rounded to 0. Ties are counted exactly (the start of each tie group), only
    the strictly smaller losses go through log-sums: for q ~ 1e15 (p within 1e-15 of 1) a log-sum
    of equal terms would lose their count to the rounding of q log(y / top). One pass from the
    smallest loss, block by block, carrying the running log-sum of (y_i / top)^q and the tie group
    that the previous block ended in.
    """
    pools, n = y.shape
    top = y[:, -1].astype(np.float64)
    scale = np.where(top > 0, top, 1.0)[:, None]
    k, positives = np.zeros(pools, dtype=np.int64), np.zeros(pools, dtype=np.int64)
    # the log-sum over the losses before the block, the start of the tie group that the previous
    # block ended in, the log-sum over the losses below that group, the previous block's last loss
    carry = np.full((pools, 1), -np.inf), np.zeros(pools, dtype=np.int64), np.full(pools, -np.inf), None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for cols in _blocks(n, width):
            capped, positive, carry = _capped_in_block(y[:, cols], cols.start, n, q, scale, m, carry)
            k += capped
            positives += positive
    return k, positives


def _capped_in_block(y_block, offset: int, n: int, q: float, scale, m, carry):
    """``_capped_count`` on the block of columns ``[offset, offset + width)``: the counts of capped
    and of positive losses in it, and the carry for the next block."""
    log_sum, group_start, group_below, previous = carry
    block = y_block.astype(np.float64)
    z = log_ratio(block, scale)
    z *= q
    sums = np.concatenate([log_sum, z], axis=1)  # sums[:, i]: the log-sum before block[:, i]
    np.logaddexp.accumulate(sums, axis=1, out=sums)
    start = _group_starts(block, previous, group_start, offset)
    index = start - offset
    np.maximum(index, 0, out=index)
    below = np.take_along_axis(sums, index, axis=1)  # the log-sum over the losses below the tie group
    np.copyto(below, group_below[:, None], where=start < offset)  # the group began in an earlier block
    carry = sums[:, -1:].copy(), start[:, -1].copy(), below[:, -1].copy(), block[:, -1].copy()
    del sums, index
    np.subtract(below, z, out=z)
    np.copyto(z, np.inf, where=block <= 0)
    np.exp(z, out=z)
    np.subtract(n, start, out=start)  # #{y_i >= y_j}
    z += start  # h_j
    positive = block > 0
    return np.count_nonzero(positive & (z < m[:, None]), axis=1), np.count_nonzero(positive, axis=1), carry


def _group_starts(block: np.ndarray, previous, group_start: np.ndarray, offset: int) -> np.ndarray:
    """Per entry of an ascending block (columns from ``offset``): the column where its tie group starts.

    ``previous`` is the last loss of the previous block (None for the first block) and
    ``group_start`` the start of the tie group it belongs to.
    """
    first = np.empty(block.shape, dtype=bool)  # the first loss of its tie group
    first[:, 1:] = block[:, 1:] != block[:, :-1]
    first[:, 0] = True if previous is None else block[:, 0] != previous
    start = np.where(first, np.arange(offset, offset + block.shape[1]), -1)
    start[:, 0] = np.where(first[:, 0], offset, group_start)
    np.maximum.accumulate(start, axis=1, out=start)
    return start


def _tail_sum(y: np.ndarray, k: np.ndarray, ref: np.ndarray, q: float, width: int) -> np.ndarray:
    """sum over the positive losses of descending rank >= k of (y / ref)^q, block by block,
    summed in descending order (as one np.sum over the descending rows)."""
    n = y.shape[1]

    def leaf(lo, hi):  # descending ranks [lo, hi)
        block = y[:, n - hi : n - lo][:, ::-1].astype(np.float64, order="C")
        beyond = np.arange(lo, hi)[None, :] >= k[:, None]
        return np.where(beyond & (block > 0), (block / ref[:, None]) ** q, 0.0).sum(axis=1)

    return _pairwise(leaf, 0, n, width)
