r"""The sort path of ``solvers.numpy`` (finite ``p``): chunks of pools, blocks of columns.

Each chunk of pools (``solvers._policy.chunk_rows``) gets a sorted copy of its positive losses in
their own dtype. On rows of at least ``LOCATE_MIN_N`` losses, one pass of powers over that copy
locates the number ``k`` of capped losses to a window, where it is counted exactly
(``solvers._numpy_capped.locate_capped``). Shorter rows, and rows whose powers would underflow
(``p`` near 1 over a wide range of losses), are counted in full from the first loss whose power can
matter (``_negligible_columns``): passes block by block of columns take suffix log-sum-exps of
$q \log(l / \max l)$ (the dual's $h$ at every loss; ties counted exactly by where their group starts,
so ``p`` as close to 1 as ``1 + 1e-15`` is handled); with the fast extra, short rows are counted by one
compiled sweep each instead (``numba_loops.capped_sweep_rows``). Then come the
threshold and the kernels of ``solvers._numpy_closed_form``. At p = 1 the cut, the counts above and at
it come from binary searches in the sorted rows, and the value from their sorted suffixes. One last
pass over the original losses writes the weights, with powers in the work dtype
(``solvers._policy.computes_in_float64``). Every float64 temporary has the size of one block: about
``BLOCK_LOSSES`` losses, more only when a chunk holds over ``BLOCK_LOSSES / PAIRWISE_BLOCK`` pools (then at
most the chunk, 1/16 of the batch), so the peak extra memory stays within a few times the input's,
even for one pool. Block sums are added as NumPy's pairwise summation adds a row, so the answers of the
full count do not depend on the block size.
"""

from __future__ import annotations

import math

import numpy as np

from ._numpy_closed_form import (
    capped_power_weights,
    holder_coef,
    holder_threshold,
    p1_cap_count,
    p1_share,
)
from . import _numba_loops as numba_loops
from ._numpy_capped import LOCATE_MIN_N, capped_count, locate_capped
from ._policy import chunk_rows, computes_in_float64
from .problem import cap_count, conjugate, finite_in_pool, log_ratio, not_finite, rescaled_power_sum

# Losses per block of columns: small enough to stay in cache.
BLOCK_LOSSES = 2**16
# NumPy's pairwise summation adds runs of up to 128 elements without splitting them: blocks of at
# least this many columns give the sums one np.sum over the whole row gives.
PAIRWISE_BLOCK = 128
PREFIX_MIN_N = 4096  # sorted rows at least this long get their negative prefix cleared row by row
SEARCH_ROWS = 8  # sorted_rank searches up to this many rows one by one


def _positive_part(flat: np.ndarray, mask: np.ndarray | None, dtype=None) -> np.ndarray:
    """A copy of the losses (in ``dtype``, default theirs) with non-positive and masked-out entries
    set to 0 (they get weight 0)."""
    out = np.maximum(flat, 0, dtype=flat.dtype if dtype is None else dtype)
    if mask is not None:
        np.copyto(out, 0, where=~mask)
    return out


def _sorted_positive_part(flat: np.ndarray, mask: np.ndarray | None, check_finite: bool) -> np.ndarray:
    """``_positive_part``, each row sorted ascending. ``check_finite`` (no mask): the losses are sorted as
    they are, checked at the ends (-inf first, +inf and NaN last) and their negative prefix set to 0."""
    if not check_finite:
        y = _positive_part(flat, mask)
        y.sort(axis=1)  # ascending, in place
        return y
    y = np.sort(flat, axis=1)
    if not (np.isfinite(y[:, 0]).all() and np.isfinite(y[:, -1]).all()):
        raise not_finite()
    negative = np.flatnonzero(y[:, 0] < 0)  # rows with negative losses
    if y.shape[1] < PREFIX_MIN_N:  # short rows: one vectorised pass (a Python step per row cost 0.7 s at 2^18 x 4)
        if negative.size:
            np.maximum(y, y.dtype.type(0), out=y)  # -0.0 becomes 0 too, as in _positive_part
        return y
    for row in negative:  # long rows: only the prefix below 0 is written
        y[row, : np.searchsorted(y[row], y.dtype.type(0), side="right")] = 0  # -0.0 too, as np.maximum gives
    return y


