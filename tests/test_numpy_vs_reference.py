"""The closed form against the refined cvxpy reference: two independent routes to the same answer."""

import itertools

import numpy as np
import pytest

from lmp_theory import certify, dual_function, paper_parameters
from lmp_theory.reference import solve
from solvers.numpy import lmp_solve

from .conftest import P_GRID, RATIO_GRID

GRID = list(itertools.product(P_GRID, RATIO_GRID))  # 36 combinations


def _problem(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    p, ratio = GRID[seed % len(GRID)]
    losses = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
    if seed % 4 == 0:  # heavy ties and exact zeros in a quarter of the problems
        losses = np.round(rng.uniform(-1, 3, n))
    gamma, tau = paper_parameters(n, p, ratio)
    return losses, p, gamma, tau


@pytest.mark.parametrize("seed", range(216))
def test_closed_form_matches_refined_reference(seed):
    losses, p, gamma, tau = _problem(seed)
    ref = solve(losses, p, gamma, tau)
    fast = lmp_solve(losses, p, gamma, tau)
    top = max(float(ref.weights.max()), 1e-300)
    assert np.max(np.abs(fast.weights - ref.weights)) <= 1e-10 * top
    assert abs(fast.value - ref.value) <= 1e-10 * max(abs(ref.value), 1e-300)
    # the reference proves itself, independently of the closed form
    assert ref.certificate.proves_optimal(1e-9)
    assert ref.kkt_residual <= 1e-9
    # the solver's threshold minimises the dual function (the certificate finds the minimum on its own)
    cert = certify(losses, fast.weights, p, gamma, tau)
    assert dual_function(losses, fast.threshold, p, gamma, tau) == pytest.approx(cert.upper_bound, rel=1e-12, abs=0)


def test_raw_conic_answer_is_measurably_refined():
    """Clarabel alone is only accurate to its tolerance; the refinement is exact."""
    rng = np.random.default_rng(3)
    losses = rng.exponential(size=400)
    gamma, tau = paper_parameters(400, 3.0, 0.1)
    ref = solve(losses, 3.0, gamma, tau)
    raw_cert = certify(losses, ref.raw_weights, 3.0, gamma, tau)
    assert ref.certificate.relative_gap <= 1e-13 and ref.certificate.violation <= 1e-15
    assert not raw_cert.proves_optimal(1e-12)  # the raw answer does not pass at 1e-12


def test_reference_raises_instead_of_returning_a_wrong_answer(monkeypatch):
    from lmp_theory import reference

    original = reference._refine

    def broken(l, raw, p, gamma, tau):
        w, k, moved, kkt = original(l, raw, p, gamma, tau)
        return w * 0.99, k, moved, kkt

    monkeypatch.setattr(reference, "_refine", broken)
    with pytest.raises(reference.VerificationError, match="certificate relative gap"):
        solve(np.arange(1.0, 11.0), 2.0, *paper_parameters(10, 2.0, 0.3))


def test_reference_empty_and_trivial_pools():
    sol = solve(np.zeros(0), 2.0, 1.0, 1.0)
    assert sol.weights.shape == (0,) and sol.value == 0.0
    sol = solve(-np.ones(5), 2.0, 1.0, 0.5)
    assert np.all(sol.weights == 0) and sol.value == 0.0
