"""Claims about the paper's family as a whole: monotonicity in p and ratio, and class weighting."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from solvers.numpy import lmp_value
from solvers.parameters import paper_parameters

from ..certificate import certify
from ..testing import strategies as gen
from . import formulas as f
from .closed_form import P, n
from .registry import Search, claim, require, zero


def _monotone_in_p_holds(inst) -> bool:
    value = lmp_value(inst.losses, inst.p, inst.gamma, inst.tau)
    scale = max(abs(value), float(np.max(np.abs(inst.losses))) / inst.n, 1e-300)
    for larger in (inst.p * (1 + 1e-3), inst.p + 0.5, 2 * inst.p, 10 * inst.p, math.inf):
        if larger > inst.p and lmp_value(inst.losses, larger, *paper_parameters(inst.n, larger, inst.ratio)) \
                > value + 1e-12 * scale:
            return False
    return True


@claim("monotone-in-p", "L is non-increasing in p (verdict: proved)",
       "Verdict: for a fixed ratio, L is non-increasing in p under the paper's parameters. Proof: with v = n w the "
       "admissible set is {v >= 0 : M_p(v) <= 1, v_i <= ratio^(-1/p)}, M_p the power mean; M_p increases with p "
       "(Jensen) and ratio^(-1/p) decreases with p for ratio <= 1, so the sets shrink as p grows and the max over "
       "them cannot increase.",
       "the paper's parameters at a fixed ratio in [0, 1], 1 <= p <= p' <= inf, any real losses",
       r"p \le p' \Rightarrow W_{p'} \subseteq W_p \Rightarrow L_{p'}(l) \le L_p(l)",
       "derived here (power-mean inequality: Hardy, Littlewood, Pólya)",
       numeric=Search(_monotone_in_p_holds, lambda: gen.instances(parameters="paper"), budget=200))
def _monotone_in_p():
    w1, w2, w3, u, d, x, p = sp.symbols("w1 w2 w3 u d x p", positive=True)
    ws = (w1, w2, w3)
    # the norm budget is the power mean of v = n w: ||w||_p <= n^(1/p-1)  <=>  M_p(n w) <= 1
    power_mean = (sum((n * w) ** P for w in ws) / n) ** (1 / P)
    zero(power_mean - n ** (1 - 1 / P) * sum(w**P for w in ws) ** (1 / P), "budget is not the power mean")
    # the cap is n tau = ratio^(-1/p); with ratio = exp(-u), d/dp exp(u/p) < 0
    zero(n * f.paper_tau(n, P, sp.exp(-u)) - sp.exp(u / P), "n tau != ratio^(-1/p)")
    require(sp.diff(sp.exp(u / p), p).is_negative, "ratio^(-1/p) not decreasing in p")
    # Jensen step of the power-mean inequality: x^r is convex for r = p'/p = 1 + d > 1
    r = 1 + d
    require(sp.simplify(sp.diff(x**r, x, 2)).is_positive, "x^(p'/p) not convex: the power mean step fails")
    return "budget = power mean of n w; n tau = ratio^(-1/p) decreasing in p; x^(p'/p) convex"


def _monotone_in_ratio_holds(inst) -> bool:
    value = lmp_value(inst.losses, inst.p, inst.gamma, inst.tau)
    scale = max(abs(value), float(np.max(np.abs(inst.losses))) / inst.n, 1e-300)
    for larger in (inst.ratio + (1 - inst.ratio) / 3, (1 + inst.ratio) / 2, 1.0):
        if larger > inst.ratio and lmp_value(inst.losses, inst.p, *paper_parameters(inst.n, inst.p, larger)) \
                > value + 1e-12 * scale:
            return False
    return True


@claim("monotone-in-ratio", "L is non-increasing in the ratio",
       "For fixed p, tau = gamma*(ratio*n)^(-1/p) decreases in the ratio, so the admissible set shrinks: "
       "from max-pooling-like (ratio 0) down to the mean (ratio 1).",
       "the paper's parameters at a fixed p in [1, inf], 0 <= ratio <= ratio' <= 1, any real losses",
       r"\partial_\rho \tau < 0 \Rightarrow \rho \le \rho' \Rightarrow L_{\rho'} \le L_\rho",
       "derived here", numeric=Search(_monotone_in_ratio_holds, lambda: gen.instances(parameters="paper"), budget=200))
def _monotone_in_ratio():
    rho = sp.Symbol("rho", positive=True)
    require(sp.simplify(sp.diff(f.paper_tau(n, P, rho), rho)).is_negative, "tau not decreasing in the ratio")
    return "d tau / d ratio < 0 for symbolic n, p"


def _labelled(instances):
    """An instance with a class label per loss (0 to 3: up to four classes, of any sizes)."""
    return instances.flatmap(lambda inst: st.tuples(st.just(inst), st.lists(
        st.integers(0, 3), min_size=inst.n, max_size=inst.n).map(np.array)))


def _class_weighting_holds(pair) -> bool:
    inst, labels = pair
    _, counts = np.unique(labels, return_inverse=False, return_counts=True)
    per_loss = counts[np.searchsorted(np.unique(labels), labels)].astype(float)
    p, gamma, tau_ = inst.p, inst.gamma, inst.tau
    if math.isfinite(p):  # ||1/n_c||_p over the pool, in mpmath: n_c^(1-p) underflows floats for large p
        norm_inv = mp.fsum(mp.mpf(int(c)) ** (1 - mp.mpf(p)) for c in counts) ** (1 / mp.mpf(p))
    else:
        norm_inv = mp.mpf(1) / int(counts.min())
    alpha = float(min(gamma / norm_inv, tau_ * int(counts.min())))  # the stated largest admissible scale
    value = lmp_value(inst.losses, p, gamma, tau_)
    scale = max(abs(value), gamma * float(np.max(np.abs(inst.losses))), 1e-300)
    if certify(inst.losses, alpha / per_loss, p, gamma, tau_).violation > 1e-12:
        return False  # alpha_max / n_c is admissible ...
    if certify(inst.losses, alpha * (1 + 1e-6) / per_loss, p, gamma, tau_).violation < 1e-7:
        return False  # ... and no larger scale is
    if float(np.dot(alpha / per_loss, inst.losses)) > value + 1e-12 * scale:
        return False  # a class weighting in W never beats L
    if 1 < p < math.inf:
        freq = [mp.mpf(int(c)) / int(counts.sum()) for c in counts]
        return mp.fsum(fc ** (1 - mp.mpf(p)) for fc in freq) >= mp.mpf(counts.size) ** p * (1 - mp.mpf(10) ** -30)
    return True


@claim("class-weighting", "LMP bounds every admissible class weighting",
       "Any weighting constant within classes that lies in W gives <w, l> <= L. Inverse-frequency weights alpha/n_c "
       "lie in W iff alpha <= min(gamma*(sum_c n_c^(1-p))^(-1/p), tau*min_c n_c); the usual normalisation "
       "alpha = 1/C (each class total mass 1/C) satisfies the norm part only if sum_c f_c^(1-p) <= C^p, which by "
       "Jensen holds only for balanced classes (p > 1).",
       "any labelling of the pool into classes; the paper's parameters, 1 <= p <= inf, any real losses",
       r"w_i = \alpha/n_{c(i)} \in W \iff "
       r"\alpha \le \min\big(\gamma (\textstyle\sum_c n_c^{1-p})^{-1/p},\ \tau \min_c n_c\big);"
       r"\ \textstyle\sum_c f_c^{1-p} \ge C^p",
       "paper sec. 3 (motivation); derived here",
       numeric=Search(_class_weighting_holds, lambda: _labelled(gen.instances(parameters="paper")),
                      budget=200))
def _class_weighting():
    n1, n2, n3, gamma, a, b = sp.symbols("n1 n2 n3 gamma a b", positive=True)
    counts = (n1, n2, n3)
    alpha = gamma * sum(c ** (1 - P) for c in counts) ** (-1 / P)
    zero(sum(c * (alpha / c) ** P for c in counts) - gamma**P, "alpha_max does not exhaust the budget")
    # two classes with frequencies f = a/(a+b), 1-f: phi(f) = f^(1-p) + (1-f)^(1-p) >= 2^p, equality at f = 1/2
    fr = sp.Symbol("f", positive=True)
    phi = fr ** (1 - P) + (1 - fr) ** (1 - P)
    zero(phi.subs(fr, sp.Rational(1, 2)) - 2**P, "phi(1/2) != 2^p")
    zero(sp.diff(phi, fr).subs(fr, sp.Rational(1, 2)), "phi'(1/2) != 0")
    second = sp.diff(phi, fr, 2).subs(fr, a / (a + b))
    require(sp.simplify(second).is_positive, "phi not convex on (0, 1): Jensen step fails")
    return "alpha_max exhausts the budget (3 classes); sum f^(1-p) >= C^p for 2 classes by convexity"
