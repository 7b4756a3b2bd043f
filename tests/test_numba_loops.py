"""The compiled loops of ``solvers._numba_loops`` (the ``fast`` extra) give exactly what their NumPy twins
give: each loop on hostile rows (ties, zeros, -0.0, negatives, subnormals, NaN and infinities, lengths
around its chunk), and the solvers with and without the loops (same weights and thresholds, values to a
sum's rounding, same errors)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lmp_theory import paper_parameters
from solvers import _numba_loops as loops
from solvers import _numpy_select
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
    if finite:
        np.testing.assert_array_equal(ratio, np.minimum(lp, lo) / lo)
        assert least == lp.min() and not np.signbit(least)
    assert positives == np.count_nonzero(row > 0)
    np.testing.assert_array_equal(index[:size], 1000 + np.flatnonzero(row > lo))
    np.testing.assert_array_equal(kept[:size], row[row > lo])
    a, b = np.abs(_hostile(dtype, n, rng)), rng.random(n).astype(dtype)
    assert loops.product_sum(a, b) == pytest.approx(float(np.sum(a * b, dtype=np.float64)), rel=1e-13)


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
    """Pools where the loops run (no mask, n at the select path's sizes) for p = 1 and inf, with ties at the cut."""
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["sort", "select"])
def test_solvers_with_and_without_the_loops_agree(dtype, method, numpy_only, monkeypatch):
    calls = {}
    for name in ("positive_fill", "p1_split", "p1_write", "upper_pass"):
        loop = getattr(loops, name)
        monkeypatch.setattr(loops, name, lambda *a, _loop=loop, _name=name: calls.update({_name: True}) or _loop(*a))
    compiled = [(lmp_np.lmp_weights(x, p, g, t, method=method), lmp_np.lmp_solve(x, p, g, t, method=method))
                for x, p, g, t in _problems(dtype)]
    assert set(calls) == {"positive_fill", "p1_write"} | ({"p1_split", "upper_pass"} if method == "select" else set())
    numpy_only()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for (x, p, g, t), (weights, solved) in zip(_problems(dtype), compiled):
        reference = lmp_np.lmp_solve(x, p, g, t, method=method)
        if p in (1.0, math.inf):  # the same operations on the same values: the same bits
            np.testing.assert_array_equal(weights, lmp_np.lmp_weights(x, p, g, t, method=method))
            np.testing.assert_array_equal(solved.weights, reference.weights)
            np.testing.assert_array_equal(solved.threshold, reference.threshold)
        else:  # the first pass's power sum is summed in another order
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
