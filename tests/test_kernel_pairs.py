"""Each closed-form formula exists once per backend (NumPy, Torch): every pair on the same inputs.

The NumPy formulas are in ``solvers.problem`` and ``solvers._numpy_closed_form``, their Torch twins in
``solvers._torch_closed_form``; the count of capped losses is in each backend's sort path. Inputs include the edges: ``tau = inf``, ``k = 0``, ``m`` within a
few ulps of an integer, ratios that underflow, zero and subnormal losses.
"""

import math

import numpy as np
import pytest
import torch

from solvers import _numpy_closed_form as np_cf
from solvers import _torch_closed_form as torch_cf
from solvers import problem
from solvers import _numpy_capped, _numpy_sort, _torch_sort
from solvers._policy import computes_in_float64
from solvers._numpy_sort import p1_cut, write_p1_rows
from solvers._torch_sort import _kth_largest_by_sort

RNG = np.random.default_rng(11)
POOLS = 64
GAMMA = np.concatenate([RNG.uniform(0.01, 3.0, POOLS - 4), [1.0, 1.0, 1e-300, 1e300]])
TAU = np.concatenate([RNG.uniform(0.001, 1.0, POOLS - 8), [math.inf] * 4, [1.0, 1.0 - 2**-52, 1e-300, 1e300]])


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _same(got: torch.Tensor, expected, ulps: float = 4.0):
    expected = np.asarray(expected, dtype=got.numpy().dtype)
    got = got.numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    finite = np.isfinite(expected)
    spacing = np.spacing(np.abs(expected[finite]).astype(got.dtype))
    assert np.all(np.abs(got[finite] - expected[finite]) <= np.broadcast_to(ulps, expected.shape)[finite] * spacing)


def test_log_ratio():
    a = np.concatenate([RNG.exponential(size=200), [1e-308, 5e-324, 1e308, 1.0]])
    b = np.concatenate([RNG.exponential(size=200), [1e308, 1.0, 1e-308, 1.0]])
    _same(torch_cf.log_ratio(_t(a), _t(b)), problem.log_ratio(a, b), ulps=1)


@pytest.mark.parametrize("p", [1.0 + 1e-3, 1.7, 3.0, 1e3, 1e6])
def test_cap_count(p):
    """m = exp(p log(gamma/tau)): a last-bit difference of the two libraries' log is amplified p-fold."""
    _same(torch_cf.cap_count(p, _t(GAMMA), _t(TAU)), problem.cap_count(p, GAMMA, TAU), ulps=1 + p)


def test_p1_cap_count_and_share():
    _same(torch_cf.p1_cap_count(_t(GAMMA), _t(TAU)), np_cf.p1_cap_count(GAMMA, TAU), ulps=0)
    above = RNG.integers(0, 5, POOLS).astype(np.float64)
    tied = RNG.integers(0, 4, POOLS).astype(np.float64)  # 0: no loss at the cut
    _same(torch_cf.p1_share(_t(GAMMA), _t(TAU), _t(above), _t(tied)), np_cf.p1_share(GAMMA, TAU, above, tied), ulps=0)


@pytest.mark.parametrize("p", [1.0 + 1e-3, 1.7, 3.0, 1e3])
def test_holder_budget_coefficient_and_threshold(p):
    m = problem.cap_count(p, GAMMA, TAU)
    k = np.floor(m * RNG.uniform(0.0, 1.0, POOLS))  # k < m where m > 0, and k = 0 where there is no cap
    k[:8] = 0.0
    m_near = np.nextafter(k[8:12] + 1.0, math.inf)  # m - k within an ulp of 1
    m[8:12] = m_near
    # exp and log1p of two libraries: an ulp apart where NumPy dispatches to its own SIMD (AVX-512) kernels
    _same(torch_cf.holder_budget(_t(GAMMA), p, _t(m), _t(k)), np_cf.holder_budget(GAMMA, p, m, k), ulps=1)
    ref = RNG.exponential(size=POOLS)
    tail_sum = 1.0 + RNG.exponential(size=POOLS) * 100
    _same(torch_cf.holder_coef(_t(GAMMA), p, _t(m), _t(k), _t(tail_sum)),
          np_cf.holder_coef(GAMMA, p, m, k, tail_sum), ulps=4)  # pow of two libraries
    q = problem.conjugate(p)
    _same(torch_cf.holder_threshold(_t(ref), _t(tail_sum), _t(m), _t(k), q),
          np_cf.holder_threshold(ref, tail_sum, m, k, q), ulps=2)  # exp of a difference of logs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1.0 + 1e-3, 1.3, 1.7, 3.0])
