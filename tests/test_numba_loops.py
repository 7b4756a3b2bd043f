"""The compiled loops of ``solvers._numba_loops`` (the ``fast`` extra) give exactly what their NumPy twins
give: each loop on hostile rows (ties, zeros, -0.0, negatives, subnormals, NaN and infinities, lengths
around its chunk), and the solvers with and without the loops (same weights and thresholds, values to a
sum's rounding, same errors). ``capped_sweep``, which rounds its sums differently from its twin, and that
twin are both held to the dual's h computed in mpmath."""

import math
import os
import subprocess
import sys

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lmp_theory import paper_parameters
from solvers import _numba_loops as loops
from solvers import _numpy_select, _numpy_sort
from solvers import numpy as lmp_np

pytest.importorskip("numba")

DTYPES = [np.float32, np.float64]


@pytest.fixture
def numpy_only(monkeypatch):
    """Runs the solvers without the loops (``ENABLED`` is read at every call)."""
    return lambda: monkeypatch.setattr(loops, "ENABLED", False)


def _hostile(dtype, n: int, rng) -> np.ndarray:
    """Exponential losses rounded to thirds (ties), with zeros, -0.0, negatives and subnormals."""
    x = np.round(rng.exponential(size=n) * 3) / 3
    x[rng.random(n) < 0.1] = 0.0
    x[rng.random(n) < 0.05] = -0.0
    x[rng.random(n) < 0.05] *= -1.0
    x[rng.random(n) < 0.05] = np.finfo(dtype).smallest_subnormal * 3
    return x.astype(dtype)


def test_fits_only_contiguous_float32_and_float64(monkeypatch):
    x = np.ones((3, 64))
    assert loops.fits(x) and loops.fits(x.astype(np.float32))
    assert not loops.fits(x.astype(np.float16)) and not loops.fits(x[:, ::2]) and not loops.fits(x.T)
    assert not loops.fits(x, x.astype(np.float32))  # one dtype for all
    monkeypatch.setattr(loops, "ENABLED", False)
    assert not loops.fits(x)


def test_the_environment_variable_turns_the_loops_off():
    code = "import solvers._numba_loops as loops; print(loops.ENABLED)"
    for value, expected in (("0", "False"), ("1", "True")):
        env = {**os.environ, "LMP_THEORY_NUMBA": value}
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert run.stdout.strip() == expected, run.stderr


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [None, math.nan, -math.nan, math.inf, -math.inf])
def test_positive_fill_is_cap_on_positives_and_reports_finiteness(dtype, bad):
    rng = np.random.default_rng(0)
    flat = np.stack([_hostile(dtype, 1000, rng) for _ in range(3)])
    if bad is not None:
        flat[1, 517] = bad
    cap = np.array([0.25, np.inf, 3.0])
    out = np.empty_like(flat)
    with np.errstate(over="ignore"):
        finite = loops.positive_fill(flat, cap.astype(dtype), out)
    assert finite == bool(np.isfinite(flat).all())
    expected = np.where(flat > 0, cap.astype(dtype)[:, None], dtype(0))
    np.testing.assert_array_equal(out, expected)
    assert not np.signbit(out).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 1000, 4096 + 17])
