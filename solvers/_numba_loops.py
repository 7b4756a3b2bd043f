"""Fused loops compiled with numba (the optional ``fast`` extra): passes NumPy needs several ufuncs for.

Each loop replaces a few whole-array NumPy operations in the solvers with one pass that reads every
loss once, and gives what those operations give: the same comparisons and roundings on the same
values, except the float64 sums (``product_sum``, and ``p1_split``'s sum above the bracket), which add
the same terms in another order (``tests/test_numba_loops.py`` runs every loop against its NumPy twin):

* ``positive_fill``: ``p = inf``'s weights, ``cap`` on every positive loss, and whether every loss is
  finite, in the one pass where NumPy takes a finiteness check, a minimum and a write;
* ``p1_split``: ``p = 1``'s selection pass, the losses inside a bracket gathered and those above it
  counted, with the finiteness check;
* ``p1_write``: ``p = 1``'s weights, ``tau`` above the threshold and ``share`` at it;
* ``upper_pass`` and ``product_sum`` (``positive_product_sum`` where some losses are not positive): the
  selection path's first pass at ``1 < p < inf`` around NumPy's power (the ratios to the bracket's end,
  the kept losses and the finiteness check; then the power sum);
* ``capped_sweep`` (one sorted row) and ``capped_sweep_rows`` (each row of a sorted chunk): ``1 < p < inf``'s
  count of capped losses and tail sum, the dual's $h$ at each tie group carried from the previous group
  by one factor. This is the one loop with other roundings than its twin (the sort path's
  ``capped_count`` and ``tail_sum``): see its docstring.

They are used where ``fits`` says so: numba importable, ``LMP_THEORY_NUMBA`` not ``"0"``, and C-contiguous
float32 or float64 arrays. Everything else (and every call without numba) takes the NumPy code, which
stays the reference. ``benchmarks/run.py`` measures what the loops buy (``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
import os

import numpy as np

from .problem import rescaled_power_sum

numba = None
if os.environ.get("LMP_THEORY_NUMBA", "1") != "0":  # "0": not even imported
    try:
        import numba
    except ImportError:  # the extra is not installed: the NumPy code runs
        pass

# Read at every call (benchmarks and tests switch it): False runs the NumPy code only.
ENABLED = numba is not None

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# |l| as unsigned bits: at the infinity's or above, l is not finite. numba computes ``bits & mask`` in 64
# bits; the loops cast it back (``bits.dtype.type``) so that float32's bits stay in 32-bit vector lanes.
_ABS_BITS = {np.dtype(np.float32): (np.uint32, 0x7FFFFFFF, 0x7F800000),
             np.dtype(np.float64): (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)}


def fits(*arrays: np.ndarray) -> bool:
    """Whether the loops run on these arrays: numba enabled, every array C-contiguous, of one dtype
    (float32 or float64)."""
    if not ENABLED:
        return False
    dtype = arrays[0].dtype
    return dtype in _DTYPES and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def _compile(function):
    """``function`` compiled lazily on first call (``nogil``: threads run it in parallel; ``cache``: once
    per machine, not per process)."""
    return numba.njit(nogil=True, cache=True)(function) if numba is not None else None


def _positive_fill(flat, bits, abs_mask, cap, out):
    largest = bits.dtype.type(0)  # the largest |l| as bits: at the infinity's bits or above, not finite
    zero = out.dtype.type(0)
    for row in range(flat.shape[0]):
        for i in range(flat.shape[1]):
            largest = max(largest, bits.dtype.type(bits[row, i] & abs_mask))
            out[row, i] = cap[row] if flat[row, i] > 0 else zero
    return largest


_CHUNK = 64  # losses per chunk of _p1_split: one bit each in a 64-bit word (measured fastest of 8 to 256 at 2^21)
_SUM_BLOCK = 2**16  # losses per block of _p1_split: the sum above its bracket reads each block while it is in cache


# The lowest set bit times this de Bruijn constant has a distinct top six bits for each position
_DE_BRUIJN = 0x03F79D71B4CB0A89
_BIT_AT = np.zeros(64, dtype=np.int64)
_BIT_AT[[(((1 << i) * _DE_BRUIJN) & (2**64 - 1)) >> 58 for i in range(64)]] = np.arange(64)


def _lowest_bit(word):
    """The position of the lowest set bit of a non-zero 64-bit ``word`` (a multiply and a table lookup:
    measured 10 us faster per 3,300 bits than the exponent of the bit's value through ``frexp``)."""
    return _BIT_AT[((word & (~word + np.uint64(1))) * np.uint64(_DE_BRUIJN)) >> np.uint64(58)]


def _p1_split(row, bits, abs_mask, lo, hi, kept, want_sum):
    over, size, over_sum, largest = 0, 0, 0.0, bits.dtype.type(0)
    for first in range(0, row.size, _SUM_BLOCK):
        cols = slice(first, min(first + _SUM_BLOCK, row.size))  # a slice: its indices start at 0 (see below)
        block_over, size, largest = _p1_split_block(row[cols], bits[cols], abs_mask, lo, hi, kept, size, largest)
        if want_sum and block_over:  # while the block is in cache
            over_sum += _sum_above(row[cols], hi)
        over += block_over
    return over, size, over_sum, largest


def _p1_split_block(row, bits, abs_mask, lo, hi, kept, size, largest):
    # the chunks' indices from 0: with an offset numba cannot prove them non-negative, and its check for
    # negative indices stops the chunk loop's vectorisation (measured 2.2x slower)
    over, capacity = 0, kept.size
    whole = row.size - row.size % _CHUNK
    for start in range(0, whole, _CHUNK):
        chunk_over, inside = np.int32(0), np.uint64(0)
        for j in range(_CHUNK):  # a fixed trip count: vectorised
            v = row[start + j]
            largest = max(largest, bits.dtype.type(bits[start + j] & abs_mask))
            chunk_over += np.int32(v > hi)
            inside |= np.uint64((v >= lo) & (v <= hi)) << np.uint64(j)
        over += chunk_over
        while inside:  # one step per loss inside
            if size < capacity:
                kept[size] = row[start + _lowest_bit(inside)]
            size += 1
            inside &= inside - np.uint64(1)
    for i in range(whole, row.size):
        v = row[i]
        largest = max(largest, bits.dtype.type(bits[i] & abs_mask))
        over += v > hi
        if (v >= lo) & (v <= hi):
            if size < capacity:
                kept[size] = v
            size += 1
    return over, size, largest


def _sum_above(row, hi):
    total = 0.0
    for i in range(row.size):
        total += np.float64(row[i]) if row[i] > hi else 0.0
    return total


def _upper_pass(row, bits, abs_mask, lo, ratio, kept, index, start, infinity):
    positives, size = 0, 0
    largest, smallest = bits.dtype.type(0), infinity  # |l| as bits; the least positive l as bits (ordered)
    zero, one = row.dtype.type(0), row.dtype.type(1)
    whole = row.size - row.size % _CHUNK
    for first in range(0, whole, _CHUNK):
        chunk_positives, above = np.int32(0), np.uint64(0)
        for j in range(_CHUNK):  # a fixed trip count: vectorised
            v = row[first + j]
            largest = max(largest, bits.dtype.type(bits[first + j] & abs_mask))
            smallest = min(smallest, bits[first + j] if v > zero else infinity)
            chunk_positives += np.int32(v > zero)
            ratio[first + j] = min(v, lo) / lo if v > zero else one
            above |= np.uint64(v > lo) << np.uint64(j)
        positives += chunk_positives
        while above:  # one step per loss above
            j = _lowest_bit(above)
            kept[size], index[size] = row[first + j], start + first + j
            size += 1
            above &= above - np.uint64(1)
    for i in range(whole, row.size):
        v = row[i]
        largest = max(largest, bits.dtype.type(bits[i] & abs_mask))
        smallest = min(smallest, bits[i] if v > zero else infinity)
        positives += v > zero
        ratio[i] = min(v, lo) / lo if v > zero else one
        if v > lo:
            kept[size], index[size] = v, start + i
            size += 1
    return positives, size, smallest, largest


def _product_sum(a, b):
    total = 0.0
    for i in range(a.size):
        total += np.float64(a[i] * b[i])  # the product rounded in the arrays' dtype, as np.multiply gives
    return total


def _positive_product_sum(row, a, b):
    total, zero = 0.0, b.dtype.type(0)
    for i in range(a.size):
        b[i] = b[i] if row[i] > zero else zero
        total += np.float64(a[i] * b[i])
    return total


def _capped_sweep(y, factors, m, above, start):
    n, k, tail = y.size, y.size, math.nan  # every loss capped until a group with h >= m
    r = start  # sum of (l / y[i])^q over the losses before y[i]
    i = 0
    while i < n:
        j = i + 1
        while j < n and y[j] == y[i]:
            j += 1
        if (n - i + above) + r >= m:  # h(y[i]) >= m: y[i] and every loss before it uncapped
            k, tail = n - j, r + (j - i)
        r = (r + (j - i)) * factors[j - 1]
        i = j
    return k, tail, r + above


def _capped_sweep_rows(y, factors, m, k, positives, tail):
    for row in range(y.shape[0]):
        first = 0
        while first < y.shape[1] and not y[row, first] > 0:
            first += 1
        positives[row] = y.shape[1] - first
        k[row], tail[row], _ = _capped_sweep(y[row, first:], factors[row, first:], m[row], 0, 0.0)


def _p1_write(flat, t, tau, share, out):
    zero = out.dtype.type(0)
    for row in range(flat.shape[0]):
        above, at, cut = tau[row], share[row], t[row]
        for i in range(flat.shape[1]):
            v = flat[row, i]
            out[row, i] = above if v > cut else (at if v == cut else zero)


_lowest_bit, _p1_split_block = _compile(_lowest_bit), _compile(_p1_split_block)  # called by the loops below
# reassociation lets the sums run in several lanes: the same terms, summed in another order than np.sum's
_product_sum_loop, _positive_product_sum_loop, _sum_above = (
    numba.njit(nogil=True, cache=True, fastmath={"reassoc"})(f) if numba else None
    for f in (_product_sum, _positive_product_sum, _sum_above))
_capped_sweep = _compile(_capped_sweep)  # called by _capped_sweep_rows too
_positive_fill_loop, _p1_split_loop, _p1_write_loop, _upper_pass_loop, _capped_sweep_rows_loop = (
    _compile(f) for f in (_positive_fill, _p1_split, _p1_write, _upper_pass, _capped_sweep_rows))


def positive_fill(flat: np.ndarray, cap: np.ndarray, out: np.ndarray) -> bool:
    """``out = cap[:, None] * (flat > 0)`` for ``(pools, n)`` losses and per-pool ``cap`` (cast to ``flat``'s
    dtype; inf allowed: 0 stays 0), and whether every entry of ``flat`` is finite."""
    bits_dtype, abs_mask, infinity = _ABS_BITS[flat.dtype]
    cap = np.ascontiguousarray(np.ravel(cap), dtype=flat.dtype)
    largest = _positive_fill_loop(flat, flat.view(bits_dtype), bits_dtype(abs_mask), cap, out)
    return bool(largest < infinity)


def p1_split(row: np.ndarray, lo, hi, kept: np.ndarray, want_sum: bool) -> tuple[int, int, float, bool]:
    """One pass over ``row``: the losses in ``[lo, hi]`` copied, in order, to ``kept`` (as many as fit);
    returns how many lie above ``hi``, how many inside (more than ``kept.size``: not all were kept), (if
    ``want_sum``) the float64 sum of those above (in another order than NumPy's pairwise sum: it may differ
    in the last bits), and whether every loss in ``row`` is finite."""
    bits_dtype, abs_mask, infinity = _ABS_BITS[row.dtype]
    over, size, over_sum, largest = _p1_split_loop(row, row.view(bits_dtype), bits_dtype(abs_mask), row.dtype.type(lo),
                                                   row.dtype.type(hi), kept, want_sum)
    return int(over), int(size), float(over_sum), bool(largest < infinity)


def p1_write(flat: np.ndarray, t: np.ndarray, tau: np.ndarray, share: np.ndarray, out: np.ndarray) -> None:
    """``out``: ``tau`` where ``flat > t``, ``share`` where ``flat == t``, 0 elsewhere, row by row (``t``,
    ``tau`` and ``share`` per row, in ``flat``'s dtype)."""
    as_rows = (np.ascontiguousarray(np.ravel(v), dtype=flat.dtype) for v in (t, tau, share))
    _p1_write_loop(flat, *as_rows, out)


def upper_pass(row: np.ndarray, lo, ratio: np.ndarray, kept: np.ndarray, index: np.ndarray, start: int):
    """The selection path's first pass over a block ``row`` of a pool (upper side, ``lo = t_lo > 0``):
    ``ratio = min(l, lo) / lo`` at positive losses (in ``row``'s dtype, as NumPy's minimum and divide give)
    and 1 at the others (NumPy's float32 power takes a slow path for 0: measured 3x slower with a quarter
    of zeros; ``positive_product_sum`` clears their powers), the losses above ``lo`` and their positions
    (``start`` + their place in ``row``) at the start of ``kept`` and ``index``; returns the number of
    positive losses, the number kept, the least positive loss (inf if none) and whether every loss is finite."""
    bits_dtype, abs_mask, infinity = _ABS_BITS[row.dtype]
    positives, size, smallest, largest = _upper_pass_loop(row, row.view(bits_dtype), bits_dtype(abs_mask),
                                                          row.dtype.type(lo), ratio, kept, index, start,
                                                          bits_dtype(infinity))
    least = np.array(smallest, dtype=bits_dtype).view(row.dtype)[()]
    return int(positives), int(size), least, bool(largest < infinity)


def product_sum(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)``, each product rounded in the arrays' dtype and summed in float64 (in another order
    than ``np.sum``: the last bits may differ)."""
    return float(_product_sum_loop(a, b))


def positive_product_sum(row: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``product_sum(a, b)`` after ``b = 0`` wherever ``row <= 0`` (in place)."""
    return float(_positive_product_sum_loop(row, a, b))