def test_weights(p, dtype):
    """Torch's ``holder_weights`` against NumPy's ``capped_power_weights`` with the same budget and threshold."""
    n = 300
    lp = RNG.exponential(size=(POOLS, n))
    lp[:, ::7] = 0.0
    lp[:, 1::11] *= 1e-40  # ratios that underflow in float32 (and stay positive in float64)
    lp = lp.astype(dtype)
    gamma = np.full(POOLS, 1.0)
    tau = np.concatenate([np.full(POOLS - 4, 0.05), np.full(4, math.inf)])
    m = problem.cap_count(p, gamma, tau)
    k = np.minimum(np.floor(RNG.uniform(0, 1, POOLS) * m), 9.0)
    y = -np.sort(-lp.astype(np.float64), axis=1)
    ref = y[np.arange(POOLS), k.astype(int)]
    q = problem.conjugate(p)
    partial = np.ones(POOLS, dtype=bool)
    partial[:3] = False  # every positive loss capped
    with np.errstate(under="ignore", over="ignore"):  # the capped losses' powers are not summed
        tail_sum = np.sum(np.where(np.arange(n) >= k[:, None], (y / ref[:, None]) ** q, 0.0), axis=1)
    weights, threshold = torch_cf.holder_weights(_t(lp), p, _t(gamma), _t(tau), _t(m), _t(k), _t(ref), _t(tail_sum),
                                                 _t(partial))
    coef = np_cf.holder_coef(gamma, p, m, k, tail_sum)
    expected = np_cf.capped_power_weights(lp, ref[:, None], coef[:, None], q, tau[:, None])
    expected = np.where(partial[:, None], expected, tau[:, None].astype(dtype))
    expected = np.where(lp > 0, expected, 0.0)
    assert weights.dtype == torch.from_numpy(lp).dtype
    # ratios below the smallest normal go through logs: in float64 in NumPy, in the work dtype in Torch
    tiny = (lp / ref[:, None] < np.finfo(dtype).tiny) & (lp > 0)
    # NumPy's float64 power is exp(e log r) (np_cf.power): the rounding of log r and of the product,
    # 2 |e log r| ulps more, e = q - 1, r = lp / ref
    with np.errstate(divide="ignore"):
        log_error = 2 * np.abs((q - 1.0) * np.log(lp / ref[:, None])) if dtype == np.float64 else 0.0
    ulps = np.broadcast_to(4.0 + log_error, lp.shape)
    _same(weights[~torch.from_numpy(tiny)], expected[~tiny], ulps=np.where(np.isfinite(ulps), ulps, 4.0)[~tiny])
    np.testing.assert_allclose(weights.numpy()[tiny], expected[tiny], rtol=1e-5 if dtype == np.float32 else 1e-12)
    _same(threshold[partial], np_cf.holder_threshold(ref, tail_sum, m, k, q)[partial], ulps=2)  # exp, log: see above


@pytest.mark.parametrize("p", [1.0, 1.0 + 1e-3, 1.124, 1.125, 1.7, math.inf])
def test_work_dtype_follows_the_policy(p):
    for dtype, is_float64 in [(torch.float64, True), (torch.float32, False), (torch.bfloat16, False)]:
        expected = torch.float64 if computes_in_float64(is_float64, p) else torch.float32
        assert torch_cf.work_dtype(dtype, p) == expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1.0 + 1e-15, 1.0 + 1e-3, 1.3, 1.7, 4.0, 1e3])
def test_capped_count(p, dtype):
    """The number of capped losses: Torch on descending rows at once, NumPy block by block on ascending rows."""
    lp = RNG.exponential(size=(POOLS, 500))
    lp[::2] = np.round(lp[::2] * 3) / 3  # long tie runs
    lp[:, ::5] = 0.0
    lp = lp.astype(dtype)
    m = RNG.uniform(0, 600, POOLS)  # every k from none to all positive losses
    m[:4] = 0.0
    ascending = np.sort(lp, axis=1)
    k_np, positives_np = _numpy_capped.capped_count(ascending, problem.conjugate(p), m, width=128)
    k_torch, positives_torch = _torch_sort.capped_count(_t(ascending[:, ::-1]), problem.conjugate(p), _t(m))
    np.testing.assert_array_equal(positives_torch.numpy(), positives_np)
    np.testing.assert_array_equal(k_torch.numpy(), k_np)
    assert 0 < k_np.max() and k_np.min() == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_p_inf(dtype):
    lp = RNG.standard_normal((POOLS, 50)).astype(dtype)
    with np.errstate(over="ignore"):  # min(gamma, tau) = 1e300 does not fit in float32: inf in both
        weights, value, threshold = np_cf.pinf_pools(lp, None, GAMMA, TAU)
    torch_weights, torch_threshold = torch_cf.pinf_weights(_t(lp), _t(GAMMA), _t(TAU))
    _same(torch_weights, weights, ulps=0)
    _same(torch_threshold, threshold, ulps=0)
    assert np.all(value >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_p1_weights(dtype):
    """p = 1: NumPy's sort path (binary search in ascending rows, one write pass in the losses' dtype)
    against Torch's (the cut by sorting)."""
    lp = np.round(RNG.exponential(size=(POOLS, 200)) * 4) / 4  # ties at the cut
    lp[:, ::6] = 0.0
    lp = lp.astype(dtype)
    threshold, above, at, share = p1_cut(np.sort(lp, axis=1), GAMMA, TAU)
    weights = np.empty_like(lp)
    write_p1_rows((lp, None), threshold, np.where(above > 0, TAU, 0.0), share, 128, weights)
    torch_weights, torch_threshold = torch_cf.p1_weights(_t(lp), _t(GAMMA), _t(TAU), _kth_largest_by_sort)
    _same(torch_weights, weights, ulps=0)
    _same(torch_threshold, threshold, ulps=0)
    few = p1_cut(np.sort(lp[:5], axis=1), GAMMA[:5], TAU[:5])  # sorted_rank by np.searchsorted, row by row
    for got, want in zip(few, (threshold, above, at, share)):
        np.testing.assert_array_equal(got, want[:5])
