"""Claims about the dual formula, the two ends of the paper's family, and the bounds on L."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from . import formulas as f
from ._numeric import instances
from .closed_form import GAMMA_K, P, Q, R, S, k, n, tau
from .registry import claim, require, zero

t = sp.Symbol("t", positive=True)


def _numeric_dual():
    from lmp_theory import dual_function, dual_minimum
    from solvers.numpy import lmp_solve

    rng = np.random.default_rng(6)
    worst_value = worst_weights = 0.0
    for losses, p, gamma, tau_ in instances(300, seed=6):
        res = lmp_solve(losses, p, gamma, tau_)
        best, t_star = dual_minimum(losses, p, gamma, tau_)
        if res.value > 0:
            worst_value = max(worst_value, abs(best - res.value) / res.value)
        for trial_t in rng.uniform(0, 2 * max(losses.max(), 1e-300), 5):  # every t is an upper bound
            require(dual_function(losses, trial_t, p, gamma, tau_) >= res.value * (1 - 1e-13), "g(t) < L for some t")
        if 1.0 < p < math.inf and 0 < t_star < math.inf and res.value > 0:
            q = p / (p - 1)
            ratio = np.maximum(losses, 0) / t_star
            expected = tau_ * np.minimum(1.0, ratio) ** (q - 1)
            worst_weights = max(worst_weights, np.max(np.abs(expected - res.weights)) / res.weights.max())
    require(worst_value <= 1e-14, f"min_t g(t) differs from L by {worst_value:.2e}")
    require(worst_weights <= 1e-9, f"weights differ from tau min(1, (l/t*)^(q-1)) by {worst_weights:.2e}")
    return f"300 instances: min g = L to {worst_value:.0e}, weights from t* to {worst_weights:.0e}, g(t) >= L for random t"


@claim("dual", "The variational (dual) formula",
       "L = min over t >= 0 of g(t) = tau*sum (l_i - t)+ + gamma*||min(l+, t)||_q; at the minimiser "
       "t* = (R_k/(m-k))^(1/q) the first-order condition holds, g(t*) = L, and w_i = tau*min(1, (l_i/t*)^(q-1)).",
       r"L = \min_{t\ge0} \tau\textstyle\sum_i (l_i-t)^+ + \gamma\|\min(l^+,t)\|_q,\quad "
       r"g'(t^*)=0,\ w_i = \tau\min\big(1,(l_i/t^*)^{q-1}\big)",
       "SPEC sec. 4; Rockafellar–Uryasev for p = 1; derived here", numeric=_numeric_dual)
def _dual():
    g = f.dual_on_interval(t, tau, S, k, GAMMA_K, R, P)
    t_star = f.threshold_formula(R, GAMMA_K**P / tau**P, k, P)
    zero(sp.diff(g, t).subs(t, t_star), "g'(t*) != 0")
    # g(t*) = L, written with t* as the free symbol T and m = k + E (E > 0): gamma = tau (k + E)^(1/p)
    # and R_k = (m - k) T^q = E T^q, consistent with the threshold formula (checked first)
    T, E = sp.symbols("T E", positive=True)
    gamma_m, r_of_t = tau * (k + E) ** (1 / P), E * T**Q
    zero(f.threshold_formula(r_of_t, k + E, k, P) - T, "t* formula is inconsistent")
    zero(f.dual_on_interval(T, tau, S, k, gamma_m, r_of_t, P) - f.value_formula(tau, S, gamma_m, k, P, r_of_t),
         "g(t*) != L")
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    zero(tau * t_star ** (1 - Q) - c, "tau (l/t*)^(q-1) != c l^(q-1)")
    curvature = sp.simplify(sp.diff(sp.diff(g, t), t) / (k * GAMMA_K))
    require(curvature.is_positive, f"g is not convex on the interval: g''/(k gamma) = {curvature}")
    return "g'(t*) = 0, g(t*) = value formula, weights from t*, g convex; symbolic k, p, gamma, tau, S, R"


def _numeric_p1():
    from lmp_theory import paper_parameters
    from solvers.numpy import lmp_value

    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(300):
        losses = rng.standard_normal(int(rng.integers(1, 80)))
        if rng.random() < 0.3:
            losses = np.round(losses)
        ratio = float(rng.uniform(0.001, 1.0))
        gamma, tau_ = paper_parameters(losses.size, 1.0, ratio)
        m = gamma / tau_
        y = np.sort(np.maximum(losses, 0))[::-1]
        kk = min(int(math.floor(m)), y.size)
        top_m = (y[:kk].sum() + ((m - kk) * y[kk] if kk < y.size else 0.0)) / m
        ru = min(tt + np.sum(np.maximum(losses - tt, 0)) / m for tt in np.append(np.maximum(losses, 0), 0.0))
        value = lmp_value(losses, 1.0, gamma, tau_)
        scale = max(abs(top_m), 1e-300)
        worst = max(worst, abs(value - top_m) / scale, abs(value - ru) / scale)
    require(worst <= 1e-13, f"p = 1 value differs from the top-m mean / RU formula by {worst:.2e}")
    return f"300 instances (with ties): LMP = top-m mean = RU minimum to {worst:.0e}"


@claim("p1-cvar", "p = 1 is the CVaR",
       "With p = 1 (gamma = 1, tau = 1/m), L is the mean of the top m losses with fractional m: "
       "(S_k + (m-k) l_(k+1))/m with k = floor(m), the minimum of the Rockafellar–Uryasev function t + sum(l-t)+/m, "
       "and the p -> 1 limit of the closed form.",
       r"p=1:\ L = \tfrac1m\big(S_k + (m-k)\,l_{(k+1)}\big) = \min_t\, t + \tfrac1m \textstyle\sum_i (l_i-t)^+",
       "Rockafellar & Uryasev 2000 (textbook); paper sec. 3.1", numeric=_numeric_p1)
def _p1():
    nu, u, v = sp.symbols("nu u v", positive=True)
    m = k + 1 / (1 + u)  # k = floor(m) < m < k + 1
    def ru(tt, above, total):  # t + (1/m) sum (l - t)+ with `above` losses above t summing to `total`
        return tt + (total - above * tt) / m
    # right of nu = l_(k+1) k losses are above t; left of it k + 1 (S_k + nu in all)
    slope_right = sp.diff(ru(t, k, S), t)
    slope_left = sp.diff(ru(t, k + 1, S + nu), t)
    require(sp.simplify(slope_right).is_positive, f"RU slope right of l_(k+1) not > 0: {slope_right}")
    require(sp.simplify(slope_left).is_negative, f"RU slope left of l_(k+1) not < 0: {slope_left}")
    zero(ru(nu, k, S) - f.cvar(S, nu, k, m), "RU minimum != top-m mean")
    # p -> 1 limit of the closed form with k capped and uncapped losses nu > nu/(1+v):
    q = sp.Symbol("q", positive=True)
    r_norm = sp.limit(nu * (1 + (1 + v) ** (-q)) ** (1 / q), q, sp.oo)  # R_k^(1/q) -> l_(k+1)
    zero(r_norm - nu, "R_k^(1/q) does not tend to l_(k+1)")
    budget = sp.limit((1 - k * (1 / m) ** sp.Symbol("p", positive=True)) ** (1 / sp.Symbol("p", positive=True)),
                      sp.Symbol("p", positive=True), 1)  # gamma = 1, tau = 1/m
    zero((1 / m) * S + budget * nu - f.cvar(S, nu, k, m), "the p -> 1 limit is not the top-m mean")
    return "RU slopes change sign at l_(k+1) for fractional m, its minimum is the top-m mean, = p->1 limit"


def _numeric_pinf():
    from lmp_theory import paper_parameters
    from solvers.numpy import lmp_value

    rng = np.random.default_rng(8)
    worst = worst_large_p = 0.0
    for _ in range(200):
        losses = rng.standard_normal(int(rng.integers(1, 100))) * 10.0 ** rng.integers(-3, 4)
        ratio = float(rng.choice([0.0, 0.1, 0.5, 1.0]))
        mean_plus = np.mean(np.maximum(losses, 0))
        if mean_plus == 0:
            continue
        value = lmp_value(losses, math.inf, *paper_parameters(losses.size, math.inf, ratio))
        near = lmp_value(losses, 1e9, *paper_parameters(losses.size, 1e9, ratio))
        worst = max(worst, abs(value - mean_plus) / mean_plus)
        worst_large_p = max(worst_large_p, abs(near - mean_plus) / mean_plus)
    require(worst <= 1e-14, f"p = inf value differs from mean(l+) by {worst:.2e}")
    require(worst_large_p <= 1e-6, f"p = 1e9 is {worst_large_p:.2e} away from mean(l+): no continuity")
    return f"200 instances: p=inf gives mean(l+) to {worst:.0e}; p=1e9 within {worst_large_p:.0e}"


@claim("pinf-mean", "p = inf is the mean of l+",
       "With p = inf (gamma = tau = 1/n for every ratio), L is the plain mean of l+, and it is the p -> inf limit.",
       r"p=\infty:\ L = \tfrac1n \textstyle\sum_i l_i^+ = \lim_{p\to\infty} L_p",
       "paper sec. 3.1; derived here", numeric=_numeric_pinf)
def _pinf():
    a, b, rho = sp.symbols("a b rho", positive=True)
    p = sp.Symbol("p", positive=True)
    holder_limit = sp.limit(f.paper_gamma(n, p) * (a ** (p / (p - 1)) + b ** (p / (p - 1))) ** ((p - 1) / p), p, sp.oo)
    zero(holder_limit - (a + b) / n, "no-cap limit p -> inf is not sum(l+)/n")
    cap_over_budget = sp.limit(f.paper_tau(n, p, rho) / f.paper_gamma(n, p), p, sp.oo)
    zero(cap_over_budget - 1, "tau/gamma does not tend to 1 (so w = 1/n would not be optimal)")
    return "lim gamma ||l+||_q = sum(l+)/n and tau/gamma -> 1 as p -> inf"


def _numeric_bounds():
    from solvers.numpy import lmp_value

    checked = 0
    for losses, p, gamma, tau_ in instances(300, seed=9):
        value = lmp_value(losses, p, gamma, tau_)
        scale = max(abs(value), np.abs(losses).max() * gamma, 1e-300)
        require(value >= np.mean(losses) - 1e-13 * scale, "mean(l) > L under the paper's parameters")
        lp = np.maximum(losses, 0)
        top = max(lp.max(), 1e-300)
        q = 1 / (1 - 1 / p) if p > 1 else math.inf
        norm_q = top * (np.sum((lp / top) ** q) ** (1 / q) if math.isfinite(q) else 1.0)
        require(value <= gamma * norm_q * (1 + 1e-13) and value <= tau_ * lp.sum() * (1 + 1e-13) + 1e-300,
                "L above the Hölder or the cap bound")
        for g2, t2 in [(gamma * 1.3, tau_), (gamma, tau_ * 1.3)]:
            require(lmp_value(losses, p, g2, t2) >= value * (1 - 1e-13), "L decreased when gamma or tau grew")
        checked += 1
    return f"{checked} instances: mean <= L <= min(gamma ||l+||_q, tau ||l+||_1), monotone in gamma and tau"


@claim("bounds", "Bounds and monotonicity",
       "Under the paper's parameters mean(l) <= L (the uniform weighting is admissible: n*tau = ratio^(-1/p) >= 1); "
       "L <= min(gamma*||l+||_q, tau*||l+||_1) (g at t = max l and t = 0); dL/dgamma = ||min(l+,t*)||_q > 0 and "
       "dL/dtau = S_k - k t* = sum (l-t*)+ >= 0, so L is non-decreasing in gamma and tau.",
       r"\bar l \le L \le \min(\gamma\|l^+\|_q, \tau\|l^+\|_1),\ \partial_\gamma L > 0,\ \partial_\tau L = \textstyle\sum_i (l_i-t^*)^+ \ge 0",
       "derived here (SPEC sec. 4); Hölder's inequality", numeric=_numeric_bounds)
def _bounds():
    u, gamma = sp.symbols("u gamma", positive=True)
    rho = 1 / (1 + u)  # rho in (0, 1]
    zero(n * f.paper_tau(n, P, rho) - (1 + u) ** (1 / P), "n tau != ratio^(-1/p)")
    require((sp.log(1 + u) / P).is_positive, "log(n tau) > 0 not established: 1/n may exceed tau")
    zero(f.dual_on_interval(0, tau, S, k, gamma, 0, P) - tau * S, "g(0) != tau ||l+||_1")
    zero(f.dual_on_interval(t, tau, 0, 0, gamma, R, P) - gamma * R ** (1 / Q), "g(max l) != gamma ||l+||_q")
    value = f.value_formula(tau, S, gamma, k, P, R)
    dgamma = sp.diff(value, gamma).subs(gamma, GAMMA_K)
    zero(dgamma - f.dvalue_dgamma(GAMMA_K, tau, k, P, R), "dL/dgamma differs from the stated formula")
    require(sp.simplify(f.dvalue_dgamma(GAMMA_K, tau, k, P, R)).is_positive, "dL/dgamma > 0 not established")
    t_star = f.threshold_formula(R, GAMMA_K**P / tau**P, k, P)
    dtau = sp.diff(value, tau).subs(gamma, GAMMA_K)
    zero(dtau - f.dvalue_dtau(S, k, t_star), "dL/dtau != S_k - k t*")
    zero(f.dvalue_dgamma(GAMMA_K, tau, k, P, R) - (R + k * t_star ** Q) ** (1 / Q), "dL/dgamma != ||min(l+, t*)||_q")
    return "n tau >= 1, g at the ends, dL/dgamma = ||min(l+,t*)||_q > 0, dL/dtau = S_k - k t*"