def capped_sweep(y: np.ndarray, q: float, m: float, above: int = 0, below: float = 0.0, below_ref: float = 1.0,
                 end: float | None = None) -> tuple[int, int, float, float]:
    r"""On one ascending row ``y`` of losses, with ``above`` more losses above it and ``below`` the sum of
    $(l / \mathrm{below\_ref})^q$ over those under it (``below_ref > 0``): ``(k, positives, tail, h_end)``.

    ``k`` counts ``y``'s capped losses: those above the last tie group with $h \ge m$, where
    $h(v) = \#\{l \ge v\} + \sum_{l < v} (l / v)^q$ over all the losses. ``tail`` is
    $\sum_{l \le \mathrm{ref}} (l / \mathrm{ref})^q$ at ``ref = y[-1 - k]`` (``below`` included; NaN where every
    positive loss is capped), ``h_end`` is $h$ at ``end`` (at least ``y``'s largest; NaN without it).

    The sum in $h$ is carried from each tie group to the next by the factor $(v / v')^q$ (float64,
    from NumPy's log and exp of the ratio), so every $h$ is within about $(n + 750)$ float64 ulps of
    the exact one (a term's factors multiply to its own power; those below $e^{-750}$ are 0 and $h \ge 1$).
    ``capped_count`` rounds differently: the two ``k`` can differ only where some $h$ is that close to
    $m$, where the weights with either ``k`` agree to that rounding (the loss at the crossing gets
    ``tau`` either way). As there, ``k + above < m`` wherever ``k > 0``.
    """
    first = int(np.searchsorted(y, 0, side="right"))
    positive = y[first:]
    if positive.size == 0:
        return 0, 0, math.nan, math.nan if end is None else above + rescaled_power_sum(below, below_ref, end, q)
    ratios = np.empty(positive.size)
    _step_factors(positive, q, ratios)
    ratios[-1] = 1.0 if end is None else rescaled_power_sum(1.0, float(positive[-1]), end, q)
    start = rescaled_power_sum(below, below_ref, float(positive[0]), q)
    k, tail, h_end = _capped_sweep(positive, ratios, float(m), int(above), start)
    return int(k), int(positive.size), float(tail), math.nan if end is None else float(h_end)


