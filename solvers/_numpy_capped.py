r"""The number of capped losses on ascending rows: counted in full (``capped_count``) or located first
(``locate_capped``, for the sort path's long rows).

``capped_count`` evaluates the dual's $h$ at every loss, block by block of columns (suffix log-sum-exps,
tie groups carried across blocks). ``locate_capped`` uses that on a window only. On an ascending
row $y$ of $n$ losses with largest $y_{n-1} = \mathrm{top}$, the dual's $h$ at the loss of column $c$ is

$$h(y_c) = (n - c) + S_c / (y_c / \mathrm{top})^q, \qquad S_c = \sum_{i < c} (y_i / \mathrm{top})^q,$$

for every column $c$ of $y_c$'s tie group (each tied loss before $c$ adds 1 to the quotient and is
missing from $n - c$). One pass of powers in the work dtype gives $S$ at every ``SUB``-th column.
$h$ there, which does not increase along the row, brackets the crossing $h = m$ to a window of
columns with $h \ge m (1 + \delta)$ at its start and $h < m (1 - \delta)$ just after its end, where
$\delta$ is far above the sums' rounding. ``capped_count`` then counts the capped losses in the
window exactly, with the losses after it as capped and $S$ before it as its carried sum. The
threshold's tail sum $\sum_{c \le c_{\mathrm{ref}}} (y_c / \mathrm{ref})^q$ comes from the same sums.
This is one power per loss instead of ``capped_count``'s log, exp, log-sum and tie-group pass over the
row.

Terms $(y / \mathrm{top})^q$ that underflow in the work dtype are lost. The result is used only
where $(\mathrm{ref} / \mathrm{top})^q$ and its value at the window's start are at least ``REACH``,
so that all the lost terms together stay below $10^{-8}$ of the sums that matter. Other rows are
left to the caller's full count.
"""

from __future__ import annotations

import math

import numpy as np

from . import _numba_loops as numba_loops
from ._numpy_closed_form import EXP_FAST, power
from .problem import log_ratio

SUB = 1024  # columns per sub-block: S is known at every SUB-th column
LOCATE_MIN_N = 8 * SUB  # shorter rows take the full count (one window would be most of the row)
# Relative margin of h around m at the window's ends, and the least (y / top)^q at the window's start
# and at ref, per work dtype: float32 powers err by about (q + 2) 1.2e-7 relative (q <= 9 in float32,
# solvers._policy), float64's exp(q log r) by about 1e-13; their underflows lose at most n 1e-45 and n 1e-304.
DELTA = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
REACH = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-250}


def capped_count(y: np.ndarray, q: float, m: np.ndarray, width: int, above: int = 0,
                 below: np.ndarray | None = None):
    """Per row of ascending losses ``y``: the number k of capped losses and the number of positive ones.

    The loss y_j is capped iff h_j < m, where h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q
    is the dual's h(t) at t = y_j. The row may be the middle of a pool (the selection path): then
    ``above`` losses above the row count in every #{y_i >= y_j}, and ``below`` (per row, or None)
    is the log of sum (l / max y)^q over the losses below the row. Strict "<": then k < m, so the budget left for the uncapped
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
    log_sum = np.full((pools, 1), -np.inf) if below is None else np.asarray(below, dtype=np.float64)[:, None]
    carry = log_sum, np.zeros(pools, dtype=np.int64), np.full(pools, -np.inf), None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for lo in range(0, n, width):
            capped, positive, carry = _capped_in_block(y[:, lo: lo + width], lo, n + above, q, scale, m, carry)
            k += capped
            positives += positive
    return k, positives


def _capped_in_block(y_block, offset: int, n: int, q: float, scale, m, carry):
    """``capped_count`` on the block of columns ``[offset, offset + width)``: the counts of capped
    and of positive losses in it, and the carry for the next block (``n``: the row's length plus
    the losses above it)."""
    log_sum, group_start, group_below, previous = carry
    block = y_block.astype(np.float64)
    z = log_ratio(block, scale)
    z *= q
    sums = prefix_log_sums(log_sum, z)  # sums[:, i]: the log-sum before block[:, i]
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


LOG_RANGE = 600.0  # exp(-600) ~ 1e-261: terms this far below the largest still add without underflow


def prefix_log_sums(start: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``logaddexp.accumulate`` of ``[start, z]`` along each row, for ascending rows ``z`` (-inf allowed)
    and ``start`` of shape ``(rows, 1)``: column i is log(exp(start) + sum_{j < i} exp(z_j)).

    Where the block's finite values (``start`` included) span less than ``LOG_RANGE``, as one
    cumulative sum of exp(value - largest) in float64: 5x faster than the accumulate, which calls
    its scalar loop once per entry, and as accurate (relative error of each sum about n ulps).
    """
    out = np.empty((z.shape[0], z.shape[1] + 1))
    out[:, :1], out[:, 1:] = start, z
    top = np.maximum(start[:, 0], z[:, -1])
    low = np.min(out, axis=1, where=np.isfinite(out), initial=np.inf)
    if not np.all((top - low < LOG_RANGE) | ~np.isfinite(top)):
        return np.logaddexp.accumulate(out, axis=1, out=out)
    scale = np.where(np.isfinite(top), top, 0.0)[:, None]
    out -= scale
    with np.errstate(divide="ignore", under="ignore"):  # log(0) = -inf before the first positive term
        np.exp(out, out=out)
        np.cumsum(out, axis=1, out=out)
        np.log(out, out=out)
    out += scale
    return out


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



