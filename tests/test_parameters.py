import math

import numpy as np
import pytest

from lmp_theory import paper_parameters
from solvers.problem import cap_count


@pytest.mark.parametrize("p", [1.0, 1.001, 1.5, 2.0, 7.0, 1e6])
@pytest.mark.parametrize("n", [1, 7, 1000])
@pytest.mark.parametrize("ratio", [0.05, 0.3, 1.0])
def test_uniform_weighting_is_on_the_budget_and_m_caps_exhaust_it(p, n, ratio):
    gamma, tau = paper_parameters(n, p, ratio)
    # ||1/n||_p == gamma
    assert math.isclose(n ** (1 / p) / n, gamma, rel_tol=1e-13)
    # m = ratio * n weights at tau have p-norm gamma: m * tau^p == gamma^p
    assert math.isclose(float(cap_count(p, gamma, tau)), ratio * n, rel_tol=1e-9)


def test_special_cases():
    assert paper_parameters(10, 1, 0.3) == pytest.approx((1.0, 1 / 3))
    assert paper_parameters(10, 2, 0.0)[1] == math.inf
    for ratio in (0.0, 0.4, 1.0):
        assert paper_parameters(8, math.inf, ratio) == (0.125, 0.125)
    g, t = paper_parameters(1, 3.0, 1.0)
    assert g == 1.0 and t == 1.0


def test_vectorised_over_counts():
    n = np.array([[1, 5], [50, 1000]])
    gamma, tau = paper_parameters(n, 1.7, 0.2)
    assert gamma.shape == tau.shape == (2, 2)
    for i in np.ndindex(n.shape):
        assert (gamma[i], tau[i]) == pytest.approx(paper_parameters(int(n[i]), 1.7, 0.2), rel=1e-15)
