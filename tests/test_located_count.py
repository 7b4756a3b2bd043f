"""The sort path's located capped count (``locate_capped``: power sums at every SUB-th column, then
the full count on a window) gives the full count's k, and its tail sum to the work dtype's rounding;
rows it does not reach are left to the full count, and the solver's answers do not change."""

import math

import numpy as np
import pytest

from lmp_theory import paper_parameters
from solvers import _numpy_capped, _numpy_sort
from solvers import numpy as lmp_np
from solvers._numpy_capped import capped_count, locate_capped
from solvers._numpy_sort import tail_sum
from solvers._policy import computes_in_float64
from solvers.problem import conjugate

TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-11}


def _rows(dtype, n: int, rng) -> np.ndarray:
    """Ascending positive parts: plain, tie runs across sub-blocks, zeros, 8 decades, all equal,
    and one run of n / 3 tied losses in the middle."""
    x = rng.exponential(size=(6, n))
    x[1] = np.round(x[1] * 3) / 3
    x[2, ::3] = 0.0
    x[3] = 10.0 ** rng.uniform(-8, 0, n)
    x[4] = 0.5
    x[5, n // 3: 2 * n // 3] = 1.0
    return np.sort(x.astype(dtype), axis=1)


@pytest.mark.parametrize("sub", [16, 1024])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.001, 1.05, 1.3, 1.7, 4.0, 1e3])
def test_located_count_is_the_full_count(monkeypatch, sub, dtype, p):
    monkeypatch.setattr(_numpy_capped, "SUB", sub)
    rng = np.random.default_rng(7)
    n = 3000 if sub == 16 else 20_000
    y = _rows(dtype, n, rng)
    work = np.dtype(np.float64 if computes_in_float64(dtype == np.float64, p) else np.float32)
    q = conjugate(p)
    positives = np.count_nonzero(y > 0, axis=1)
    reached = 0
    for share in (0.0, 0.001, 0.05, 0.3, 0.7, 0.999, 1.2):
        m = share * positives + rng.uniform(0, 1, positives.size)
        m[4] = math.floor(m[4])  # an integer m on the row of equal losses
        k, got_positives, tail, located = locate_capped(y, q, m, work, width=128)
        want_k, want_positives = capped_count(y, q, m, width=128)
        reached += int(np.count_nonzero(located))
        np.testing.assert_array_equal(k[located], want_k[located])
        np.testing.assert_array_equal(got_positives[located], want_positives[located])
        uncapped = located & (want_k < want_positives)
        ref = y[np.arange(y.shape[0]), y.shape[1] - 1 - np.minimum(want_k, y.shape[1] - 1)].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # rows with every positive loss capped
            want_tail = tail_sum(y, want_k, ref, q, width=128)
        np.testing.assert_allclose(tail[uncapped], want_tail[uncapped], rtol=TOLERANCE[work], atol=0)
    assert reached >= (30 if p > 1.01 else 5)  # q = 1001: rows spanning decades are not reached


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.05, 1.7, 10.0])
def test_the_sort_path_answers_alike_with_and_without_locating(monkeypatch, dtype, p):
    """Pools of 2^14 (located by default) against the full count everywhere, per-pool parameters, a mask."""
    rng = np.random.default_rng(3)
    x = rng.exponential(size=(3, 2**14)).astype(dtype)
    x[:, ::4] *= dtype(1e-8)
    x[1] = np.round(x[1] * 4) / 4
    mask = rng.random(x.shape) < 0.9
    parameters = [paper_parameters(int(count), p, ratio) for count, ratio in zip(mask.sum(1), (0.01, 0.1, 0.5))]
    gamma, tau = (np.array(v) for v in zip(*parameters))
    calls = []
    original = _numpy_sort.locate_capped
    monkeypatch.setattr(_numpy_sort, "locate_capped", lambda *a: calls.append(original(*a)) or calls[-1])
    located = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
    assert calls and calls[0][3].all()
    monkeypatch.setattr(_numpy_sort, "LOCATE_MIN_N", 2**40)
    full = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    for got, want in zip(located, full):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