def locate_capped(y: np.ndarray, q: float, m: np.ndarray, work: np.dtype, width: int):
    r"""Per ascending row of losses ``y`` (>= 0): the number k of capped losses, the number of positive
    ones, the tail sum $\sum_{c \le n-1-k} (y_c / y_{n-1-k})^q$ (float64, 1 where every positive loss
    is capped) and ``located``: False where the row is not reached (its other entries are then
    meaningless; the caller counts it in full). ``width``: columns per block of the passes."""
    rows, n = y.shape
    delta, reach = DELTA[work], REACH[work]
    top = y[:, -1].astype(np.float64)
    scale = np.where(top > 0, top, 1.0)
    prefix = _prefix_power_sums(y, q, scale, work, max(SUB, width // SUB * SUB))
    starts = np.arange(0, n, SUB)
    relative = _relative_power(y[:, starts], scale, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(relative > 0, (n - starts) + prefix[:, :-1] / relative, np.inf)
    capped_from = h < (m * (1.0 - delta))[:, None]  # h does not increase along the row
    j_hi = np.where(capped_from.any(axis=1), capped_from.argmax(axis=1), starts.size)
    uncapped = (h >= (m * (1.0 + delta))[:, None]) & (np.arange(starts.size) < j_hi[:, None])
    j_lo = np.where(uncapped.any(axis=1), starts.size - 1 - uncapped[:, ::-1].argmax(axis=1), 0)
    lo, hi = j_lo * SUB, np.minimum(j_hi * SUB, n)
    k, positives, tail = np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=np.int64), np.ones(rows)
    located = (lo == 0) | (relative[np.arange(rows), j_lo] >= reach)
    for r in np.flatnonzero(located):
        row = y[r]
        positives[r] = n - np.searchsorted(row, row.dtype.type(0), side="right")
        k[r] = (n - hi[r]) + _count_in_window(row[lo[r]: hi[r]], n - hi[r], q, m[r], prefix[r, j_lo[r]], top[r],
                                              width)
        if k[r] < positives[r]:
            tail[r], located[r] = _tail(row, n - k[r], prefix[r], top[r], q, work, reach)
    return k, positives, tail, located


def _count_in_window(window: np.ndarray, above: int, q: float, m: float, before: float, top: float,
                     width: int) -> int:
    """The capped losses in one row's window, ``above`` losses after it, and ``before`` the sum of
    (y / top)^q over the losses before it: compiled (``numba_loops.capped_sweep``) where the loops fit,
    else ``capped_count`` (``before`` carried as the log-sum over the window's largest loss)."""
    if window.size == 0 or not window[-1] > 0:
        return 0
    if numba_loops.fits(window):
        return numba_loops.capped_sweep(window, q, m, above, before, top)[0]
    log_before = math.log(before) + q * log_ratio(top, float(window[-1])) if before > 0 else -math.inf
    return int(capped_count(window[None, :], q, np.array([m]), width, above, np.array([log_before]))[0][0])


def _tail(row: np.ndarray, end: int, prefix: np.ndarray, top: float, q: float, work: np.dtype, reach: float):
    """The sum of (y / ref)^q over the columns before ``end`` (ref: the loss at ``end - 1``), and whether
    (ref / top)^q is reached."""
    relative = math.exp(q * log_ratio(float(row[end - 1]), top))
    if relative < reach:
        return 1.0, False
    start = end // SUB * SUB
    part = np.divide(row[start:end], top, dtype=work)
    with np.errstate(under="ignore"):
        part_sum = float(np.sum(power(part, q, out=part, floor=EXP_FAST), dtype=np.float64))
    return (float(prefix[end // SUB]) + part_sum) / relative, True


def _prefix_power_sums(y: np.ndarray, q: float, scale: np.ndarray, work: np.dtype, step: int) -> np.ndarray:
    """$S$ at columns 0, SUB, 2 SUB, ... and at the row's end (float64, shape (rows, ceil(n / SUB) + 1)):
    powers in ``work`` over blocks of ``step`` columns (a multiple of SUB), each sub-block summed in float64."""
    rows, n = y.shape
    sums = np.empty((rows, -(-n // SUB)))
    buffer = np.empty((rows, min(step, n)), dtype=work)
    scale_work = scale.astype(work)[:, None]  # the largest loss: exact in the work dtype
    with np.errstate(under="ignore"):
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            block = buffer[:, : hi - lo]
            np.divide(y[:, lo:hi], scale_work, out=block)
            power(block, q, out=block, floor=EXP_FAST)  # terms below 1e-304 are within REACH's margin
            whole, first = (hi - lo) // SUB * SUB, lo // SUB
            sums[:, first: first + whole // SUB] = block[:, :whole].reshape(rows, -1, SUB).sum(axis=2, dtype=np.float64)
            if whole < hi - lo:
                sums[:, -1] = block[:, whole:].sum(axis=1, dtype=np.float64)
    prefix = np.zeros((rows, sums.shape[1] + 1))
    np.cumsum(sums, axis=1, out=prefix[:, 1:])
    return prefix


def _relative_power(values: np.ndarray, scale: np.ndarray, q: float) -> np.ndarray:
    """(values / scale)^q in float64 for values >= 0 (0 stays 0)."""
    v = values.astype(np.float64)
    with np.errstate(divide="ignore", under="ignore"):
        return np.where(v > 0, np.exp(q * log_ratio(np.where(v > 0, v, 1.0), scale[:, None])), 0.0)
