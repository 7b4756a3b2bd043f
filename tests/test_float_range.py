"""Losses at the ends of the float range: the right value (sums scaled by the pool's largest loss) or a
clear error, never NaN, 0 or inf where the answer is a normal number.

Oracles: positive homogeneity, ``L(2^k l) = 2^k L(l)``, with the NumPy float64 solve of the same
losses scaled back into the middle of the range (scaling by a power of 2 is exact); for pools of
equal losses under the paper's parameters, ``L = l`` itself; exact rational sums (``fractions``).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from lmp_theory import certify, paper_parameters
from solvers import _torch_paths
from solvers import numpy as lmp_np
from solvers import torch as lmp_torch
from tests.distributed_support import solve_in_threads

TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2**-8, torch.float16: 2**-11}  # values are returned in the dtype


def _close(value: float, expected: float, dtype, roundings: int = 1) -> bool:
    """Within the dtype's tolerance, plus half the spacing of its subnormals per rounding into them (a value
    below the smallest normal float comes back as a subnormal of the dtype, with fewer digits)."""
    info = torch.finfo(dtype)
    return abs(value - expected) <= TOL[dtype] * expected + roundings * info.tiny * info.eps / 2


def _oracle(x: torch.Tensor, exponent: int, p: float, ratio: float) -> float:
    """L of the stored losses ``x`` (one pool), from NumPy float64 on ``x * 2^-exponent``."""
    mid = np.ldexp(x.double().numpy(), -exponent)
    gamma, tau = paper_parameters(mid.size, p, ratio)
    return math.ldexp(float(lmp_np.lmp_value(mid, p, gamma, tau, method="sort")), exponent)


@pytest.fixture(params=[False, True], ids=["cpu-paths", "device-paths"])
def device_paths(request, monkeypatch):
    """The CPU tensor paths, and the CUDA paths (radix selection, device sort) run on CPU tensors."""
    monkeypatch.setattr(_torch_paths, "_DEVICE_PATHS_ON_CPU", request.param)
    return request.param


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
@pytest.mark.parametrize("dtype,exponent", [(torch.float32, -126), (torch.float32, -140), (torch.bfloat16, -130),
                                            (torch.float64, -1022), (torch.float64, -1060), (torch.float32, 120),
                                            (torch.float64, 1015)])
@pytest.mark.parametrize("method", ["sort", "select"])
def test_torch_values_of_tiny_and_huge_losses(device_paths, p, dtype, exponent, method):
    """Losses in (0, 1] times 2^exponent: the smallest normals, subnormals (whose products with the
    weights underflowed to 0 in the work dtype), and the largest floats."""
    rng = np.random.default_rng(abs(exponent))
    x = torch.from_numpy(np.ldexp(rng.random(2048) + 1e-3, exponent)).to(dtype)
    gamma, tau = paper_parameters(x.numel(), p, 0.1)
    value = float(lmp_torch.lmp_value(x[None], p, gamma, tau, method=method)[0])
    expected = _oracle(x, exponent, p, 0.1)
    assert _close(value, expected, dtype), (value, expected)


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
@pytest.mark.parametrize("dtype,loss,n", [(torch.float32, 3e-36, 2**20), (torch.float32, 1.4e-45, 16),
                                          (torch.bfloat16, 1e-39, 2**20), (torch.float16, 6e-8, 2**20)])
def test_torch_pool_of_equal_tiny_losses_has_that_value(device_paths, p, dtype, loss, n):
    """The issue's float32 pools: 2^20 losses of 3e-36 (was 1.5e-4 off at p = inf), 16 of 1.4e-45 (was 0);
    half precision (computed in float32) at its own smallest subnormals."""
    x = torch.full((1, n), loss, dtype=dtype)
    gamma, tau = paper_parameters(n, p, 0.2)
    value = float(lmp_torch.lmp_value(x, p, gamma, tau)[0])
    stored = float(x[0, 0])  # L of equal losses under the paper's parameters is the loss
    assert _close(value, stored, dtype), (value, stored)


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
@pytest.mark.parametrize("dtype,exponent", [(torch.float32, -126), (torch.float32, -140), (torch.float64, -1060)])
def test_global_pool_value_of_tiny_losses(p, dtype, exponent):
    """The pool across processes sums <w, l> the same way (threads stand in for the processes); each
    process's share of a subnormal value is rounded, then their sum."""
    x = torch.from_numpy(np.ldexp(np.random.default_rng(3).random(600) + 1e-3, exponent)).to(dtype)
    parts = [x[:100], x[100:]]
    out = solve_in_threads(parts, [torch.ones(len(s), dtype=torch.bool) for s in parts], p, 0.1, dtype)
    expected = _oracle(x, exponent, p, 0.1)
    assert _close(float(out[0][1]), expected, dtype, roundings=len(parts) + 1), (float(out[0][1]), expected)