def chunk_columns(rows: int, n: int) -> int:
    """Columns per block of a chunk of ``rows`` pools: about ``BLOCK_LOSSES`` losses per block,
    at least ``PAIRWISE_BLOCK`` columns (or the whole pools)."""
    return min(n, max(BLOCK_LOSSES // rows, PAIRWISE_BLOCK))


def sort_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray,
               out: np.ndarray | None = None, value_wanted: bool = True, check_finite: bool = False):
    """The sort path (finite p), chunk by chunk of pools: weights (``flat``'s dtype, into ``out`` if
    given), values, thresholds. ``value_wanted=False``: the values are NaN (their sums are not taken).
    ``check_finite``: raise ``not_finite`` for a NaN or infinite loss in a pool; without a mask, from the
    ends of each sorted chunk (NaN sorts last), with no pass of its own.

    Per chunk: a sorted copy of the positive losses in ``flat``'s dtype, passes over it block by
    block of columns (``chunk_columns``) that find the threshold, then one pass over ``flat`` that
    writes the weights. Every float64 temporary has the size of one block (see the module docstring).
    """
    pools, n = flat.shape
    work = np.dtype(np.float64 if computes_in_float64(flat.dtype == np.float64, p) else np.float32)
    weights = np.empty((pools, n), dtype=flat.dtype) if out is None else out
    value, threshold = np.empty(pools), np.empty(pools)
    if check_finite and mask is not None and not finite_in_pool(flat, mask):
        raise not_finite()
    rows = chunk_rows(pools, n)
    width = chunk_columns(rows, n)
    for start in range(0, pools, rows):
        chunk = slice(start, start + rows)
        losses = flat[chunk], None if mask is None else mask[chunk]
        y = _sorted_positive_part(*losses, check_finite=check_finite and mask is None)
        if p == 1.0:
            value[chunk], threshold[chunk] = _p1_sorted(losses, y, gamma[chunk], tau[chunk], width, weights[chunk],
                                                        value_wanted)
        else:
            weight_of, threshold[chunk] = _holder_weights(y, gamma[chunk], tau[chunk], width, p, work, flat.dtype)
            value[chunk] = _write_weights(losses, weight_of, y[:, -1].astype(np.float64), width, work,
                                          weights[chunk], value_wanted)
    return weights, value, threshold


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


def _write_weights(losses, weight_of, scale: np.ndarray, width: int, work: np.dtype, out: np.ndarray,
                   value_wanted: bool = True) -> np.ndarray:
    """One pass over the losses ``(flat, mask)``: ``out = weight_of(l+)`` block by block (``l+`` in
    ``work``), and the values ``<w, l+>`` (summed in float64 scaled by the pool maxima ``scale``; NaN
    unless ``value_wanted``)."""
    flat, mask = losses
    safe = np.where(scale > 0, scale, 1.0)

    in_place = out.dtype == work  # the weights go straight into out

    def leaf(lo, hi):
        cols = slice(lo, hi)
        lp = _positive_part(flat[:, cols], None if mask is None else mask[:, cols], work)
        w = weight_of(lp, out[:, cols] if in_place else None)
        if not in_place:
            with np.errstate(over="ignore"):  # weights beyond out's dtype: inf, as the cast gives
                out[:, cols] = w
        if not value_wanted:
            return np.full(flat.shape[0], math.nan)
        lp /= safe.astype(work)[:, None]
        lp *= w
        return np.sum(lp, axis=1, dtype=np.float64)  # sum w (l+ / scale)

    return safe * _pairwise(leaf, 0, flat.shape[1], width)


def _p1_sorted(losses, y: np.ndarray, gamma, tau, width: int, out: np.ndarray, value_wanted: bool = True):
    """p = 1 on the chunk ``losses = (flat, mask)`` with ascending positive parts ``y``: the weights
    into ``out`` (one pass over ``flat`` in its dtype), and the values (NaN unless ``value_wanted``) and
    thresholds, from ``y``."""
    threshold, above, at, share = p1_cut(y, gamma, tau)
    tau_above = np.where(above > 0, tau, 0.0)  # nothing above: tau may be inf
    write_p1_rows(losses, threshold, tau_above, share, width, out)
    if not value_wanted:
        return np.full(y.shape[0], math.nan), threshold
    scale = y[:, -1].astype(np.float64)  # sums of losses over the largest: no subnormal sums or products
    scale = np.where(scale > 0, scale, 1.0)
    top = suffix_sums(y, above, scale, width)  # the `above` largest losses of each pool, over the scale
    return scale * (np.where(above > 0, tau_above * top, 0.0) + share * (threshold / scale * at)), threshold


def p1_cut(y: np.ndarray, gamma, tau):
    """p = 1 on ascending rows ``y`` (>= 0): the threshold (the floor(m)-th largest loss, 0-based, or 0
    when every positive loss is capped), the numbers of losses above it and tied at it (positive
    ones), and the share of each tied loss; by binary search in the sorted rows."""
    pools, n = y.shape
    m = p1_cap_count(gamma, tau)
    cut = np.floor(np.minimum(m, n)).astype(np.int64)
    candidate = y[np.arange(pools), n - 1 - np.minimum(cut, n - 1)].astype(np.float64)  # the cut-th largest
    positives = n - sorted_rank(y, np.zeros(pools), strict=False)
    at_most = sorted_rank(y, candidate, strict=False)
    above = n - at_most
    at = np.where(candidate > 0, at_most - sorted_rank(y, candidate, strict=True), 0)
    some_uncapped = cut < positives  # otherwise every positive loss gets tau
    threshold = np.where(some_uncapped, candidate, 0.0)
    above, at = np.where(some_uncapped, above, positives), np.where(some_uncapped, at, 0)
    return threshold, above, at, p1_share(gamma, tau, above, at)


def sorted_rank(y: np.ndarray, v: np.ndarray, strict: bool) -> np.ndarray:
    """For ascending rows ``y``: how many entries of each row are below ``v`` (``strict``) or at most
    ``v``; a binary search vectorised over the rows (``n.bit_length()`` steps), or ``np.searchsorted``
    row by row where the rows are few and ``v`` is exact in their dtype (its Python overhead per step
    then costs more than the loop)."""
    pools, n = y.shape
    exact = v.astype(y.dtype)
    if pools <= SEARCH_ROWS and np.array_equal(exact, v):
        side = "left" if strict else "right"
        return np.array([np.searchsorted(row, value, side=side) for row, value in zip(y, exact)], dtype=np.int64)
    rows, lo, hi = np.arange(pools), np.zeros(pools, dtype=np.int64), np.full(pools, n, dtype=np.int64)
    for _ in range(n.bit_length()):
        mid = (lo + hi) // 2
        entry = y[rows, np.minimum(mid, n - 1)]
        right = (entry < v if strict else entry <= v) & (lo < hi)
        lo, hi = np.where(right, mid + 1, lo), np.where(right | (lo >= hi), hi, mid)
    return lo


def suffix_sums(y: np.ndarray, counts: np.ndarray, scale: np.ndarray, width: int) -> np.ndarray:
    """The sum (float64) of the last ``counts[i]`` entries of each row of ``y`` over ``scale[i]``: the
    pairwise sum of the row with the entries before the suffix as 0, reading only the blocks where
    some row's suffix starts."""
    pools, n = y.shape
    start = n - counts
    first = int(start.min()) if pools else n

    def leaf(lo, hi):
        if hi <= first:
            return np.zeros(pools)
        block = y[:, lo:hi].astype(np.float64)
        np.copyto(block, 0.0, where=np.arange(lo, hi) < start[:, None])
        block /= scale[:, None]
        return np.sum(block, axis=1)

    return _pairwise(leaf, 0, n, width)


def write_p1_rows(losses, threshold: np.ndarray, tau: np.ndarray, share: np.ndarray, width: int,
                  out: np.ndarray) -> None:
    """p = 1 weights of the chunk ``losses = (flat, mask)`` into ``out`` (``flat``'s dtype): ``tau`` above
    the threshold, ``share`` at it where it is positive, 0 below and outside the mask."""
    flat, mask = losses
    t = threshold.astype(flat.dtype)[:, None]  # a loss of the pool (or 0): exact in its dtype
    with np.errstate(over="ignore"):  # tau or the share beyond float16/float32: inf, as the cast gives
        tau_out, share_out = tau.astype(out.dtype)[:, None], share.astype(out.dtype)[:, None]
    share_out = np.where(threshold[:, None] > 0, share_out, 0)
    if mask is None and numba_loops.fits(flat, out):
        return numba_loops.p1_write(flat, t, tau_out, share_out, out)
    finite = bool(np.all(np.isfinite(tau_out)))  # a product with the flags, or else inf * False would be NaN
    for cols in _blocks(flat.shape[1], width):
        block, w = flat[:, cols], out[:, cols]
        if finite:
            np.multiply(block > t, tau_out, out=w)
        else:
            w[...] = np.where(block > t, tau_out, 0)
        np.copyto(w, share_out, where=block == t)
        if mask is not None:
            np.copyto(w, 0, where=~mask[:, cols])


def _holder_weights(y: np.ndarray, gamma, tau, width: int, p: float, work: np.dtype, stored: np.dtype):
    """1 < p < inf on ascending rows ``y``: the number k of capped losses, then the threshold. Rows of at
    least ``LOCATE_MIN_N`` losses are located first (``locate_capped``); the others, and those it does
    not reach, are counted in full (shorter rows compiled where the loops fit).

    Returns ``weight_of(lp, out=None)``, the weights of positive losses in the work dtype (into ``out``
    if given; ``stored``: the dtype they are kept in, as in ``capped_power_weights``), and the thresholds."""
    pools, n = y.shape
    q = conjugate(p)
    m = cap_count(p, gamma, tau)
    if n >= LOCATE_MIN_N:
        k, positives, tail, located = locate_capped(y, q, m, work, width)
    else:
        k, positives, tail, located = (np.zeros(pools, dtype=np.int64), np.zeros(pools, dtype=np.int64),
                                       np.ones(pools), np.zeros(pools, dtype=bool))
    full = slice(None) if not located.any() else np.flatnonzero(~located)  # a slice: no copy of y
    y_full = y[full]
    swept = y_full.size and n < LOCATE_MIN_N and numba_loops.fits(y_full)
    if swept:  # short rows, compiled: the tail sums come with the counts
        k[full], positives[full], swept_tail = numba_loops.capped_sweep_rows(y_full, q, m[full], BLOCK_LOSSES)
        tail[full] = np.where(np.isnan(swept_tail), 1.0, swept_tail)  # NaN: every positive loss capped
    elif y_full.size:
        positives[full] = n - sorted_rank(y_full, np.zeros(y_full.shape[0]), strict=False)
        y_full = y_full[:, _negligible_columns(y_full, q, m[full]):]  # a view
        k[full] = capped_count(y_full, q, m[full], width)[0]
    some_uncapped = k < positives
    ref = y[np.arange(pools), n - 1 - np.minimum(k, n - 1)].astype(np.float64)  # largest uncapped loss
    ref = np.where(some_uncapped, ref, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if y_full.size and not swept:  # >= 1 where some_uncapped: sum_{i>=k} (y_i / y_k)^q, descending
            tail[full] = tail_sum(y_full, k[full], ref[full], q, width)
        coef = holder_coef(gamma, p, m, k, tail)
    threshold = np.where(some_uncapped, holder_threshold(ref, tail, m, k, q), 0.0)

    all_capped = np.flatnonzero(~some_uncapped)  # their coef means nothing: tau for each positive loss

    def weight_of(lp, out=None):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            weights = capped_power_weights(lp, ref[:, None], coef[:, None], q, tau[:, None], out, stored)
        if all_capped.size:
            weights[all_capped] = np.where(lp[all_capped] > 0, tau[all_capped, None], 0.0)
        return weights

    return weight_of, threshold


NEGLIGIBLE_LOG = -750.0  # exp(-750) is below half the smallest float64 subnormal: such a term adds nothing


def _negligible_columns(y: np.ndarray, q: float, m: np.ndarray) -> int:
    """How many leading columns of the ascending rows ``y`` the full count may skip: those below
    ``y_lo exp(NEGLIGIBLE_LOG / q)`` in every row, where ``y_lo`` (column ``n - ceil(m)``) is not capped
    (h >= n - c >= m there). Every h the count needs is at a loss >= y_lo, and the tail sum's ``ref`` is
    one, so each skipped term (l / y)^q is below exp(-750) and changes no sum. Near p = 1 this skips most
    of the row; for small q nothing."""
    pools, n = y.shape
    column = np.clip(n - np.ceil(m), 0, n - 1).astype(np.int64)
    level = y[np.arange(pools), column].astype(np.float64) * math.exp(NEGLIGIBLE_LOG / q)
    if not pools or np.all(level <= y[:, 0]):  # nothing to skip (small q): no search
        return 0
    return int(sorted_rank(y, level, strict=True).min())


def tail_sum(y: np.ndarray, k: np.ndarray, ref: np.ndarray, q: float, width: int) -> np.ndarray:
    """sum over the positive losses of descending rank >= k of (y / ref)^q, block by block,
    summed in descending order (as one np.sum over the descending rows)."""
    n = y.shape[1]

    def leaf(lo, hi):  # descending ranks [lo, hi)
        block = y[:, n - hi : n - lo][:, ::-1].astype(np.float64, order="C")
        beyond = np.arange(lo, hi)[None, :] >= k[:, None]
        with np.errstate(over="ignore", under="ignore"):  # ranks below k (capped) are not summed
            return np.where(beyond & (block > 0), (block / ref[:, None]) ** q, 0.0).sum(axis=1)

    return _pairwise(leaf, 0, n, width)


def capped_and_tail(y: np.ndarray, q: float, m: float, above: int = 0, below: float = 0.0, below_ref: float = 1.0,
                    end: float | None = None) -> tuple[int, int, float, float]:
    """``numba_loops.capped_sweep`` on one ascending row ``y`` (the same arguments and results): compiled where
    the loops fit ``y``, else from ``capped_count`` (every positive loss with h < m) and ``tail_sum``."""
    if numba_loops.fits(y):
        return numba_loops.capped_sweep(y, q, m, above, below, below_ref, end)
    n, row = y.size, y[None, :]
    positives = n - int(np.searchsorted(y, 0, side="right"))

    def below_at(v):  # the sum of (l / v)^q over the losses under the row
        return rescaled_power_sum(below, below_ref, v, q)

    h_end = math.nan if end is None else above + below_at(end) + (
        float(tail_sum(row, np.array([0]), np.array([end]), q, BLOCK_LOSSES)[0]) if positives else 0.0)
    if not positives:
        return 0, 0, math.nan, h_end
    log_below = math.log(below) + q * log_ratio(below_ref, float(y[-1])) if below > 0 else -math.inf
    k = int(capped_count(row, q, np.array([m]), BLOCK_LOSSES, above=above, below=np.array([log_below]))[0][0])
    if k == positives:
        return k, positives, math.nan, h_end
    ref = float(y[n - 1 - k])
    return k, positives, float(tail_sum(row, np.array([k]), np.array([ref]), q, BLOCK_LOSSES)[0]) + below_at(ref), h_end