@pytest.mark.parametrize("want_sum", [False, True])
def test_p1_split_gathers_the_bracket_and_counts_above(dtype, n, want_sum):
    rng = np.random.default_rng(n)
    row = _hostile(dtype, n, rng)
    for lo, hi in [(1.0, 1.0), (2 / 3, 2.0), (1e-3, np.inf), (5.0, 4.0), (np.finfo(dtype).smallest_subnormal, 0.5)]:
        lo, hi = dtype(lo), dtype(hi)
        kept = np.full(max(n, 1), np.nan, dtype=dtype)
        over, size, over_sum, finite = loops.p1_split(row, lo, hi, kept, want_sum)
        assert finite
        inside = (row >= lo) & (row <= hi)
        np.testing.assert_array_equal(kept[:size], row[inside])  # in pool order
        assert over == np.count_nonzero(row > hi)
        expected_sum = float(np.sum(row[row > hi], dtype=np.float64)) if want_sum else 0.0
        assert over_sum == pytest.approx(expected_sum, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("capacity", [0, 1, 700, 2**16 + 7])
def test_p1_split_keeps_what_fits_and_counts_the_rest(capacity):
    """A row across the loop's blocks of 2^16 and a buffer shorter than the losses inside: the first
    ``capacity`` of them kept, in order, all of them counted, the sum above the same in every block."""
    row = _hostile(np.float32, 3 * 2**16 + 65, np.random.default_rng(capacity))
    lo, hi = np.float32(1 / 3), np.float32(2.0)
    kept = np.full(capacity, np.nan, dtype=np.float32)
    over, size, over_sum, finite = loops.p1_split(row, lo, hi, kept, True)
    inside = row[(row >= lo) & (row <= hi)]
    assert finite and size == inside.size and over == np.count_nonzero(row > hi)
    np.testing.assert_array_equal(kept[:size], inside[:capacity])
    assert over_sum == pytest.approx(float(np.sum(row[row > hi], dtype=np.float64)), rel=1e-12, abs=0.0)


def test_select_p1_passes_again_when_more_losses_were_inside_than_the_sample_said(monkeypatch):
    """A buffer of one loss: each pool's compiled pass runs again into a buffer of the right size, and
    the answer is the sort path's."""
    monkeypatch.setattr(_numpy_select, "_CAPACITY_FACTOR", 0)
    monkeypatch.setattr(_numpy_select, "_CAPACITY_MARGIN", 1)
    calls = []
    original = loops.p1_split

    def spy(row, lo, hi, kept, want_sum):
        calls.append(kept.size)
        return original(row, lo, hi, kept, want_sum)

    monkeypatch.setattr(loops, "p1_split", spy)
    x = _hostile(np.float32, 3 * 2**15, np.random.default_rng(5)).reshape(3, 2**15)
    gamma, tau = paper_parameters(2**15, 1.0, 0.1)
    got = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="select")
    assert calls[::2] == [1, 1, 1] and min(calls[1::2]) > 1
    want = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="sort")
    np.testing.assert_array_equal(got.weights, want.weights)
    np.testing.assert_array_equal(got.threshold, want.threshold)
    np.testing.assert_allclose(got.value, want.value, rtol=1e-6)


@settings(max_examples=80, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 200), elements=st.floats(-2, 4, width=32, allow_subnormal=True)
                  | st.sampled_from([np.nan, np.inf, -np.inf, -0.0])),
       st.floats(0, 3, width=32), st.floats(0, 3, width=32))
def test_p1_split_property(row, lo, hi):
    kept = np.empty(max(row.size, 1), dtype=np.float32)
    over, size, _, finite = loops.p1_split(row, lo, hi, kept, False)
    assert finite == bool(np.isfinite(row).all())
    assert over == np.count_nonzero(row > np.float32(hi))
    np.testing.assert_array_equal(kept[:size], row[(row >= np.float32(lo)) & (row <= np.float32(hi))])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 63, 64, 65, 5000])
