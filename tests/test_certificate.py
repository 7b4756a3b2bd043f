"""The duality certificate: the dual formula, its bounds, and what it catches."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lmp_theory import certify, dual_function, dual_minimum, paper_parameters
from lmp_theory.reference import solve
from solvers import numpy as lmp_np
from solvers.numpy import lmp_solve

P = [1.0, 1.001, 1.3, 2.0, 5.0, 1e6, math.inf]


@pytest.mark.parametrize("p", P)
@pytest.mark.parametrize("seed", range(20))
def test_dual_formula_equals_primal_value(p, seed):
    rng = np.random.default_rng(seed)
    losses = rng.standard_normal(int(rng.integers(1, 200)))
    gamma, tau = paper_parameters(losses.size, p, rng.choice([0.0, 0.05, 0.3, 1.0]))
    primal = lmp_solve(losses, p, gamma, tau).value
    dual, _ = dual_minimum(losses, p, gamma, tau)
    assert dual == pytest.approx(primal, rel=1e-14, abs=1e-300)


@given(losses=arrays(np.float64, st.integers(1, 30), elements=st.floats(-10, 10)),
       p=st.sampled_from(P), t=st.floats(0, 20), ratio=st.floats(0, 1))
def test_every_t_is_an_upper_bound_and_nothing_left_of_t_star_is_better(losses, p, t, ratio):
    gamma, tau = paper_parameters(losses.size, p, ratio)
    best, t_star = dual_minimum(losses, p, gamma, tau)
    assert dual_function(losses, t, p, gamma, tau) >= best * (1 - 1e-13)
    top = max(float(np.max(losses)), 0.0)
    if t < min(t_star, top) * (1 - 1e-9) and np.sum(losses > t) > gamma / tau:
        # left of the threshold, with more than m losses above t, g is strictly larger
        assert dual_function(losses, t, p, gamma, tau) > best * (1 - 1e-13)


def test_certificate_catches_infeasible_and_suboptimal_weights():
    rng = np.random.default_rng(0)
    losses = rng.exponential(size=500)
    p, (gamma, tau) = 1.7, paper_parameters(500, 1.7, 0.2)
    w = lmp_solve(losses, p, gamma, tau).weights
    assert certify(losses, w, p, gamma, tau).proves_optimal(1e-12)
    over = certify(losses, w * 1.02, p, gamma, tau)  # 2 % over the norm budget and the cap
    assert over.violation == pytest.approx(0.02, rel=1e-6) and over.gap < 0
    under = certify(losses, w * 0.98, p, gamma, tau)
    assert under.violation == 0 and under.relative_gap == pytest.approx(0.02, rel=1e-6)
    uniform = certify(losses, np.full(500, 1 / 500), p, gamma, tau)  # the plain mean: feasible, suboptimal
    assert uniform.violation <= 1e-15 and uniform.relative_gap > 0.01
    negative = certify(losses, np.where(np.arange(500) == 0, -tau, w), p, gamma, tau)
    assert negative.violation == pytest.approx(tau / min(gamma, tau))


def test_certificate_threshold_is_where_weights_reach_the_cap():
    losses = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    gamma, tau = paper_parameters(5, 2.0, 0.4)
    r = lmp_solve(losses, 2.0, gamma, tau)
    cert = certify(losses, r.weights, 2.0, gamma, tau)
    capped = r.weights >= tau * (1 - 1e-15)
    assert np.all(losses[capped] >= cert.threshold) and np.all(losses[~capped] < cert.threshold)
    # w_i = tau * min(1, (l_i / t*)^(q-1)) with q = 2
    np.testing.assert_allclose(r.weights, tau * np.minimum(1, losses / cert.threshold), rtol=1e-14)


def test_p1_is_rockafellar_uryasev_cvar():
    losses = np.array([9.0, 7.0, 7.0, 3.0, 1.0, -2.0])
    gamma, tau = paper_parameters(6, 1.0, 0.5)  # m = 3: mean of the top 3 = (9 + 7 + 7) / 3
    best, t_star = dual_minimum(losses, 1.0, gamma, tau)
    assert best == pytest.approx(23 / 3, rel=1e-15, abs=0) and 3.0 <= t_star <= 7.0  # g is flat on [3, 7]
    r = lmp_solve(losses, 1.0, gamma, tau)
    np.testing.assert_allclose(r.weights, [1 / 3, 1 / 3, 1 / 3, 0, 0, 0], rtol=1e-15)
    gamma, tau = paper_parameters(6, 1.0, 0.25)  # m = 1.5: 9 + half of the tied 7s, shared equally
    r = lmp_solve(losses, 1.0, gamma, tau)
    np.testing.assert_allclose(r.weights, [tau, tau / 4, tau / 4, 0, 0, 0], rtol=1e-14)
    assert r.value == pytest.approx((9 + 3.5) / 1.5, rel=1e-14)


@pytest.mark.parametrize("p", [700.0, 1000.0, 1e4, 1e6])
@pytest.mark.parametrize("tau", [1.5, 2.05, 100.0])
def test_cap_count_underflowing_is_not_an_overflow(p, tau):
    """tau > gamma with large p: m = (gamma/tau)^p underflows, t* lies beyond float range."""
    losses = np.array([1.0, 2.0, 0.5])
    w = lmp_np.lmp_weights(losses, p, 1.0, tau)
    cert = certify(losses, w, p, 1.0, tau)
    assert cert.proves_optimal(1e-12) and cert.threshold > 2.0
    ref = solve(losses, p, 1.0, tau)
    assert ref.value == pytest.approx(float(lmp_np.lmp_value(losses, p, 1.0, tau)), rel=1e-14)
    np.testing.assert_allclose(ref.weights, w, rtol=1e-14, atol=0)
