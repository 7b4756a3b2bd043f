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
# The sort path holds about a dozen float64 temporaries per loss: it runs over chunks of pools of
# at most 1/16 of the batch (at least 2^16 losses, below which chunks cost more time than they
# save, and at least one pool), so that its peak extra memory stays a fraction of the input's size
# (benchmarks/run.py measures it).
SORT_CHUNKS = 16
SORT_CHUNK_MIN = 2**16
# Below this p a float32 ratio's rounding is amplified more than 8-fold by (l/t)^(q-1): compute in float64.
FLOAT64_BELOW_P = 1.125


def work_dtype(dtype: np.dtype, p: float) -> np.dtype:
    """float64 for float64 input or 1 < p < 1.125 (powers amplify rounding); float32 otherwise.

    p = 1 and p = inf take no powers of the losses, so they stay in float32. Half precision
    is computed in float32.
    """
    amplifying = 1.0 < p < FLOAT64_BELOW_P
    return np.dtype(np.float64) if dtype == np.float64 or amplifying else np.dtype(np.float32)


def _positive_part(flat: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The losses with non-positive and masked-out entries set to 0 (they get weight 0)."""
    keep = flat > 0
    if mask is not None:
        keep &= mask
    return np.where(keep, flat, flat.dtype.type(0))


def chunk_rows(pools: int, n: int, min_elements: int = SORT_CHUNK_MIN) -> int:
    """Pools per chunk of the sort path: 1/``SORT_CHUNKS`` of the batch, at least ``min_elements``
    losses and at least one pool."""
    return max(1, max(min_elements, pools * n // SORT_CHUNKS) // n)


def sort_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray):
    """The sort path (finite p), chunk by chunk of pools: weights (``flat``'s dtype), values, thresholds."""
    pools, n = flat.shape
    weights = np.empty((pools, n), dtype=flat.dtype)
    value, threshold = np.empty(pools), np.empty(pools)
    rows = chunk_rows(pools, n)
    for start in range(0, pools, rows):
        chunk = slice(start, start + rows)
        lp = _positive_part(flat[chunk].astype(np.float64), None if mask is None else mask[chunk])
        w, threshold[chunk] = _solve_pools(lp, p, gamma[chunk], tau[chunk])
        scale = lp.max(axis=1)
        safe = np.where(scale > 0, scale, 1.0)
        value[chunk] = safe * np.sum(w * (lp / safe[:, None]), axis=1)
        weights[chunk] = w
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


def _solve_pools(lp: np.ndarray, p: float, gamma: np.ndarray, tau: np.ndarray):
    """Weights and thresholds for a (pools, n) float64 array of non-negative losses, finite p
    (``lmp_solve`` handles p = inf itself)."""
    if p == 1.0:
        return _solve_p1(lp, gamma, tau)
    return _solve_holder(lp, p, gamma, tau)


def _run_ends(y: np.ndarray) -> np.ndarray:
    """For rows sorted decreasingly: per position, the index just after its group of equal values."""
    n = y.shape[1]
    last = np.ones_like(y, dtype=bool)
    last[:, :-1] = y[:, 1:] != y[:, :-1]
    ends = np.where(last, np.arange(1, n + 1), n)
    return np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]


def _descending(lp: np.ndarray) -> np.ndarray:
    return -np.sort(-lp, axis=1)


def _solve_p1(lp, gamma, tau):
    """p = 1: tau on the losses above the floor(m)-th largest, the remainder shared at the cut."""
    pools, n = lp.shape
    y = _descending(lp)
    positives = np.count_nonzero(y > 0, axis=1)
    m = np.where(np.isinf(tau), 0.0, gamma / tau)
    cut = np.floor(np.minimum(m, n)).astype(np.int64)
    partial = cut < positives  # otherwise every positive loss gets tau
    rows = np.arange(pools)
    threshold = np.where(partial, y[rows, np.minimum(cut, n - 1)], 0.0)
    t = threshold[:, None]
    above = np.count_nonzero(lp > t, axis=1)
    at = np.count_nonzero((lp == t) & (lp > 0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spent = np.where(above > 0, tau * above, 0.0)
        share = np.minimum(tau, (gamma - spent) / np.maximum(at, 1))
    weights = np.where(lp > t, tau[:, None], np.where((lp == t) & (lp > 0), share[:, None], 0.0))
    return weights, threshold


def _solve_holder(lp, p, gamma, tau):
    """1 < p < inf: find the number k of capped losses, then the threshold, then the weights."""
    pools, n = lp.shape
    q = conjugate(p)
    y = _descending(lp)
    top = y[:, 0]
    positives = np.count_nonzero(y > 0, axis=1)
    m = cap_count(p, gamma, tau)
    rows = np.arange(pools)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        # h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q is the dual's h(t) at t = y_j; y_j
        # is capped iff h_j < m. Ties are counted exactly (run ends), only the strictly smaller
        # losses go through log-sums: for q ~ 1e15 (p within 1e-15 of 1) a log-sum of equal terms
        # would lose their count to the rounding of q log(y / top).
        z = q * log_ratio(y, np.where(top > 0, top, 1.0)[:, None])
        tail = np.logaddexp.accumulate(z[:, ::-1], axis=1)[:, ::-1]
        run_end = _run_ends(y)  # first index after the tie group of each position
        below = np.take_along_axis(np.pad(tail, ((0, 0), (0, 1)), constant_values=-np.inf), run_end, axis=1)
        h = run_end + np.exp(np.where(y > 0, below - z, np.inf))
        # Strict "<": then k < m, so the budget left for the uncapped losses is never rounded to 0.
        k = np.count_nonzero((y > 0) & (h < m[:, None]), axis=1)
        partial = k < positives
        ref = y[rows, np.minimum(k, n - 1)]  # largest uncapped loss (where partial)
        ref = np.where(partial, ref, 1.0)
        beyond = np.arange(n)[None, :] >= k[:, None]
        ratio_q = np.where(beyond & (y > 0), (y / ref[:, None]) ** q, 0.0)
        tail_sum = ratio_q.sum(axis=1)  # >= 1 where partial: sum_{i>k} (y_i / y_{k+1})^q
        frac = np.where(k > 0, k / np.where(m > 0, m, 1.0), 0.0)
        budget = gamma * np.exp(np.log1p(-np.minimum(frac, 1.0)) / p)  # (gamma^p - k tau^p)^(1/p)
        coef = budget / tail_sum ** (1.0 / p)
        weights = capped_power_weights(lp, ref[:, None], coef[:, None], q, tau[:, None])
        weights = np.where(lp > 0, weights, 0.0)
        weights = np.where(partial[:, None], weights, np.where(lp > 0, tau[:, None], 0.0))
        # t* solves k + (R_k / t^q) = m: t* = y_{k+1} (tail_sum / (m - k))^(1/q), at most max(l).
        t = ref * np.exp((np.log(tail_sum) - np.log(m - k)) / q)
        threshold = np.where(partial, t, 0.0)
    return weights, threshold