@pytest.mark.parametrize("bad", [None, math.nan, math.inf])
def test_upper_pass_is_the_numpy_first_pass(dtype, n, bad):
    rng = np.random.default_rng(n)
    row = _hostile(dtype, n, rng)
    if bad is not None:
        row[n // 2] = bad
    lo = dtype(2 / 3)
    ratio, kept, index = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, np.int64)
    positives, size, least, finite = loops.upper_pass(row, lo, ratio, kept, index, 1000)
    lp = np.maximum(row, dtype(0))
    assert finite == bool(np.isfinite(row).all())
    if finite:  # 1 (a fast power) where l <= 0
        np.testing.assert_array_equal(ratio, np.where(row > 0, np.minimum(lp, lo) / lo, dtype(1)))
        assert least == (row[row > 0].min() if (row > 0).any() else np.inf)
    assert positives == np.count_nonzero(row > 0)
    np.testing.assert_array_equal(index[:size], 1000 + np.flatnonzero(row > lo))
    np.testing.assert_array_equal(kept[:size], row[row > lo])
    a, b = np.abs(_hostile(dtype, n, rng)), rng.random(n).astype(dtype)
    assert loops.product_sum(a, b) == pytest.approx(float(np.sum(a * b, dtype=np.float64)), rel=1e-13)
    cleared = b.copy()
    total = loops.positive_product_sum(row, a, cleared)
    np.testing.assert_array_equal(cleared, np.where(row > 0, b, dtype(0)))
    assert total == pytest.approx(float(np.sum(a * cleared, dtype=np.float64)), rel=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_p1_write_is_tau_above_share_at_zero_below(dtype):
    rng = np.random.default_rng(3)
    flat = np.stack([_hostile(dtype, 777, rng) for _ in range(4)])
    t = np.array([1.0, 0.0, 2 / 3, 100.0], dtype=dtype)
    tau = np.array([0.5, np.inf, 1e-3, 0.0], dtype=dtype)
    share = np.array([0.25, 0.0, 1e-4, 0.0], dtype=dtype)
    out = np.full_like(flat, np.nan)
    loops.p1_write(flat, t, tau, share, out)
    expected = np.where(flat > t[:, None], tau[:, None], np.where(flat == t[:, None], share[:, None], dtype(0)))
    np.testing.assert_array_equal(out, expected)


def _problems(dtype):
    """Pools where the loops run (no mask, n at the select path's sizes and below) for every kind of p, with ties
    at the cut."""
    rng = np.random.default_rng(11)
    x = np.abs(_hostile(dtype, 3 * 20_000, rng)).reshape(3, 20_000)
    x[1] = np.round(x[1])  # long tie runs: the cut falls inside one
    yield x, 1.0, np.array([40.0, 7.0, 900.0]), 0.01
    yield x, math.inf, np.array([4.0, 0.5, 9.0]), 0.5
    yield x[0], 1.0, 1e9, 1.0  # every positive loss capped
    yield x[2], 1.0, 3.0, math.inf  # no cap
    for p in (1.05, 1.7, 4.0):  # the first pass of 1 < p < inf (1.05: float32 computed in float64)
        gamma, tau = paper_parameters(x.shape[1], p, 0.1)
        yield x, p, gamma, tau
    y = x.copy()
    y[0, :7] = -1.0  # negative losses, and ratios that underflow
    y[1, 3::5] = np.finfo(dtype).smallest_subnormal
    yield y, 1.7, *paper_parameters(x.shape[1], 1.7, 0.3)
    short = np.ascontiguousarray(y[:, :3000])  # the sort path's full count, compiled (both methods)
    yield short, 1.7, *paper_parameters(short.shape[1], 1.7, 0.3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["sort", "select"])
def test_solvers_with_and_without_the_loops_agree(dtype, method, numpy_only, monkeypatch):
    calls = {}
    for name in ("positive_fill", "p1_split", "p1_write", "upper_pass", "capped_sweep", "capped_sweep_rows"):
        loop = getattr(loops, name)
        monkeypatch.setattr(loops, name, lambda *a, _loop=loop, _name=name: calls.update({_name: True}) or _loop(*a))
    compiled = [(lmp_np.lmp_weights(x, p, g, t, method=method), lmp_np.lmp_solve(x, p, g, t, method=method))
                for x, p, g, t in _problems(dtype)]
    both = {"positive_fill", "p1_write", "capped_sweep", "capped_sweep_rows"}  # sort path: located and short rows
    assert set(calls) == both | ({"p1_split", "upper_pass"} if method == "select" else set())
    numpy_only()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for (x, p, g, t), (weights, solved) in zip(_problems(dtype), compiled):
        reference = lmp_np.lmp_solve(x, p, g, t, method=method)
        if p in (1.0, math.inf):  # the same operations on the same values: the same bits
            np.testing.assert_array_equal(weights, lmp_np.lmp_weights(x, p, g, t, method=method))
            np.testing.assert_array_equal(solved.weights, reference.weights)
            np.testing.assert_array_equal(solved.threshold, reference.threshold)
        else:  # the first pass's power sum is summed in another order, the count's h carried group to group
            np.testing.assert_allclose(weights, reference.weights, rtol=rtol, atol=0)
            np.testing.assert_allclose(solved.weights, reference.weights, rtol=rtol, atol=0)
            np.testing.assert_allclose(solved.threshold, reference.threshold, rtol=rtol)
            np.testing.assert_array_equal(weights == 0, reference.weights == 0)
            np.testing.assert_array_equal(weights == np.max(weights, axis=-1, keepdims=True),
                                          reference.weights == np.max(reference.weights, axis=-1, keepdims=True))
        np.testing.assert_allclose(solved.value, reference.value, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_p_inf_rejects_non_finite_losses_with_and_without_the_loops(dtype, bad, numpy_only):
    x = np.ones((2, 5000), dtype=dtype)
    x[1, 4321] = bad
    mask = np.ones(x.shape, dtype=bool)
    mask[1, 4321] = False
    for _ in range(2):
        with pytest.raises(ValueError, match="losses must be finite"):
            lmp_np.lmp_weights(x, math.inf, 1.0, 0.5)
        np.testing.assert_array_equal(lmp_np.lmp_weights(x, math.inf, 1.0, 0.5, mask=mask), 0.5 * mask)
        numpy_only()


@pytest.mark.parametrize("start", [10, 70_000, 3 * 2**16 - 200])  # in the first, a middle and the last block
def test_the_compiled_bracket_pass_checks_every_block(start):
    x = np.random.default_rng(2).exponential(size=3 * 2**16).astype(np.float32)
    sampled = set(_numpy_select._sample_index(x.size).tolist())  # checked before the pass: avoided here
    x[next(i for i in range(start, x.size) if i not in sampled)] = np.nan
    with pytest.raises(ValueError, match="losses must be finite"):
        lmp_np.lmp_weights(x, 1.0, 300.0, 0.01, method="select")


def _exact_sweep(y: np.ndarray, q: float, m: float, above: int, below: float, below_ref: float, end: float):
    """``capped_sweep``'s results from the definition, in mpmath at 60 digits, and the least relative
    distance of an h at a positive loss from m (where the count may round either way)."""
    with mp.workdps(60):
        q_, values = mp.mpf(q), [mp.mpf(float(v)) for v in y if v > 0]

        def h(t):  # #{l >= t} + sum_{l < t} (l / t)^q over the row, the losses above it and those below
            return (above + sum(1 for v in values if v >= t) + sum((v / t) ** q_ for v in values if v < t)
                    + mp.mpf(below) * (mp.mpf(below_ref) / t) ** q_)

        at = [h(v) for v in values]
        uncapped = [i for i, value in enumerate(at) if value >= m]  # ties share h: a group's last is its own
        k = len(values) - (max(uncapped) + 1 if uncapped else 0)
        ref = values[len(values) - 1 - k] if k < len(values) else None
        tail = None if ref is None else h(ref) - (above + sum(1 for v in values if v >= ref)) + sum(
            1 for v in values if v == ref)
        closest = min((abs(value - m) / m for value in at), default=mp.inf)
        return k, len(values), tail, h(mp.mpf(end)), float(closest)


@st.composite
def _sweep_rows(draw):
    """An ascending row (ties, zeros, a wide range), q from near 2 to p within 1e-9 of 1, m, and the
    counts and sum around the row."""
    dtype = draw(st.sampled_from(DTYPES))
    levels = draw(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=8))
    size = draw(st.integers(0, 40))
    row = np.sort(np.array([draw(st.sampled_from([0.0, *levels])) for _ in range(size)], dtype=dtype))
    q = draw(st.sampled_from([1.5, 2.0, 17 / 7, 11.0, 1001.0, 1e9]))
    above = draw(st.integers(0, 5))
    positive = row[row > 0]
    least = float(positive[0]) if positive.size else 1.0
    below = draw(st.sampled_from([0.0, 1.0, 37.5]))
    below_ref = least * draw(st.sampled_from([1.0, 0.999, 0.5]))
    m = draw(st.floats(0.5, above + size + below + 2.0))
    end = float(positive[-1]) * draw(st.sampled_from([1.0, 1.25])) if positive.size else 2.0
    return row, q, m, above, below, below_ref, end


@settings(max_examples=150, deadline=None)
@given(_sweep_rows(), st.sampled_from(["compiled", "numpy"]))
def test_capped_sweep_and_its_numpy_twin_are_the_dual_h_to_rounding(problem, route):
    """k, the positive count, the tail sum at ref and h at the row's end: as their definitions give in
    mpmath, k exactly unless some h is within 1e-9 of m (either count is then right to rounding)."""
    row, q, m, above, below, below_ref, end = problem
    if route == "compiled":
        got = loops.capped_sweep(row, q, m, above, below, below_ref, end)
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(loops, "ENABLED", False)
            got = _numpy_sort.capped_and_tail(row, q, m, above, below, below_ref, end)
    k, positives, tail, h_end, closest = _exact_sweep(row, q, m, above, below, below_ref, end)
    assert got[1] == positives
    assert got[3] == pytest.approx(float(h_end), rel=1e-11)
    if closest > 1e-9:
        assert got[0] == k
        if k < positives:
            assert got[2] == pytest.approx(float(tail), rel=1e-11)
        else:
            assert math.isnan(got[2])
    assert got[0] + above < m or got[0] == 0


def test_lowest_bit_is_the_position_of_the_lowest_set_bit():
    rng = np.random.default_rng(3)
    for position in range(64):
        for higher in (0, *rng.integers(0, 2**63, size=5, dtype=np.uint64)):
            word = (np.uint64(higher) << np.uint64(1) | np.uint64(1)) << np.uint64(position)
            assert loops._lowest_bit(np.uint64(word)) == position


@settings(max_examples=60, deadline=None)
@given(st.lists(_sweep_rows(), min_size=1, max_size=6), st.integers(1, 90))
def test_capped_sweep_rows_is_capped_sweep_on_each_row(problems, block):
    """The sort path's chunk at once (rows of one length and dtype, factors computed ``block`` losses at a
    time, zeros leading): each row's k, positive count and tail sum as ``capped_sweep`` gives them alone."""
    row, q = problems[0][0], problems[0][1]
    rows = [np.sort(np.resize(r, row.size).astype(row.dtype)) for r, *_ in problems] if row.size else []
    if not rows:
        return
    y, m = np.stack(rows), np.array([max(problem[2], 0.5) for problem in problems])
    k, positives, tail = loops.capped_sweep_rows(y, q, m, block)
    for i in range(y.shape[0]):
        alone = loops.capped_sweep(y[i], q, float(m[i]))
        assert (k[i], positives[i]) == alone[:2]
        assert tail[i] == alone[2] or math.isnan(tail[i]) and math.isnan(alone[2])
