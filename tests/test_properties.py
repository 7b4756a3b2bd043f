"""Hypothesis properties of the solvers, on every backend."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lmp_theory import certify, paper_parameters

from .backends import BACKENDS

backends = pytest.mark.parametrize("backend", sorted(BACKENDS))

p_values = st.sampled_from([1.0, 1.001, 1.3, 1.7, 2.0, 3.0, 10.0, 1e6, math.inf]) | st.floats(1.0, 50.0)
ratios = st.sampled_from([0.0, 0.1, 1 / 3, 1.0]) | st.floats(0.0, 1.0)
loss_values = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False) | st.sampled_from([0.0, 1e-9, 2.0])
losses_1d = arrays(np.float64, st.integers(1, 40), elements=loss_values)


def _params(n, p, ratio):
    return paper_parameters(n, p, ratio)


@backends
@given(losses=losses_1d, p=p_values, ratio=ratios)
def test_feasible_and_certified_optimal(backend, losses, p, ratio):
    gamma, tau = _params(losses.size, p, ratio)
    w, value = BACKENDS[backend](losses, p, gamma, tau)
    cert = certify(losses, w, p, gamma, tau)
    assert cert.violation <= 1e-12
    assert abs(cert.relative_gap) <= 1e-10
    assert value == pytest.approx(cert.upper_bound, rel=1e-10, abs=1e-300)
    assert np.all(w[losses <= 0] == 0)


@backends
@given(losses=losses_1d, p=p_values, ratio=ratios, scale=st.floats(1e-6, 1e6))
def test_positively_homogeneous(backend, losses, p, ratio, scale):
    gamma, tau = _params(losses.size, p, ratio)
    w1, v1 = BACKENDS[backend](losses, p, gamma, tau)
    w2, v2 = BACKENDS[backend](losses * scale, p, gamma, tau)
    assert v2 == pytest.approx(scale * v1, rel=1e-10, abs=1e-300)
    np.testing.assert_allclose(w2, w1, rtol=0, atol=1e-10 * max(w1.max(), 1e-300))


@backends
@given(losses=losses_1d, p=p_values, ratio=ratios, seed=st.integers(0, 2**32 - 1))
def test_permutation_equivariant(backend, losses, p, ratio, seed):
    gamma, tau = _params(losses.size, p, ratio)
    perm = np.random.default_rng(seed).permutation(losses.size)
    w, v = BACKENDS[backend](losses, p, gamma, tau)
    wp, vp = BACKENDS[backend](losses[perm], p, gamma, tau)
    assert vp == pytest.approx(v, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(wp, w[perm], rtol=0, atol=1e-12 * max(w.max(), 1e-300))


@backends
@given(losses=losses_1d, p=p_values, g1=st.floats(0.01, 10), g2=st.floats(0.01, 10),
       t1=st.floats(0.001, 10), t2=st.floats(0.001, 10))
def test_monotone_in_gamma_and_tau(backend, losses, p, g1, g2, t1, t2):
    (g_lo, g_hi), (t_lo, t_hi) = sorted((g1, g2)), sorted((t1, t2))
    solve = BACKENDS[backend]
    base = solve(losses, p, g_lo, t_lo)[1]
    tol = 1e-12 * max(abs(base), 1e-300)
    assert solve(losses, p, g_hi, t_lo)[1] >= base - tol
    assert solve(losses, p, g_lo, t_hi)[1] >= base - tol


@backends
@given(losses=losses_1d, p=p_values, ratio=ratios)
def test_mean_is_a_lower_bound_under_paper_parameters(backend, losses, p, ratio):
    gamma, tau = _params(losses.size, p, ratio)
    value = BACKENDS[backend](losses, p, gamma, tau)[1]
    assert value >= np.mean(losses) - 1e-12 * np.max(np.abs(losses))


@backends
@given(batch=arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 25)),
                    elements=loss_values),
       p=p_values, ratio=ratios)
def test_batched_equals_row_by_row_with_per_pool_parameters(backend, batch, p, ratio):
    counts = np.arange(1, batch.shape[0] * batch.shape[1] + 1).reshape(batch.shape[:2])
    gamma, tau = paper_parameters(counts, p, ratio)  # per-pool parameters, deliberately varied
    w, v = BACKENDS[backend](batch, p, gamma, tau)
    assert w.shape == batch.shape and v.shape == batch.shape[:2]
    for i in np.ndindex(batch.shape[:2]):
        wi, vi = BACKENDS[backend](batch[i], p, float(gamma[i]), float(tau[i]))
        np.testing.assert_allclose(w[i], wi, rtol=0, atol=1e-13 * max(wi.max(), 1e-300))
        assert v[i] == pytest.approx(vi, rel=1e-13, abs=1e-300)


@backends
@given(losses=losses_1d, p=p_values, ratio=ratios, seed=st.integers(0, 2**32 - 1))
def test_mask_equals_dropping_the_entries(backend, losses, p, ratio, seed):
    mask = np.random.default_rng(seed).random(losses.size) < 0.6
    assume(mask.any())
    gamma, tau = _params(int(mask.sum()), p, ratio)
    garbage = np.where(mask, losses, np.nan)  # masked-out entries are never inspected
    w, v = BACKENDS[backend](garbage, p, gamma, tau, mask=mask)
    wd, vd = BACKENDS[backend](losses[mask], p, gamma, tau)
    assert np.all(w[~mask] == 0)
    np.testing.assert_allclose(w[mask], wd, rtol=0, atol=1e-13 * max(wd.max(), 1e-300))
    assert v == pytest.approx(vd, rel=1e-13, abs=1e-300)
