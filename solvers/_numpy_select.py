r"""Selection-based exact solver (expected $O(n)$ per pool): the private core of ``method="select"``.

Sorting the pool is not needed: the answer is fixed by the threshold $t^*$ and the number ``k``
of capped losses. As in Floyd–Rivest selection (and the linear-time simplex projections of
Duchi et al. 2008 and Condat 2016), a sorted random sample of 4,096 to 16,384 losses gives an estimate of
$t^*$ and a bracket ``[t_lo, t_hi]`` of sample values around it. One pass over the pool
(``_collect``, block by block) then keeps the losses of the smaller side of the bracket: those
above ``t_lo`` (*upper* side, when few are capped) or those below ``t_hi`` (*lower* side, when
most are). Of the rest it needs only counts and, on the upper side, one power sum
$\sum_{l \le t_{lo}} (l / t_{lo})^q$ (``t_lo`` is itself a loss, so this sum is at least 1 and
nothing in it overflows or cancels). The kept losses are sorted in place and solved exactly by
``capped_and_tail`` (the dual's $h$ at every kept loss, ties counted exactly: the fast extra's sweep or
the sort path's kernels); the bracket
end on the far side is verified with $h$, and if the sample missed, the caller falls back to the
sort path, so the answer is always the exact one. A second pass writes the weights. At p = 1 the
first pass keeps only the losses inside the bracket and counts those above it (``_p1_inside``): the
answer is the cut-th largest loss, which needs no power sums; a side is collected only on a miss. The
p = 1 weights of all pools are written after the loop, in one call where each pool had its cut inside.

Passes run over blocks of ``BLOCK`` losses converted to the work dtype (``solvers._policy``), so
no pool-sized copy is made in float64 or float32. Memory: the weights, the kept side (at most
about half the pool, in the input's dtype), and a few block-sized buffers.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ._numpy_closed_form import (
    EXP_FAST,
    capped_power_weights,
    holder_coef,
    holder_threshold,
    negligible_log,
    p1_cap_count,
    p1_share,
    power,
    scale_weights,
)
from . import _numba_loops as numba_loops
from ._numpy_sort import capped_and_tail, sort_pools, write_p1_rows
from ._policy import computes_in_float64
from .problem import cap_count, conjugate, finite_in_pool, log_ratio, not_finite
from .problem import exp_or_inf as _exp

SAMPLE_MIN, SAMPLE_MAX = 4096, 16384  # the sample grows as n / 128 between these: a narrower bracket
# method="select" on pools below the smallest sample would sort each whole pool in a Python loop:
# such pools take the vectorised sort path instead (same answer).
SELECT_MIN_N = SAMPLE_MIN
# a compiled p = 1 pass keeps room for FACTOR times the losses the sample expects inside, plus MARGIN
_CAPACITY_FACTOR, _CAPACITY_MARGIN = 2, 1024
MARGIN = 4.0  # bracket half-width in standard deviations of the sample rank
BLOCK = 2**16  # losses per block of a pass: its temporaries stay in cache
# Above this fraction of the scale, the losses whose powers matter are few enough (p near 1) to be
# gathered first: a log and an exp for each of them only (measured 10x cheaper per block at p = 1.001).
SPARSE_LEVEL = 0.25


class _Pool:
    """One pool: its losses ``row`` (their own dtype), ``mask`` (or None) and the work dtype."""

    def __init__(self, row: np.ndarray, mask: np.ndarray | None, work: np.dtype, unchecked: bool = False):
        self.row, self.mask, self.work = row, mask, work
        self.size = row.size if mask is None else int(np.count_nonzero(mask))
        self._buffer = None  # for the blocks' positive parts, made by the first ``blocks`` that needs it
        self.unchecked = unchecked  # whether the pool's losses are still to be checked finite

    def require_finite(self, finite: bool | None = None) -> None:
        """Raise ``not_finite`` for a NaN or infinite loss in the pool, unless it was checked already;
        ``finite``: the answer of a pass that checked it (otherwise the pool is checked here)."""
        if self.unchecked:
            if not (finite_in_pool(self.row, self.mask) if finite is None else finite):
                raise not_finite()
            self.unchecked = False

    def compiled(self, *arrays: np.ndarray) -> bool:
        """Whether the compiled loops can read this pool (with ``arrays``): no mask, the losses in the work
        dtype, and ``numba_loops.fits``."""
        return self.mask is None and self.row.dtype == self.work and numba_loops.fits(self.row, *arrays)

    def blocks(self):
        """``(columns, l+, smallest)`` per block: the positive parts in the work dtype, 0 outside the
        mask (read-only, valid until the next block), and their smallest value where it was computed
        anyway (else None). A block of non-negative losses in the work dtype without a mask is its own
        positive part and comes as a view (the copy would cost more than the check); any other block
        is converted into one reused buffer."""
        as_is = self.mask is None and self.row.dtype == self.work
        for lo in range(0, self.row.size, BLOCK):
            cols = slice(lo, min(lo + BLOCK, self.row.size))
            block = self.row[cols]
            smallest = block.min() if as_is else None
            if as_is and smallest >= 0:
                yield cols, block, smallest
                continue
            if self._buffer is None:
                self._buffer = np.empty(min(BLOCK, self.row.size), dtype=self.work)
            lp = self._buffer[: cols.stop - lo]
            np.maximum(block, self.work.type(0), out=lp, dtype=self.work)
            if self.mask is not None:
                np.copyto(lp, 0, where=~self.mask[cols])
            yield cols, lp, None

    def sample(self) -> np.ndarray:
        """A random sample of the pool's positive parts in float64, sorted decreasingly (fixed seed:
        the same pool gives the same sample; random, so that periodic structure cannot alias)."""
        n = self.row.size
        index = _sample_index(n)
        if self.mask is not None:
            index = index[self.mask[index]]
        sample = np.sort(np.maximum(self.row[index], self.row.dtype.type(0)))[::-1].astype(np.float64)
        if self.unchecked and sample.size and not (np.isfinite(sample[0]) and np.isfinite(sample[-1])):
            self.require_finite()  # inf sorts first, NaN last: raises before the sample is used
        return sample


@functools.lru_cache(maxsize=16)
def _sample_index(n: int) -> np.ndarray:
    """The positions sampled from every pool of ``n`` losses (read-only; drawing them per pool cost as
    much as the gather)."""
    size = sample_size(n)
    index = np.random.default_rng(n).integers(0, n, size) if n > size else np.arange(n)
    index.flags.writeable = False
    return index


def sample_size(n: int) -> int:
    """The number of losses sampled from a pool of ``n``: ``n / 128`` within ``[SAMPLE_MIN, SAMPLE_MAX]``
    (the bracket's width is about ``8 sqrt(j) n / s`` losses, so the pass keeps fewer as ``s`` grows,
    while the sample's sort stays a small part of the pass)."""
    return min(SAMPLE_MAX, max(SAMPLE_MIN, n // 128))


def select_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray,
                 value_wanted: bool = True, check_finite: bool = False):
    """Pool by pool with the selection core (finite p): weights (``flat``'s dtype), values, thresholds.
    ``value_wanted=False`` lets a pool's value be NaN where computing it would cost a pass.
    ``check_finite``: raise ``not_finite`` for a NaN or infinite loss in a pool, before the pool's losses
    are used beyond its sample (whose ends are checked): in the compiled first pass where it runs,
    otherwise in a pass of its own (``_Pool.require_finite``).

    Pools below ``SELECT_MIN_N`` losses take the sort path, vectorised over pools; so does a pool
    whose sampled bracket missed (into its own row of the weights).
    """
    pools, n = flat.shape
    if n < SELECT_MIN_N:
        return sort_pools(flat, mask, p, gamma, tau, value_wanted=value_wanted, check_finite=check_finite)
    work = np.dtype(np.float64 if computes_in_float64(flat.dtype == np.float64, p) else np.float32)
    weights = np.empty((pools, n), dtype=flat.dtype)
    value, threshold = np.zeros(pools), np.zeros(pools)
    caps = p1_cap_count(gamma, tau) if p == 1.0 else cap_count(p, gamma, tau)
    cuts = []  # p = 1: (pool, threshold, weight above, weight at it), written together after the loop
    for i in range(pools):
        rows = slice(i, i + 1)
        pool = _Pool(flat[i], None if mask is None else mask[i], work, unchecked=check_finite)
        g, t, m = float(gamma[i]), float(tau[i]), float(caps[i])
        if m >= pool.size:  # room for every loss at the cap (m may be inf: no bracket to take)
            pool.require_finite()
            solved = _all_capped(pool, t, weights[i])
        elif p == 1.0:
            solved = _select_p1(pool, m, g, t, weights[i], value_wanted)
            if solved is not None:
                solved, cut = solved[:2], solved[2]
                if cut is not None:
                    cuts.append((i, *cut))
        else:
            solved = _select_holder(pool, p, m, g, t, weights[i], value_wanted)
        if solved is None:  # the sampled bracket missed: the sort path for this pool
            _, value[rows], threshold[rows] = sort_pools(flat[rows], None if mask is None else mask[rows],
                                                         p, gamma[rows], tau[rows], out=weights[rows])
        else:
            threshold[i], value[i] = solved
    _write_p1_cuts(flat, mask, cuts, weights)
    return weights, value, threshold


def _bracket(sample: np.ndarray, rank: float, size: int):
    """Sample values bracketing the loss of (real, descending) rank ``rank`` among ``size``:
    ``(t_lo, t_hi)``, ``t_lo = 0`` past the sample's end, ``t_hi = inf`` before its start."""
    s = sample.size
    j = rank * s / size
    spread = MARGIN * math.sqrt(max(j, 1.0)) + 2.0
    hi_index, lo_index = int(math.floor(j - spread)), int(math.ceil(j + spread))
    t_hi = math.inf if hi_index < 0 else float(sample[min(hi_index, s - 1)])
    t_lo = 0.0 if lo_index >= s else float(sample[max(lo_index, 0)])
    return t_lo, t_hi


def _upper_side(sample: np.ndarray, t_lo: float, t_hi: float) -> bool:
    """Whether to keep the losses above ``t_lo`` (rather than those below ``t_hi``): the side the
    sample says is smaller."""
    return t_hi == math.inf or np.count_nonzero(sample > t_lo) <= np.count_nonzero((sample < t_hi) & (sample > 0))


class _Side(NamedTuple):
    """What one pass over a pool keeps of it (``_collect``)."""

    kept: np.ndarray  # the positive losses above t_lo (upper side) or below t_hi, unsorted, input dtype
    index: np.ndarray | None  # their positions in the pool (for 1 < p < inf)
    positives: int  # positive losses in the pool
    at_end: int  # p = 1: losses equal to the bracket end on the kept side (t_lo or t_hi), 0 for t_lo = 0
    power_sum: float  # upper side, finite q: sum of (min(l+, t_lo) / t_lo)^q (each kept loss adds 1)
    top: float  # lower side: the largest loss
    total: float  # lower side: the sum of l+ (float64)


def _collect(pool: _Pool, t_lo: float, t_hi: float, upper: bool, q: float | None = None,
             powers: np.ndarray | None = None) -> _Side:
    r"""One pass over the pool, block by block: the kept side of the bracket and the statistics of the rest.

    With ``powers`` (the weights' row, in the work dtype; upper side, finite ``q``), it also receives
    $(\min(l^+, t_{lo}) / t_{lo})^{q-1}$, which the weights of the losses below ``t_lo`` are a multiple
    of: then the power sum is its product with the ratio, and no second power pass is needed.
    """
    if powers is not None and pool.compiled(powers):
        return _collect_upper_compiled(pool, t_lo, q, powers)
    pool.require_finite()
    kept, index, positives, at_end, power_sum, top, total = [], [], 0, 0, 0.0, 0.0, 0.0
    lo, hi = pool.work.type(t_lo), pool.work.type(t_hi)
    end = lo if upper else hi
    index_dtype = np.int32 if pool.row.size < 2**31 else np.int64
    block = min(BLOCK, pool.row.size)
    flags, ratios = np.empty(block, dtype=bool), np.empty(block, dtype=pool.work)
    lo_block = np.full(block, lo)  # np.minimum with a scalar operand measured 3x slower than with an array
    sum_level = None
    if upper and q is not None and t_lo > 0 and powers is None:
        # (l / t_lo)^q below 2^-60 / n leaves the power sum (>= 1) unchanged to rounding: skip such losses
        level = t_lo * _exp(-(60.0 * math.log(2.0) + math.log(max(pool.row.size, 2))) / q)
        sum_level = pool.work.type(level) if level >= SPARSE_LEVEL * t_lo else None
    with np.errstate(under="ignore"):
        for cols, lp, smallest in pool.blocks():
            if smallest is not None and smallest > 0:
                positives += lp.size
            else:  # counts of a bool array: several times faster than np.count_nonzero of floats
                positives += np.count_nonzero(np.greater(lp, 0, out=flags[: lp.size]))
            if q is None and end > 0:
                at_end += np.count_nonzero(np.equal(lp, end, out=flags[: lp.size]))
            if upper:
                keep = lp > lo
                if sum_level is not None:  # the few losses whose powers count, gathered first
                    near = np.greater(lp, sum_level, out=flags[: lp.size])
                    near &= ~keep  # those above t_lo add 1 each
                    below = np.compress(near, lp)
                    np.divide(below, lo, out=below)
                    power_sum += float(np.sum(power(below, q, out=below), dtype=np.float64))
                    power_sum += np.count_nonzero(keep)
                elif q is not None and t_lo > 0:
                    ratio = np.minimum(lp, lo_block[: lp.size], out=ratios[: lp.size])
                    np.divide(ratio, lo, out=ratio)
                    if powers is None:
                        power(ratio, q, out=ratio, floor=EXP_FAST)  # terms under 1e-304 in a sum >= 1
                    else:
                        u = powers[cols]
                        _ratio_power(ratio, lp, t_lo, q - 1.0, out=u, smallest=smallest)
                        np.multiply(ratio, u, out=ratio)
                    power_sum += float(np.sum(ratio, dtype=np.float64))
            else:
                keep = lp < hi
                keep &= lp > 0
                top = max(top, float(lp.max()))
                total += float(np.sum(lp, dtype=np.float64))
            if q is None:
                kept.append(np.compress(keep, pool.row[cols]))
            else:
                at = np.flatnonzero(keep)
                kept.append(pool.row[cols][at])
                index.append((at + cols.start).astype(index_dtype))
    return _Side(np.concatenate(kept), None if q is None else np.concatenate(index), positives, at_end, power_sum,
                 top, total)


def _collect_upper_compiled(pool: _Pool, t_lo: float, q: float, powers: np.ndarray) -> _Side:
    """``_collect`` on the upper side with ``powers`` (``t_lo > 0``, no mask, the pool in the work dtype),
    its pass compiled around NumPy's power (``numba_loops.upper_pass``, ``product_sum``): the same side,
    the power sum to a sum's rounding, and the pool's finiteness check from the same pass."""
    n, lo = pool.row.size, pool.work.type(t_lo)
    block = min(BLOCK, n)
    ratio, kept_buffer = np.empty(block, dtype=pool.work), np.empty(block, dtype=pool.row.dtype)
    index_buffer = np.empty(block, dtype=np.int32 if n < 2**31 else np.int64)
    kept, index, positives, power_sum = [], [], 0, 0.0
    with np.errstate(under="ignore"):
        for start in range(0, n, BLOCK):
            row = pool.row[start: start + BLOCK]
            r = ratio[: row.size]
            count, size, least, finite = numba_loops.upper_pass(row, lo, r, kept_buffer, index_buffer, start)
            if not finite:
                pool.require_finite(False)  # raises
            u = powers[start: start + row.size]
            _ratio_power(r, row, t_lo, q - 1.0, out=u, smallest=least)  # the ratio is 1 where l <= 0
            if count == row.size:
                power_sum += numba_loops.product_sum(r, u)
            else:  # the powers of l <= 0 back to 0 (their weights)
                power_sum += numba_loops.positive_product_sum(row, r, u)
            positives += count
            kept.append(kept_buffer[:size].copy())
            index.append(index_buffer[:size].copy())
    pool.require_finite(True)
    return _Side(np.concatenate(kept), np.concatenate(index), positives, 0, power_sum, 0.0, 0.0)


def _ratio_power(ratio: np.ndarray, lp: np.ndarray, scale: float, exponent: float, out: np.ndarray,
                 smallest=None) -> None:
    """``out = ratio ** exponent`` for ``ratio = min(lp, scale) / scale``; ratios that underflow (tiny
    positive losses) through logs, as in ``capped_power_weights``. ``smallest``: ``lp``'s minimum if
    known, or its least positive value where the other ratios are 1 (the smallest ratio is then its
    quotient: rounding keeps the order)."""
    tiny = None
    scale_work = ratio.dtype.type(scale)
    least = ratio.min() if smallest is None else min(smallest, scale_work) / scale_work
    if least < np.finfo(ratio.dtype).tiny:  # zeros, or ratios that underflow
        tiny = (ratio < np.finfo(ratio.dtype).tiny) & (lp > 0)
    power(ratio, exponent, out=out)
    if tiny is not None and tiny.any():
        out[tiny] = np.exp(exponent * log_ratio(lp[tiny], scale)).astype(out.dtype)


def _select_p1(pool: _Pool, m: float, gamma: float, tau: float, out: np.ndarray, value_wanted: bool):
    """p = 1 with the cap count ``m`` (below the pool's size): the floor(m)-th largest positive loss
    (0-based), from the losses inside a sampled bracket or, when the bracket missed, from a side of it.
    The threshold, the value and the weights' cut ``(t, above, share)`` for ``_write_p1_cuts`` (None
    where the weights are in ``out`` already), or ``None`` on a miss."""
    cut = math.floor(m)
    sample = pool.sample()
    t_lo, t_hi = _bracket(sample, cut + 0.5, pool.size)
    upper = None  # which side of the bracket to collect if the cut is not inside: decided once needed
    if t_lo > 0:
        # the value needs the sum above t_hi: summing from the kept losses is cheaper where few are above
        if value_wanted:
            upper = _upper_side(sample, t_lo, t_hi)
        inside_hi = math.inf if upper else t_hi
        in_sample = np.count_nonzero((sample >= t_lo) & (sample <= inside_hi))
        solved = _p1_inside(pool, t_lo, inside_hi, gamma, tau, cut, value_wanted,
                            expected=-(-in_sample * pool.size // sample.size))
        if solved is not None:
            return solved
    if upper is None:
        upper = _upper_side(sample, t_lo, t_hi)
    side = _collect(pool, t_lo, t_hi, upper)
    if side.positives <= m:
        return *_all_capped(pool, tau, out), None
    kept, at_end = side.kept, side.at_end
    size = kept.size
    # descending order: the kept losses then the ones at t_lo (upper side), or the `rest` above
    # t_hi, the ones at t_hi, then the kept losses (lower side)
    rest = 0 if upper else side.positives - size - at_end
    if upper and cut < size or not upper and cut >= rest + at_end:
        j = size - 1 - (cut if upper else cut - rest - at_end)
        kept.partition(j)
        t = float(kept[j])
    elif upper and cut < size + at_end or not upper and cut >= rest:
        t = t_lo if upper else t_hi
    else:
        return None
    at_t = at_end if t == (t_lo if upper else t_hi) else 0
    above = kept > t
    n_above = int(np.count_nonzero(above)) + rest + (at_end if not upper and t < t_hi else 0)
    tied = int(np.count_nonzero(kept == t)) + at_t
    if upper:
        sum_above = float(np.sum(kept, where=above, dtype=np.float64))
    else:
        sum_above = side.total - float(np.sum(kept, where=~above, dtype=np.float64)) - t * at_t
    share = float(p1_share(gamma, tau, n_above, tied))
    value = (tau * sum_above if n_above else 0.0) + share * (t * tied)  # t * tied first: no subnormal product
    return t, value, (t, tau if n_above else 0.0, share)  # nothing above: tau may be inf


def _p1_inside(pool: _Pool, t_lo: float, t_hi: float, gamma: float, tau: float, cut: int, value_wanted: bool,
               expected: int):
    """p = 1 when the cut-th largest loss (0-based) lies in ``[t_lo, t_hi]`` (``t_lo > 0``; about ``expected``
    losses inside, from the sample): one pass keeps the losses inside and counts (and, for the value,
    sums) those above ``t_hi``. The threshold, the value (NaN unless wanted) and the weights' cut, as
    ``_select_p1`` returns them, or ``None`` if the cut is not inside (the caller then collects a side of
    the bracket)."""
    kept, rest, rest_sum = _p1_bracket_pass(pool, pool.work.type(t_lo), pool.work.type(t_hi), value_wanted, expected)
    if not rest <= cut < rest + kept.size:
        return None
    j = kept.size - 1 - (cut - rest)
    kept.partition(j)
    t, after = float(kept[j]), kept[j + 1:]  # after the partition, the losses after j are at least t
    above_inside = int(np.count_nonzero(after > t))
    ties_after = after.size - above_inside
    n_above, n_tied = rest + above_inside, 1 + ties_after + int(np.count_nonzero(kept[:j] == t))
    share = float(p1_share(gamma, tau, n_above, n_tied))
    cut_weights = (t, tau if n_above else 0.0, share)  # nothing above: tau may be inf
    if not value_wanted:
        return t, math.nan, cut_weights
    sum_above = rest_sum + max(0.0, float(np.sum(after, dtype=np.float64)) - t * ties_after)
    # t * tied first: no subnormal product
    return t, (tau * sum_above if n_above else 0.0) + share * (t * n_tied), cut_weights


def _p1_bracket_pass(pool: _Pool, lo, hi, value_wanted: bool, expected: int):
    """The losses in ``[lo, hi]`` (``lo > 0``; in pool order, input dtype), the number of those above ``hi``
    and their sum (0.0 unless ``value_wanted``): one pass, compiled where ``pool.compiled()`` (into a
    buffer for a few times the ``expected`` number inside, passed again only if more were inside; the
    pool's finiteness check, ``require_finite``, then comes from the same pass)."""
    block = min(BLOCK, pool.row.size)
    if pool.compiled():
        kept = np.empty(min(pool.row.size, _CAPACITY_FACTOR * expected + _CAPACITY_MARGIN), pool.work)
        rest, size, rest_sum, finite = numba_loops.p1_split(pool.row, lo, hi, kept, value_wanted)
        pool.require_finite(finite)
        if size > kept.size:
            kept = np.empty(size, pool.work)
            numba_loops.p1_split(pool.row, lo, hi, kept, False)
        return kept[:size], rest, rest_sum
    pool.require_finite()
    kept, rest, rest_sum, buffer = [], 0, 0.0, np.empty(block, pool.work)
    inside, over = np.empty(block, dtype=bool), np.empty(block, dtype=bool)
    for cols, lp, _ in pool.blocks():
        size = lp.size
        np.greater(lp, hi, out=over[:size])
        count = np.count_nonzero(over[:size])
        if count and value_wanted:
            rest_sum += float(np.sum(np.multiply(lp, over[:size], out=buffer[:size]), dtype=np.float64))
        rest += count
        np.greater_equal(lp, lo, out=inside[:size])
        np.logical_xor(inside[:size], over[:size], out=inside[:size])  # t_lo <= l <= t_hi
        kept.append(np.compress(inside[:size], pool.row[cols]))
    return np.concatenate(kept), rest, rest_sum


def _write_p1_cuts(flat: np.ndarray, mask: np.ndarray | None, cuts: list, out: np.ndarray) -> None:
    """p = 1 weights of the pools in ``cuts``, ``(pool, t, above, share)`` in pool order: ``above`` for
    the losses above ``t`` (> 0), ``share`` at it, 0 below and outside the mask (``write_p1_rows``: in
    one call when every pool is there, which saves its fixed cost per pool)."""
    if not cuts:
        return
    rows, t, above, share = (np.array(column) for column in zip(*cuts))
    if rows.size == flat.shape[0]:
        return write_p1_rows((flat, mask), t, above, share, BLOCK, out)
    for i, row in enumerate(rows):
        one = slice(row, row + 1)
        write_p1_rows((flat[one], None if mask is None else mask[one]), t[i:i + 1], above[i:i + 1], share[i:i + 1],
                      BLOCK, out[one])


def _all_capped(pool: _Pool, tau: float, out: np.ndarray):
    """Every positive loss gets ``tau`` (at most ``m`` are positive; none when ``tau = inf``):
    threshold 0, and the value."""
    total, tau_out = 0.0, out.dtype.type(tau if tau < math.inf else 0.0)
    for cols, lp, _ in pool.blocks():
        np.multiply(lp > 0, tau_out, out=out[cols])
        total += float(np.sum(lp, dtype=np.float64))
    return 0.0, tau * total if total else 0.0


def _select_holder(pool: _Pool, p: float, m: float, gamma: float, tau: float, out: np.ndarray,
                   value_wanted: bool):
    """1 < p < inf with the cap count ``m`` (below the pool's size): k and t* from the kept side of a
    sampled bracket, verified; ``None`` on a miss."""
    q = conjugate(p)
    sample, t_lo, t_hi = holder_bracket(pool, q, m)
    upper = _upper_side(sample, t_lo, t_hi)
    fused = upper and t_lo > 0 and out.dtype == pool.work  # the weights below t_lo from pass one's powers
    side = _collect(pool, t_lo, t_hi, upper, q, powers=out if fused else None)
    if side.positives <= m:
        return _all_capped(pool, tau, out)
    if upper:
        solved = _holder_upper_split(side, t_lo, t_hi, q, m, value_wanted)
    else:
        side.kept.sort()  # ascending, in place
        solved = _holder_lower(side, side.kept, t_lo, t_hi, q, m)
    if solved is None:
        return None
    k, ref, tail, capped_sum = solved
    coef = float(holder_coef(gamma, p, m, k, tail))
    if fused:  # below t_lo: coef (l / ref)^(q-1) = coef (t_lo / ref)^(q-1) (l / t_lo)^(q-1)
        scale_weights(out, coef * _exp((q - 1.0) * float(log_ratio(t_lo, ref))))
    elif upper:  # the kept losses (above t_lo) get their weights below
        _write_power_weights(pool, ref, coef, q, tau, out, upto=t_lo)
    else:  # every loss outside the kept ones is capped
        _all_capped(pool, tau, out)
    if side.index.size:  # the upper side's kept losses are still in the pool's order; the lower's sorted
        _write_kept_weights(pool, side.kept if upper else pool.row[side.index], side.index, ref, coef, q, tau, out)
    # L = tau S_k + coef ref R_k, ref multiplied last: coef * ref would be subnormal for tiny losses
    return float(holder_threshold(ref, tail, m, k, q)), (tau * capped_sum if k else 0.0) + ref * (coef * tail)


def holder_bracket(pool: _Pool, q: float, m: float):
    """1 < p < inf: the pool's sample and the bracket ``(t_lo, t_hi)`` of sample values around the
    sample's own threshold (its cap count ``m`` scaled to the sample)."""
    sample = pool.sample()
    t_est = _sample_threshold(sample, q, m * sample.size / max(pool.size, 1))
    rank = float(np.count_nonzero(sample >= t_est)) * pool.size / max(sample.size, 1)
    return (sample, *_bracket(sample, rank, pool.size))


def _write_kept_weights(pool: _Pool, values: np.ndarray, index: np.ndarray, ref: float, coef: float, q: float,
                        tau: float, out: np.ndarray) -> None:
    """The weights of the kept losses ``values`` at ``index``: ``tau`` above ``ref`` (the largest uncapped
    loss), the closed form at most ``ref``."""
    capped = values > values.dtype.type(ref)
    weights = np.multiply(capped, out.dtype.type(tau if tau < math.inf else 0.0))  # no cap: nothing above ref
    uncapped = np.flatnonzero(~capped)  # positions, not a mask: boolean indexing measured 4x slower
    if uncapped.size:
        uncapped_values = values[uncapped].astype(pool.work)
        weights[uncapped] = capped_power_weights(uncapped_values, ref, coef, q, tau, stored=out.dtype)
    out[index] = weights


def _write_power_weights(pool: _Pool, ref: float, coef: float, q: float, tau: float, out: np.ndarray,
                         upto: float = math.inf) -> None:
    """The closed form's weights of every loss at most ``upto``, block by block (``capped_power_weights``);
    those above it get some weight the caller overwrites.

    For ``q`` large (``p`` near 1) the weights of the losses below some level round to 0 in ``out``'s
    dtype (``negligible_log``); where that level is above ``SPARSE_LEVEL`` times ``ref``, only the losses
    above it are computed and the others get 0: the same weights, without a log and an exp for each loss.
    """
    level = ref * _exp(negligible_log(coef, out.dtype) / (q - 1.0))
    if level >= SPARSE_LEVEL * ref:
        return _write_sparse_power_weights(pool, level, upto, ref, coef, q, tau, out)
    buffer = None if out.dtype == pool.work else np.empty(min(BLOCK, out.size), dtype=pool.work)
    for cols, lp, _ in pool.blocks():
        w = out[cols] if buffer is None else buffer[: lp.size]
        capped_power_weights(lp, ref, coef, q, tau, out=w, stored=out.dtype)
        if buffer is not None:
            out[cols] = w


def _write_sparse_power_weights(pool: _Pool, level: float, upto: float, ref: float, coef: float, q: float,
                                tau: float, out: np.ndarray) -> None:
    """``_write_power_weights`` where every loss at most ``level`` has weight 0 in ``out``: those above
    ``upto`` get 0 as well, those in between their weights."""
    level_work, upto_work = pool.work.type(level), pool.work.type(upto)
    flags, below = (np.empty(min(BLOCK, out.size), dtype=bool) for _ in range(2))
    for cols, lp, _ in pool.blocks():
        w = out[cols]
        w.fill(0)
        near = np.greater(lp, level_work, out=flags[: lp.size])
        near &= np.less_equal(lp, upto_work, out=below[: lp.size])
        at = np.flatnonzero(near)
        if at.size:
            w[at] = capped_power_weights(lp[at], ref, coef, q, tau, stored=out.dtype)


def _holder_upper_split(side: _Side, t_lo: float, t_hi: float, q: float, m: float, value_wanted: bool = True):
    """``_holder_upper`` on the kept losses (left in their order), sorting only those inside the bracket
    when the ones above ``t_hi`` are all capped (as they are unless the sample missed): those are only
    counted, and summed if the value is wanted (else the capped sum is NaN)."""
    kept = side.kept
    above = kept > kept.dtype.type(t_hi) if t_hi < math.inf else None
    if above is not None and above.any():
        inside = np.compress(~above, kept)  # np.compress: boolean indexing measured 4x slower
        inside.sort()  # ascending
        above_sum = float(np.sum(np.compress(above, kept), dtype=np.float64)) if value_wanted else math.nan
        solved = _holder_upper(side, inside, t_lo, t_hi, q, m, above=int(np.count_nonzero(above)),
                               above_sum=above_sum)
        if solved is not _REACHES_ABOVE:
            return solved
    return _holder_upper(side, np.sort(kept), t_lo, math.inf, q, m)  # a copy: kept stays in pool order


_REACHES_ABOVE = object()  # _holder_upper: the capped set may not hold every loss above t_hi


def _holder_upper(side: _Side, y: np.ndarray, t_lo: float, t_hi: float, q: float, m: float, above: int = 0,
                  above_sum: float = 0.0):
    """k, ref, tail_sum and the capped losses' sum from the kept losses: ascending ``y``, those above
    t_lo and at most t_hi, and ``above`` more above t_hi (summing to ``above_sum``). The losses <= t_lo
    (t_lo is one) follow the power law unless h(t_lo) < m, a miss. The losses above t_hi are capped
    when h(t_hi) < m; otherwise ``_REACHES_ABOVE`` (they are needed in order)."""
    size = y.size
    below = side.power_sum - size - above if t_lo > 0 else 0.0  # sum over l+ <= t_lo of (l / t_lo)^q, >= 1
    if t_lo > 0 and size + above + below < m:
        return None
    k_inside, _, tail, h_hi = capped_and_tail(y, q, m, above, below, t_lo, t_hi if above else None)
    if above and h_hi >= m:
        return _REACHES_ABOVE
    if k_inside == size:  # every loss at most t_hi capped: t_lo is the largest uncapped loss
        if t_lo <= 0:
            return None
        ref, tail = t_lo, below
    else:
        ref = float(y[size - 1 - k_inside])
    return above + k_inside, ref, tail, above_sum + float(np.sum(y[size - k_inside:], dtype=np.float64))


def _holder_lower(side: _Side, y: np.ndarray, t_lo: float, t_hi: float, q: float, m: float):
    """k, ref, tail_sum and the capped losses' sum from the losses below t_hi (ascending ``y``):
    the losses >= t_hi are capped unless h(t_hi) >= m, which is a miss unless t_hi is the largest loss."""
    size = y.size
    at_or_above = side.positives - size
    k_kept, _, tail, h_hi = capped_and_tail(y, q, m, at_or_above, end=t_hi)
    if h_hi >= m:
        if side.top > t_hi:
            return None
        return 0, t_hi, h_hi, 0.0  # nothing capped
    ref = float(y[size - 1 - k_kept])
    uncapped_sum = float(np.sum(y[: size - k_kept], dtype=np.float64))
    return at_or_above + k_kept, ref, tail, side.total - uncapped_sum


def _sample_threshold(sample: np.ndarray, q: float, m_sample: float) -> float:
    """The threshold of the sample's own LMP problem (descending ``sample``) with the cap count scaled to it."""
    k, positives, tail, _ = capped_and_tail(np.ascontiguousarray(sample[::-1]), q, m_sample)
    if k >= positives:
        return 0.0
    return float(holder_threshold(float(sample[k]), tail, m_sample, k, q))