def test_numpy_p_inf_sum_beyond_float64_range():
    """L = (1e308 + 1.7e308 + 1e308) / 3 is a float64 though the sum is not (was inf)."""
    losses = np.array([[1e308, 1.7e308, 1e308], [1.0, 2.0, -3.0]])
    values = lmp_np.lmp_value(losses, math.inf, 1 / 3, np.array([1 / 3, 0.25]))
    exact = sum(Fraction(v) for v in losses[0]) / 3
    assert values[0] == float(exact) and values[1] == 0.75


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_p_inf_sum_beyond_the_dtype_range(dtype):
    big = float(torch.finfo(dtype).max)
    x = torch.tensor([[0.6 * big, big, 0.6 * big]], dtype=dtype)
    value = float(lmp_torch.lmp_value(x, math.inf, 1 / 3, 1 / 3)[0])
    exact = float(sum(Fraction(float(v)) for v in x[0]) / 3)
    assert _close(value, exact, dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_a_value_beyond_the_dtype_range_is_a_clear_error_in_both_backends(dtype):
    """L of four losses of 0.9 x the dtype's largest with gamma = 2 is 3.2 x that largest: not a value of
    the dtype (was inf). The weights are fine and still returned; Torch without check_finite says inf."""
    big = float(np.finfo(dtype).max)
    x = np.full((1, 4), 0.9 * big, dtype=dtype)
    weights = lmp_np.lmp_weights(x, 1.7, 2.0, 1.0)
    np.testing.assert_allclose(weights, 2.0 * 4 ** (-1 / 1.7), rtol=1e-3)  # equal losses: ||w||_1.7 = gamma
    beyond = "beyond the range of " + np.dtype(dtype).name
    for solve in (lmp_np.lmp_value, lmp_np.lmp_solve):
        with pytest.raises(ValueError, match=beyond):
            solve(x, 1.7, 2.0, 1.0)
    t = torch.from_numpy(x)
    with pytest.raises(ValueError, match=beyond):
        lmp_torch.lmp_value(t, 1.7, 2.0, 1.0)
    assert torch.isinf(lmp_torch.lmp_value(t, 1.7, 2.0, 1.0, check_finite=False)).all()
    pools = torch.from_numpy(np.full((2, 4), 0.3 * big, dtype=dtype))  # L of each about 0.3 big, their sum 0.6
    mean = lmp_torch.lmp_pool(pools, 1.7, 0.5)
    assert math.isfinite(float(mean)) and float(mean) > 0.25 * big  # the mean of two representable values
    with pytest.raises(ValueError, match=beyond):
        lmp_torch.lmp_pool(torch.cat([pools] * 4), 1.7, 0.5, reduction="sum")


def test_certify_beyond_float64_range_is_a_clear_error():
    """<w, l> and L of l = (1e300, 2e300), p = 2, gamma = 1e300, tau = inf are near 2e600 (gap was NaN)."""
    with pytest.raises(ValueError, match="float64.*range.*scale the losses"):
        certify(np.array([1e300, 2e300]), np.array([0.0, 1e300]), 2, 1e300, math.inf)
    with pytest.raises(ValueError, match="float64.*range"):  # the bound alone beyond range
        certify(np.array([1e300, 2e300]), np.array([0.0, 0.0]), 2, 1e300, math.inf)


def test_certify_near_the_ends_of_the_range_is_finite():
    """Scaled by 2^e, the same problem: a certificate that proves the scaled optimum."""
    w = np.array([1.0, 2.0]) / math.sqrt(5.0)  # the maximizer of <w, l> on the unit 2-ball
    for exponent in (-1990, 20):
        cert = certify(np.ldexp([1e300, 2e300], exponent), w, 2, 1.0, math.inf)
        assert cert.proves_optimal(1e-12) and math.isfinite(cert.gap), cert


@pytest.mark.parametrize("p", [1.0, 1.7])
@pytest.mark.parametrize("tau", [1e-6, 1e-30])  # gamma / tau = 1e306 and beyond float64 (inf)
def test_a_cap_count_beyond_any_pool_caps_every_loss_on_every_path(p, tau):
    x = np.random.default_rng(0).exponential(size=16385) - 0.1
    solved = {method: lmp_np.lmp_solve(x, p, 1e300, tau, method=method) for method in ("sort", "select", "auto")}
    for result in solved.values():
        np.testing.assert_array_equal(result.weights, np.where(x > 0, tau, 0.0))
        assert result.threshold == 0.0
        assert result.value == pytest.approx(tau * x[x > 0].sum(), rel=1e-12)


@pytest.mark.parametrize("method", ["sort", "select"])
def test_float32_weights_beyond_its_range_are_inf_and_zeros_stay_zero(method):
    """gamma above float32's largest: the uncapped weights' coefficient is inf in float32, and 0 * inf must
    not turn the zero losses' weights into NaN."""
    x = np.random.default_rng(1).exponential(size=40_000).astype(np.float32)
    x[::3], x[1::7] = 0.0, -1.0
    w = lmp_np.lmp_weights(x, 1.7, 1e45, np.inf, method=method)
    assert not np.isnan(w).any()
    assert (w[x <= 0] == 0).all() and (w[x > 0] > 0).all()
    wide = lmp_np.lmp_weights(x.astype(np.float64), 1.7, 1e45, np.inf, method=method)
    largest = float(np.finfo(np.float32).max)
    representable = wide < largest / 2
    np.testing.assert_allclose(w[representable], wide[representable], rtol=1e-5)
    assert np.isinf(w[wide > 2 * largest]).all()
