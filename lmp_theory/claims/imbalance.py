"""Claims about the paper's family as a whole: monotonicity in p and ratio, and class weighting."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from . import formulas as f
from .closed_form import P, n
from .registry import claim, require, zero

P_GRID = np.concatenate([[1.0], 1 + np.geomspace(1e-3, 1e3, 30), [math.inf]])


def _numeric_monotone_in_p():
    from lmp_theory import paper_parameters
    from solvers.numpy import lmp_value

    rng = np.random.default_rng(10)
    worst = -math.inf
    for trial in range(400):
        count = int(rng.integers(2, 40))
        losses = rng.exponential(size=count) ** rng.uniform(0.2, 4)
        if trial % 3 == 0:
            losses[rng.random(count) < 0.5] = 0.0
        if trial % 5 == 0:
            losses = np.round(losses * 3)  # ties
        ratio = float(rng.uniform(0, 1))
        values = np.array([lmp_value(losses, p, *paper_parameters(count, p, ratio)) for p in P_GRID])
        if values[0] > 0:
            worst = max(worst, float(np.max(np.diff(values)) / values[0]))
    require(worst <= 1e-12, f"counterexample: L grew by {worst:.2e} (relative) between consecutive p")
    return f"search over 400 pools x {P_GRID.size} values of p: L never increased (largest step {worst:.0e})"


@claim("monotone-in-p", "L is non-increasing in p (verdict: proved)",
       "Verdict: for a fixed ratio, L is non-increasing in p under the paper's parameters. Proof: with v = n w the "
       "admissible set is {v >= 0 : M_p(v) <= 1, v_i <= ratio^(-1/p)}, M_p the power mean; M_p increases with p "
       "(Jensen) and ratio^(-1/p) decreases with p for ratio <= 1, so the sets shrink as p grows and the max over "
       "them cannot increase. A numerical search finds no counterexample.",
       r"p \le p' \Rightarrow W_{p'} \subseteq W_p \Rightarrow L_{p'}(l) \le L_p(l)",
       "derived here (power-mean inequality: Hardy, Littlewood, Pólya)", numeric=_numeric_monotone_in_p)
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


def _numeric_monotone_in_ratio():
    from lmp_theory import paper_parameters
    from solvers.numpy import lmp_value

    rng = np.random.default_rng(11)
    ratios = np.linspace(0, 1, 21)
    for _ in range(200):
        losses = rng.exponential(size=int(rng.integers(1, 50)))
        p = float(rng.choice([1.0, 1.3, 2.0, 5.0]))
        values = np.array([lmp_value(losses, p, *paper_parameters(losses.size, p, r)) for r in ratios])
        require(np.all(np.diff(values) <= 1e-12 * values[0]), "L increased with the ratio")
    return "200 pools x 21 ratios: L never increased with the ratio"


@claim("monotone-in-ratio", "L is non-increasing in the ratio",
       "For fixed p, tau = gamma*(ratio*n)^(-1/p) decreases in the ratio, so the admissible set shrinks: "
       "from max-pooling-like (ratio 0) down to the mean (ratio 1).",
       r"\partial_\rho \tau < 0 \Rightarrow \rho \le \rho' \Rightarrow L_{\rho'} \le L_\rho",
       "derived here", numeric=_numeric_monotone_in_ratio)
def _monotone_in_ratio():
    rho = sp.Symbol("rho", positive=True)
    require(sp.simplify(sp.diff(f.paper_tau(n, P, rho), rho)).is_negative, "tau not decreasing in the ratio")
    return "d tau / d ratio < 0 for symbolic n, p"


def _numeric_class_weighting():
    from lmp_theory import certify, paper_parameters
    from solvers.numpy import lmp_value

    rng = np.random.default_rng(12)
    checked = 0
    for _ in range(300):
        classes = int(rng.integers(2, 6))
        counts = rng.integers(1, 200, classes)
        labels = np.repeat(np.arange(classes), counts)
        losses = rng.exponential(size=labels.size) * rng.uniform(0.1, 3, classes)[labels]
        p = float(rng.choice([1.0, 1.5, 2.0, 4.0, math.inf]))
        ratio = float(rng.uniform(0.01, 1))
        gamma, tau_ = paper_parameters(labels.size, p, ratio)
        inv = 1.0 / counts[labels]
        norm_inv = np.sum(counts.astype(float) ** (1 - p)) ** (1 / p) if math.isfinite(p) else 1 / counts.min()
        alpha = min(gamma / norm_inv, tau_ * counts.min())  # the largest scale keeping alpha / n_c in W
        weights = alpha * inv
        cert = certify(losses, weights, p, gamma, tau_)
        require(cert.violation <= 1e-12, "the scaled inverse-frequency weighting is not admissible")
        require(np.dot(weights, losses) <= lmp_value(losses, p, gamma, tau_) * (1 + 1e-12), "class weighting beats L")
        if math.isfinite(p) and p > 1:
            freq = counts / counts.sum()
            require(np.sum(freq ** (1 - p)) >= classes**p * (1 - 1e-12), "sum f_c^(1-p) < C^p")
        checked += 1
    return f"{checked} labelled pools: the scaled inverse-frequency loss is admissible and <= L"


@claim("class-weighting", "LMP bounds every admissible class weighting",
       "Any weighting constant within classes that lies in W gives <w, l> <= L. Inverse-frequency weights alpha/n_c "
       "lie in W iff alpha <= min(gamma*(sum_c n_c^(1-p))^(-1/p), tau*min_c n_c); the usual normalisation "
       "alpha = 1/C (each class total mass 1/C) satisfies the norm part only if sum_c f_c^(1-p) <= C^p, which by "
       "Jensen holds only for balanced classes (p > 1).",
       r"w_i = \alpha/n_{c(i)} \in W \iff \alpha \le \min\big(\gamma (\textstyle\sum_c n_c^{1-p})^{-1/p},\ \tau \min_c n_c\big);"
       r"\ \textstyle\sum_c f_c^{1-p} \ge C^p",
       "paper sec. 3 (motivation); derived here", numeric=_numeric_class_weighting)
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
