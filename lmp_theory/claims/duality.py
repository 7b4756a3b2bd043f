"""Claims about the dual formula and its shape, the two ends of the paper's family, and the bounds on L."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from solvers.numpy import lmp_solve, lmp_value
from solvers.parameters import paper_parameters

from ..certificate import dual_function, dual_minimum
from ..testing import strategies as gen
from . import _exact as ex
from . import formulas as f
from .closed_form import GAMMA_K, HOLDER_P, SLACK, P, Q, R, S, k, n, tau
from .registry import Search, claim, require, zero

t = sp.Symbol("t", positive=True)


def _trial_points(y: list) -> list:
    """0, every positive loss, the midpoints between consecutive ones, and twice the largest."""
    points = [mp.mpf(0)] + list(y) + [(a + b) / 2 for a, b in zip(y, y[1:])]
    return sorted(set(points + ([2 * y[0]] if y else [mp.mpf(1)])))


def _dual_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    p, q, gamma, tau_, m = ex.parameters(inst)
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    best, _ = dual_minimum(inst.losses, inst.p, inst.gamma, inst.tau)
    scale = max(abs(res.value), inst.gamma * float(np.max(np.abs(inst.losses))), 1e-300)
    if not ex.close(best, res.value, 1e-12, scale):  # min_t g(t) = L
        return False
    for trial in _trial_points(ex.positives(losses)):  # every t >= 0 bounds L from above
        if dual_function(inst.losses, float(trial), inst.p, inst.gamma, inst.tau) < res.value - 1e-13 * scale:
            return False
    if not (1 < p < mp.inf and tau_ < mp.inf):
        return True
    s = ex.split(losses, inst)
    if s.k >= len(s.y):
        return True
    t_star = s.threshold
    exact = ex.value(losses, inst)
    if not ex.close(ex.dual(losses, inst, t_star), exact, SLACK):  # g(t*) = L
        return False
    h = mp.fsum(min(mp.mpf(1), (v / t_star) ** q) for v in s.y)
    if not ex.close(gamma * h ** (-1 / p), tau_, SLACK):  # first-order condition: h(t*) = m, so g'(t*) = 0
        return False
    from_threshold = [tau_ * min(mp.mpf(1), (v / t_star) ** (q - 1)) if v > 0 else mp.mpf(0) for v in losses]
    return ex.weights_agree(res.weights, from_threshold, inst, 1e-10)


@claim("dual", "The variational (dual) formula",
       "L = min over t >= 0 of g(t) = tau*sum (l_i - t)+ + gamma*||min(l+, t)||_q, and every t >= 0 gives g(t) >= L. "
       "For 1 < p < inf with a cap and n+ > m, the minimum is attained at the threshold t* = (R_k/(m-k))^(1/q) "
       "of the k-rule, where h(t*) = sum min(1, (l_i+/t*)^q) = m (the first-order condition: g'(t*) = 0 when t* is "
       "not a loss), g(t*) = L, and w_i = tau*min(1, (l_i+/t*)^(q-1)). That the minimum is global follows from "
       "claim dual-quasiconvex, not from g'(t*) = 0 alone: g is not convex.",
       "1 <= p <= inf, gamma > 0, 0 < tau <= inf, any real losses (the t* statements: 1 < p < inf, tau < inf)",
       r"L = \min_{t\ge0} \tau\textstyle\sum_i (l_i-t)^+ + \gamma\|\min(l^+,t)\|_q = g(t^*),\quad "
       r"h(t^*) = m,\ w_i = \tau\min\big(1,(l_i^+/t^*)^{q-1}\big)",
       "derived here (dualise the cap, then Hölder); Rockafellar–Uryasev for p = 1",
       numeric=Search(_dual_holds, lambda: gen.instances()))
def _dual():
    g = f.dual_on_interval(t, tau, S, k, GAMMA_K, R, P)
    t_star = f.threshold_formula(R, GAMMA_K**P / tau**P, k, P)
    zero(sp.diff(g, t).subs(t, t_star), "g'(t*) != 0")
    T, E = sp.symbols("T E", positive=True)
    gamma_m, r_of_t = tau * (k + E) ** (1 / P), E * T**Q
    zero(f.threshold_formula(r_of_t, k + E, k, P) - T, "t* formula is inconsistent")
    zero(f.dual_on_interval(T, tau, S, k, gamma_m, r_of_t, P) - f.value_formula(tau, S, gamma_m, k, P, r_of_t),
         "g(t*) != L")
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    zero(tau * t_star ** (1 - Q) - c, "tau (l/t*)^(q-1) != c l^(q-1)")
    return ("on the interval holding t* (k losses above it; symbolic k, p, gamma, tau, S, R): g'(t*) = 0, "
            "g(t*) = value formula, weights from t*; global minimality is claim dual-quasiconvex")


def _quasiconvex_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    p, q, gamma, tau_, m = ex.parameters(inst)
    y = ex.positives(losses)
    if not y:
        return True
    points = [pt for pt in _trial_points(y) if pt > 0]
    g = [ex.dual(losses, inst, pt) for pt in points]
    scale = tau_ * mp.fsum(y) + gamma * y[0] * len(y)
    for pt in points:
        if any(pt == v for v in y):
            continue
        above = sum(1 for v in y if v > pt)
        h = mp.fsum(min(mp.mpf(1), (v / pt) ** q) for v in y)
        stated = above * (gamma * h ** (-1 / p) - tau_)
        with mp.workdps(ex.difference_digits(losses + [pt])):
            step = pt * mp.mpf(10) ** -20
            numeric = (ex.dual(losses, inst, pt + step) - ex.dual(losses, inst, pt - step)) / (2 * step)
        if not ex.close(numeric, stated, mp.mpf(10) ** -12, scale=abs(stated) + tau_ * len(y) + gamma):
            return False
    t_star = ex.split(losses, inst).threshold if len(y) > m else mp.mpf(0)
    for (a, ga), (b, gb) in zip(zip(points, g), zip(points[1:], g[1:])):
        slack = SLACK * scale
        if b <= t_star and gb > ga + slack:  # non-increasing up to t*
            return False
        if a >= t_star and gb < ga - slack:  # non-decreasing after t*
            return False
    return True


@claim("dual-quasiconvex", "The dual is quasi-convex, not convex",
       "Away from the losses g'(t) = #{l_i > t} (gamma h(t)^(-1/p) - tau) with h(t) = sum_i min(1, (l_i+/t)^q) "
       "non-increasing; so g is non-increasing on [0, t*] and non-decreasing on [t*, inf): its minimum over t >= 0 is "
       "at t* (h(t*) = m). g is convex on each interval between consecutive losses but not convex overall "
       "(it bends down at the losses beyond t*). The certificate's bracketing of t* relies on this.",
       "1 < p < inf, gamma > 0, 0 < tau < inf, any real losses",
       r"g'(t) = \#\{l_i > t\}\,\big(\gamma\, h(t)^{-1/p} - \tau\big),\quad "
       r"h(t) = \textstyle\sum_i \min\big(1, (l_i^+/t)^q\big)\ \downarrow",
       "derived here",
       numeric=Search(_quasiconvex_holds, lambda: gen.instances(p=HOLDER_P, cap=True), budget=200))
def _dual_quasiconvex():
    g = f.dual_on_interval(t, tau, S, k, GAMMA_K, R, P)  # k losses above t, R = sum of q-th powers below
    h = k + R / t**Q  # h(t) on the interval
    zero(sp.simplify((sp.diff(g, t) / k + tau) / (GAMMA_K * h ** (-1 / P))) - 1,
         "g'(t) != #{l > t} (gamma h^(-1/p) - tau)")
    require(sp.simplify(-sp.diff(h, t)).is_positive, "h is not decreasing on the interval")
    curvature = sp.simplify(sp.diff(g, t, 2) / (k * GAMMA_K))
    require(curvature.is_positive, f"g is not convex on the interval: g''/(k gamma) = {curvature}")
    return ("on an interval between consecutive losses (symbolic k, p, gamma, tau, R): the derivative formula, h "
            "decreasing, g convex there; across a loss h is continuous and #{l > t} drops, so the sign pattern of "
            "g' (- then +) holds globally")


def _p1_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    y = ex.positives(losses)
    m = mp.mpf(inst.ratio) * inst.n
    padded = y + [mp.mpf(0)] * (inst.n - len(y))  # l+ sorted, zeros included
    kk = min(int(mp.floor(m)), inst.n)
    top_m = (mp.fsum(padded[:kk]) + ((m - kk) * padded[kk] if kk < inst.n else 0)) / m
    ru = min(tt + mp.fsum(max(v - tt, 0) for v in losses) / m for tt in [mp.mpf(0)] + y)  # RU over t >= 0
    value = lmp_value(inst.losses, 1.0, inst.gamma, inst.tau)
    scale = max(y[0], mp.mpf(10) ** -300) if y else 1
    return ex.close(value, top_m, 1e-12, scale) and ex.close(value, ru, 1e-12, scale)


@claim("p1-cvar", "p = 1 is the CVaR of l+",
       "With p = 1 and the paper's parameters (gamma = 1, tau = 1/m, m = ratio*n > 0), L is the mean of the top m "
       "of l+ with fractional m: (S_k + (m-k) l+_(k+1))/m with k = floor(m) and l+ sorted; it is the minimum over "
       "t >= 0 of the Rockafellar–Uryasev function t + sum(l_i-t)+/m (equivalently RU on l+), and the p -> 1 "
       "limit of "
       "the closed form. Over all real t (negative losses kept) RU can be smaller: l = (1, -5), m = 2 gives L = 0.5, "
       "RU minimum -2.",
       "p = 1, the paper's parameters with ratio > 0, any real losses",
       r"p=1:\ L = \tfrac1m\big(S_k + (m-k)\,l^+_{(k+1)}\big) = "
       r"\min_{t \ge 0}\, t + \tfrac1m \textstyle\sum_i (l_i-t)^+",
       "Rockafellar & Uryasev 2000 (textbook); paper sec. 3.1",
       numeric=Search(_p1_holds, lambda: gen.instances(p=st.just(1.0), parameters="paper", cap=True)))
def _p1():
    nu, u, v = sp.symbols("nu u v", positive=True)
    m = k + 1 / (1 + u)  # k = floor(m) < m < k + 1

    def ru(tt, above, total):  # t + (1/m) sum (l - t)+ with `above` losses above t summing to `total`
        return tt + (total - above * tt) / m

    slope_right = sp.diff(ru(t, k, S), t)
    slope_left = sp.diff(ru(t, k + 1, S + nu), t)
    require(sp.simplify(slope_right).is_positive, f"RU slope right of l_(k+1) not > 0: {slope_right}")
    require(sp.simplify(slope_left).is_negative, f"RU slope left of l_(k+1) not < 0: {slope_left}")
    zero(ru(nu, k, S) - f.cvar(S, nu, k, m), "RU minimum != top-m mean")
    q = sp.Symbol("q", positive=True)
    r_norm = sp.limit(nu * (1 + (1 + v) ** (-q)) ** (1 / q), q, sp.oo)  # R_k^(1/q) -> l_(k+1)
    zero(r_norm - nu, "R_k^(1/q) does not tend to l_(k+1)")
    p = sp.Symbol("p", positive=True)
    budget = sp.limit((1 - k * (1 / m) ** p) ** (1 / p), p, 1)  # gamma = 1, tau = 1/m
    zero((1 / m) * S + budget * nu - f.cvar(S, nu, k, m), "the p -> 1 limit is not the top-m mean")
    return ("for positive l_(k+1) = nu and fractional m: RU slopes change sign at l_(k+1), its minimum is the top-m "
            "mean, = p->1 limit; a loss <= 0 there makes t = 0 the minimiser over t >= 0 (the searched part)")


def _pinf_holds(inst) -> bool:
    positive = np.maximum(inst.losses, 0)
    mean_plus = mp.fsum(ex.mpf_list(positive)) / inst.n
    top = float(np.max(positive)) or 1.0
    if not ex.close(lmp_value(inst.losses, math.inf, inst.gamma, inst.tau), mean_plus, 1e-13, top):
        return False
    near = lmp_value(inst.losses, 1e9, *paper_parameters(inst.n, 1e9, inst.ratio))
    return ex.close(near, mean_plus, 1e-6, top)


@claim("pinf-mean", "p = inf is the mean of l+",
       "With p = inf and the paper's parameters (gamma = tau = 1/n for every ratio), L is the plain mean of l+; "
       "it is the p -> inf limit (at p = 1e9 within 1e-6 of max(l+)).",
       "p = inf, the paper's parameters at any ratio in [0, 1], any real losses",
       r"p=\infty:\ L = \tfrac1n \textstyle\sum_i l_i^+ = \lim_{p\to\infty} L_p",
       "paper sec. 3.1; derived here",
       numeric=Search(_pinf_holds, lambda: gen.instances(p=st.just(math.inf), parameters="paper")))
def _pinf():
    a, b, rho = sp.symbols("a b rho", positive=True)
    p = sp.Symbol("p", positive=True)
    holder_limit = sp.limit(f.paper_gamma(n, p) * (a ** (p / (p - 1)) + b ** (p / (p - 1))) ** ((p - 1) / p), p, sp.oo)
    zero(holder_limit - (a + b) / n, "no-cap limit p -> inf is not sum(l+)/n")
    cap_over_budget = sp.limit(f.paper_tau(n, p, rho) / f.paper_gamma(n, p), p, sp.oo)
    zero(cap_over_budget - 1, "tau/gamma does not tend to 1 (so w = 1/n would not be optimal)")
    return "lim gamma ||l+||_q = sum(l+)/n (two losses) and tau/gamma -> 1 as p -> inf"
