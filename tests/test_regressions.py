"""Failures seen in public LMP code, as regression cases, on every backend.

The losses are the corpus's (``lmp_theory.corpus``): the families of what public LMP code gets
wrong, each case here one of its loss vectors. Each is checked on its own grid of ``p`` and ratios
against the duality certificate (an independent path: none of the solvers' algorithms or kernels), and
small ones against the refined cvxpy reference as well.
"""

import math

import numpy as np
import pytest

from lmp_theory import certify, paper_parameters
from lmp_theory.corpus import cases
from lmp_theory.reference import solve
from solvers.numpy import lmp_value as np_value

from .backends import BACKENDS


def _loss_vectors():
    """The corpus's loss vectors by label (a case's name is ``label/p=.../...``)."""
    out = {}
    for case in cases():
        out.setdefault(case.name.split("/")[0], case.losses)
    return out


VECTORS = _loss_vectors()
# regression name -> the corpus loss vector that reproduces it
CASES = {name: VECTORS[label] for name, label in {
    "quarter-tiny": "tiny-25pct-n120",  # a quarter of the losses below float32's 1.2e-7
    "three-quarters-tiny": "tiny-75pct-n120",
    "exact-zeros": "exact-zeros-n80",
    "all-zero": "all-zero-n10",
    "all-negative": "all-negative-n10",
    "heavy-ties": "ties-0to3-n60",
    "single": "single-n1",
    "range-1e-300-1e300": "range-1e-300-1e300-n100",
    "subnormals": "subnormal-n22",
    "huge-outlier": "outlier-1e12-n100",
}.items()}
P_VALUES = [1.0, 1.001, 1.05, 1.7, 3.0, 1e6, math.inf]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.25, 1.0])
@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_regression_case_is_certified(name, p, ratio, backend):
    losses = CASES[name]
    gamma, tau = paper_parameters(losses.size, p, ratio)
    w, value = BACKENDS[backend](losses, p, gamma, tau)
    assert np.all(np.isfinite(w)) and w.shape == losses.shape
    cert = certify(losses, w, p, gamma, tau)
    assert cert.violation <= 1e-12
    assert abs(cert.relative_gap) <= 1e-10
    positive = losses > 0
    if positive.any():
        # never the all-zero collapse: every positive loss keeps weight unless its weight is
        # mathematically below 1e-300 of the largest
        assert w.max() > 0
        assert np.all(w[~positive] == 0)
    else:
        assert np.all(w == 0) and value == 0


@pytest.mark.parametrize("p", [1.0, 1.001, 1.7, 1e6, math.inf])
@pytest.mark.parametrize("name", ["quarter-tiny", "three-quarters-tiny", "heavy-ties", "huge-outlier", "subnormals"])
def test_regression_case_matches_reference(name, p):
    losses = CASES[name]
    gamma, tau = paper_parameters(losses.size, p, 0.25)
    ref = solve(losses, p, gamma, tau)
    for backend, fn in BACKENDS.items():
        w, value = fn(losses, p, gamma, tau)
        assert np.max(np.abs(w - ref.weights)) <= 1e-10 * ref.weights.max(), backend
        assert value == pytest.approx(ref.value, rel=1e-10), backend


def test_tiny_losses_keep_their_weight():
    """A known implementation returns all-zero weights once a quarter of the losses are < 1.2e-7."""
    losses = VECTORS["tiny-50pct-n120"]
    gamma, tau = paper_parameters(losses.size, 1.7, 0.75)
    w = BACKENDS["numpy"](losses, 1.7, gamma, tau)[0]
    small = losses < 1.2e-7
    # exact weight of a tiny loss is c * l^(q-1) > 0 (q = 1.7/0.7); it must not be flushed to 0
    assert np.all(w[small] > 0)
    assert np.all(w[~small] > 0)


@pytest.mark.slow
def test_two_to_the_21_float32_against_float64():
    n = 2**21
    losses = np.random.default_rng(7).exponential(size=n).astype(np.float32)
    losses[::4] *= 1e-8  # a quarter of the pool below 1.2e-7
    for p in (1.0, 1.7, math.inf):
        gamma, tau = paper_parameters(n, p, 0.1)
        exact = np_value(losses.astype(np.float64), p, gamma, tau)
        for backend, fn in BACKENDS.items():
            w, value = fn(losses, p, gamma, tau)
            assert w.dtype == np.float32 and value.dtype == np.float32, backend
            assert abs(float(value) - exact) <= 1e-5 * exact, backend
            cert = certify(losses.astype(np.float64), w.astype(np.float64), p, gamma, tau)
            assert abs(cert.relative_gap) <= 1e-5 and cert.violation <= 1e-5, backend


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("p", [1.0 + 2.2e-16, 1.0 + 1e-12])
def test_p_within_rounding_of_one_with_ties(backend, p):
    """Found by hypothesis: q ~ 1e15 made the log-sums of tied losses lose their count."""
    losses = np.array([8.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    gamma, tau = paper_parameters(losses.size, p, 1 / 3)
    w, value = BACKENDS[backend](losses, p, gamma, tau)
    cert = certify(losses, w, p, gamma, tau)
    assert cert.violation <= 1e-12 and abs(cert.relative_gap) <= 1e-10
    np.testing.assert_allclose(w[1:], w[1], rtol=1e-12)  # ties share equally
