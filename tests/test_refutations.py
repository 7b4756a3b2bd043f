"""A refutation gallery: plausible but false statements about LMP, each refuted by the counterexample search.

A registry that can only say "pass" is not a verification tool: each false sibling of a true claim
must be refuted, with a small shrunk counterexample (printed: ``pytest -rP`` shows it), and the true
ones must survive the same search.
"""

import math

import mpmath as mp
import numpy as np
import pytest

from lmp_theory import paper_parameters
from lmp_theory.certificate import dual_function
from lmp_theory.claims import Instance, find_counterexample
from lmp_theory.claims import _exact as ex
from lmp_theory.testing import strategies as gen
from solvers.numpy import lmp_value, lmp_weights

HOLDER_P = gen.exponents(1.0, math.inf, exclude_min=True, exclude_max=True)


def value(inst: Instance, losses=None) -> float:
    return lmp_value(inst.losses if losses is None else losses, inst.p, inst.gamma, inst.tau)


def scale(inst: Instance) -> float:
    return max(inst.gamma * float(np.max(np.abs(inst.losses))), 1e-300)


def g_is_convex(inst):
    y = np.unique(np.maximum(inst.losses, 0))
    points = np.unique(np.concatenate([y, [2 * y[-1]]]))
    g = [dual_function(inst.losses, t, inst.p, inst.gamma, inst.tau) for t in points]
    mids = [dual_function(inst.losses, (a + b) / 2, inst.p, inst.gamma, inst.tau) for a, b in zip(points, points[1:])]
    return all(m <= (a + b) / 2 + 1e-12 * scale(inst) for m, a, b in zip(mids, g, g[1:]))


def kkt_for_every_k(inst):
    losses = ex.mpf_list(inst.losses)
    p, _, _, tau, m = ex.parameters(inst)
    y = ex.positives(losses)
    with mp.workdps(50):
        for k in range(min(len(y), int(mp.ceil(m)))):
            s = ex.split(losses, inst, k)
            w = ex.weights(losses, inst, s)
            if max(w) > tau * (1 + 1e-30) or any(v < s.threshold * (1 - 1e-30) for v in y[:k]):
                return False  # a weight above the cap, or a negative cap multiplier l_i - t*
    return True


def mu_is_l_minus_threshold_for_every_loss(inst):
    losses = ex.mpf_list(inst.losses)
    with mp.workdps(50):
        s = ex.split(losses, inst)
        return all(v - s.threshold >= 0 for v in s.y)


def weights_non_increasing_in_p(inst):
    w = lmp_weights(inst.losses, inst.p, inst.gamma, inst.tau)
    larger = 2 * inst.p
    w2 = lmp_weights(inst.losses, larger, *paper_parameters(inst.n, larger, inst.ratio))
    return bool(np.all(w2 <= w + 1e-12 * max(np.max(w), 1e-300)))


def k_is_floor_m(inst):
    w = lmp_weights(inst.losses, inst.p, inst.gamma, inst.tau)
    m = (inst.gamma / inst.tau) ** inst.p
    if np.count_nonzero(inst.losses > 0) <= m:
        return True
    return int(np.count_nonzero(w >= inst.tau * (1 - 1e-12))) == math.floor(m)


def superadditive(inst):
    other = inst.losses[::-1]
    return value(inst, inst.losses + other) >= value(inst) + value(inst, other) - 1e-12 * scale(inst)


def subadditive(inst):
    other = inst.losses[::-1]
    return value(inst, inst.losses + other) <= value(inst) + value(inst, other) + 1e-12 * scale(inst)


def translation_equivariant(inst):
    return abs(value(inst, inst.losses + 1.0) - (value(inst) + 1.0)) <= 1e-9 * (1 + scale(inst))


def at_most_mean(inst):
    return value(inst) <= float(np.mean(inst.losses)) + 1e-12 * scale(inst)


def at_least_mean(inst):
    return value(inst) >= float(np.mean(inst.losses)) - 1e-12 * scale(inst)


def at_most_max(inst):
    return value(inst) <= float(np.max(np.maximum(inst.losses, 0))) * (1 + 1e-12)


def ru_over_all_t(inst):
    m = inst.gamma / inst.tau
    ru = min(t + np.sum(np.maximum(inst.losses - t, 0)) / m for t in inst.losses)  # breakpoints, t may be < 0
    return abs(value(inst) - ru) <= 1e-12 * scale(inst) + 1e-300


def holder_despite_cap(inst):
    q = inst.p / (inst.p - 1)
    lp = np.maximum(inst.losses, 0)
    top = max(float(lp.max()), 1e-300)
    return abs(value(inst) - inst.gamma * top * np.sum((lp / top) ** q) ** (1 / q)) <= 1e-9 * scale(inst)


def non_increasing_in_p(inst):
    limit = value(inst) + 1e-12 * scale(inst)
    return all(lmp_value(inst.losses, p2, *paper_parameters(inst.n, p2, inst.ratio)) <= limit
               for p2 in (inst.p * 1.5, inst.p + 2, math.inf) if p2 > inst.p)


PAPER = gen.instances(parameters="paper")
CAPPED_HOLDER = gen.instances(p=HOLDER_P, cap=True)

FALSE = {
    "g is convex": (g_is_convex, CAPPED_HOLDER),
    "KKT holds for every k": (kkt_for_every_k, CAPPED_HOLDER),
    "mu_i = l_i - t* >= 0 for every positive loss": (mu_is_l_minus_threshold_for_every_loss, CAPPED_HOLDER),
    "weights non-increasing in p": (weights_non_increasing_in_p, gen.instances(p=HOLDER_P, parameters="paper")),
    "k = floor(m) for 1 < p < inf": (k_is_floor_m, CAPPED_HOLDER),
    "L is superadditive": (superadditive, PAPER),
    "L is translation-equivariant (1 < p < inf)": (translation_equivariant,
                                                   gen.instances(p=HOLDER_P, parameters="paper")),
    "L <= mean(l)": (at_most_mean, PAPER),
    "p = 1: L = min over all real t of Rockafellar-Uryasev": (ru_over_all_t, gen.instances(
        p=gen.exponents(1.0, 1.0), parameters="paper", cap=True)),
    "the cap never binds: L = gamma ||l+||_q": (holder_despite_cap, CAPPED_HOLDER),
}

TRUE = {
    "L >= mean(l) under the paper's parameters": (at_least_mean, PAPER),
    "L is subadditive": (subadditive, gen.instances()),
    "L <= max(l+) under the paper's parameters": (at_most_max, PAPER),
    "L is non-increasing in p under the paper's parameters": (non_increasing_in_p, PAPER),
}


@pytest.mark.parametrize("statement", list(FALSE))
def test_a_false_statement_is_refuted_with_a_small_counterexample(statement):
    prop, where = FALSE[statement]
    found = find_counterexample(prop, budget=1000, seed=0, instances=where)
    assert found is not None, f"not refuted: {statement!r}"
    print(f"refuted {statement!r}: {found!r}")
    assert found.n <= 4, f"{statement!r}: counterexample not shrunk: {found!r}"
    assert not prop(found), f"{statement!r}: the reported counterexample does not falsify it: {found!r}"


@pytest.mark.parametrize("statement", list(TRUE))
def test_a_true_statement_survives_the_same_search(statement):
    prop, where = TRUE[statement]
    found = find_counterexample(prop, budget=200, seed=0, instances=where)
    assert found is None, f"{statement!r} refuted by {found!r}"