def capped_sweep_rows(y: np.ndarray, q: float, m: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``capped_sweep`` on every ascending row of ``y`` (2-D; no losses above or below the rows, no end),
    with ``m`` per row: int64 ``k`` and ``positives``, float64 ``tail`` (NaN where every positive loss is
    capped). The factors are computed for rows of about ``block`` losses at a time (one float64 buffer)."""
    rows, n = y.shape
    k, positives, tail = np.empty(rows, dtype=np.int64), np.empty(rows, dtype=np.int64), np.empty(rows)
    m = np.ascontiguousarray(np.broadcast_to(m, (rows,)), dtype=np.float64)
    step = max(1, block // max(n, 1))
    factors = np.empty((min(step, rows), n))
    for lo in range(0, rows, step):
        part = slice(lo, min(lo + step, rows))
        y_part, f = y[part], factors[: part.stop - lo]
        _step_factors(y_part, q, f)
        f[:, -1] = 1.0  # unused: no end
        _capped_sweep_rows_loop(y_part, f, m[part], k[part], positives[part], tail[part])
    return k, positives, tail


def _step_factors(y: np.ndarray, q: float, out: np.ndarray) -> None:
    """``out[..., i] = (y[..., i] / y[..., i + 1])^q`` along the last axis of C-contiguous ``y`` and ``out``, in
    float64, as one pass over the flattened arrays (a row's last column gets the quotient by the next row's
    first loss: the caller sets it). A ratio of 0 or below 1e-308 (float64 losses) gives 0; two zeros give
    NaN, which the sweep never reads."""
    flat, factors = y.reshape(-1), out.reshape(-1)[:-1]
    with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):  # over: rows' ends only
        np.divide(flat[:-1], flat[1:], out=factors, dtype=np.float64)
        np.log(factors, out=factors)
        factors *= q
        np.exp(factors, out=factors)
