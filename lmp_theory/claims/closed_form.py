"""Claims about the parameters, the closed form, its value and its gradient.

Symbolic checks write ``p = 1 + 1/s`` with ``s = q - 1 > 0`` (so ``q = 1 + s``): every exponent
is then a rational function of one positive symbol and sympy can combine powers. Where a check
needs ``k < m`` (fewer losses capped than the cap count) it writes
``gamma^p = k tau^p + D`` with ``D > 0``.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp

from . import formulas as f
from ._numeric import instances, sorted_split
from .registry import claim, require, zero

s = sp.Symbol("s", positive=True)
P = 1 + 1 / s  # p in (1, inf)
Q = 1 + s
n, rho, tau, k, D, R, S, lam = sp.symbols("n rho tau k D R S lambda", positive=True)
GAMMA_K = (k * tau**P + D) ** (1 / P)  # gamma with gamma^p - k tau^p = D > 0


def _numeric_parameters():
    from lmp_theory import paper_parameters
    from lmp_theory.problem import cap_count

    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(300):
        count = int(rng.integers(1, 10**6))
        p = float(rng.choice([1.0, 1.001, 1.5, 2.0, 7.0, 1e3, 1e6]))
        ratio = float(rng.uniform(0.001, 1.0))
        gamma, tau_ = paper_parameters(count, p, ratio)
        worst = max(worst, abs(gamma - f.paper_gamma(count, p)) / gamma, abs(tau_ - f.paper_tau(count, p, ratio)) / tau_)
        # the uniform weighting 1/n has p-norm gamma; ratio * n weights at tau exhaust it
        norm = count ** (1 / p) / count
        worst = max(worst, abs(norm - gamma) / gamma)
        worst = max(worst, abs(float(cap_count(p, gamma, tau_)) - ratio * count) / (ratio * count) / max(1.0, p * 1e-6))
    require(worst <= 1e-9, f"paper parameters off by {worst:.2e}")
    g1, t1 = paper_parameters(40, 1.0 + 1e-9, 0.25)
    gi, ti = paper_parameters(40, 1e12, 0.25)
    require(abs(g1 - 1) < 1e-7 and abs(t1 - 0.1) < 1e-7, "p -> 1 limit not reached numerically")
    require(abs(gi - 1 / 40) < 1e-9 and abs(ti - 1 / 40) < 1e-9, "p -> inf limit not reached numerically")
    return f"300 random (n, p, ratio) agree to {worst:.1e}; limits p->1, p->inf reached"


@claim("paper-parameters", "The paper's gamma and tau",
       "gamma = n^(1/p-1) is the p-norm of the uniform weighting 1/n; m = ratio*n weights at tau = gamma*m^(-1/p) "
       "exhaust the budget; p->1 gives gamma=1, tau=1/m; p->inf gives gamma=tau=1/n.",
       r"\|\tfrac1n \mathbf 1\|_p = n^{1/p-1} = \gamma,\quad m\,\tau^p = \gamma^p,\quad "
       r"\lim_{p\to1}(\gamma,\tau) = (1, \tfrac1m),\quad \lim_{p\to\infty}(\gamma,\tau) = (\tfrac1n, \tfrac1n)",
       "Rota Bulò et al., CVPR 2017, sec. 3.1", numeric=_numeric_parameters)
def _paper_parameters():
    zero((n * (1 / n) ** P) ** (1 / P) - f.paper_gamma(n, P), "||1/n||_p != gamma")
    zero(rho * n * f.paper_tau(n, P, rho) ** P - f.paper_gamma(n, P) ** P, "m tau^p != gamma^p")
    p = sp.Symbol("p", positive=True)
    limits = {
        "gamma, p->1": (sp.limit(f.paper_gamma(n, p), p, 1), sp.Integer(1)),
        "tau, p->1": (sp.limit(f.paper_tau(n, p, rho), p, 1), 1 / (rho * n)),
        "gamma, p->oo": (sp.limit(f.paper_gamma(n, p), p, sp.oo), 1 / n),
        "tau, p->oo": (sp.limit(f.paper_tau(n, p, rho), p, sp.oo), 1 / n),
    }
    for name, (got, want) in limits.items():
        zero(got - want, f"limit {name} is {got}, not {want}")
    return "2 identities and 4 limits"


def _numeric_holder():
    from solvers.numpy import lmp_solve

    worst = 0.0
    for losses, p, gamma, _ in instances(200, seed=2, no_cap=True):
        if p == 1.0 or math.isinf(p):
            continue
        q = p / (p - 1)
        lp = np.maximum(losses, 0)
        if not lp.any():
            continue
        top = lp.max()
        norm_q = top * np.sum((lp / top) ** q) ** (1 / q)
        res = lmp_solve(losses, p, gamma, math.inf)
        shape = (lp / top) ** (q - 1)
        expected_w = gamma * shape / np.sum((lp / top) ** q) ** (1 / p)
        worst = max(worst, abs(res.value - f.holder_value(gamma, norm_q)) / (gamma * norm_q),
                    np.max(np.abs(res.weights - expected_w)) / expected_w.max())
    require(worst <= 1e-12, f"Hölder closed form off by {worst:.2e}")
    return f"200 instances, worst relative error {worst:.1e}"


@claim("holder", "No cap: Hölder's weighting",
       "With tau = inf, L = gamma*||l+||_q and the maximizer is proportional to l+^(q-1).",
       r"\tau=\infty:\ L = \gamma \|l^+\|_q,\quad w^* = \gamma\, (l^+)^{q-1} / \|l^+\|_q^{q-1}",
       "Hölder's inequality (textbook); the paper's eq. 3 with no cap", numeric=_numeric_holder)
def _holder():
    a, b, c, gamma = sp.symbols("a b c gamma", positive=True)
    norm_q = (a**Q + b**Q + c**Q) ** (1 / Q)
    w = [gamma * x ** (Q - 1) / norm_q ** (Q - 1) for x in (a, b, c)]
    zero(sum(x**P for x in w) - gamma**P, "||w||_p != gamma")
    zero(w[0] * a + w[1] * b + w[2] * c - f.holder_value(gamma, norm_q), "<w, l> != gamma ||l||_q")
    # stationarity l_i = lambda w_i^(p-1): the same lambda for every entry
    zero(a / w[0] ** (P - 1) - b / w[1] ** (P - 1), "stationarity: lambda differs between entries")
    zero(a / w[0] ** (P - 1) - c / w[2] ** (P - 1), "stationarity: lambda differs between entries")
    return "norm, value and stationarity for 3 symbolic losses and symbolic p"


def _numeric_kkt():
    from solvers.numpy import lmp_solve

    worst = 0.0
    checked = 0
    for losses, p, gamma, tau_ in instances(300, seed=3):
        if p == 1.0 or math.isinf(p) or math.isinf(tau_):
            continue
        w = lmp_solve(losses, p, gamma, tau_).weights
        interior = (losses > 0) & (w < tau_) & (w > 1e-200 * max(w.max(), 1e-300))
        if not interior.any():
            continue
        lam_i = np.exp(np.log(losses[interior]) - (p - 1) * np.log(w[interior] / gamma))  # l = lambda (w/gamma)^(p-1)
        spread = (lam_i.max() - lam_i.min()) / lam_i.max()
        capped = (losses > 0) & (w >= tau_)
        mu = losses[capped] - lam_i.max() * (tau_ / gamma) ** (p - 1)  # must be >= 0
        norm = np.sum((w / w.max()) ** p) ** (1 / p) * w.max()
        worst = max(worst, spread / max(1.0, p * 1e-12), max(0.0, -mu.min() / losses.max()) if mu.size else 0.0,
                    abs(norm / gamma - 1))
        checked += 1
    require(worst <= 1e-9 and checked > 100, f"KKT residual {worst:.2e} over {checked} instances")
    return f"multipliers written out on {checked} instances, worst residual {worst:.1e}"


@claim("kkt-closed-form", "The closed form satisfies the KKT conditions",
       "For any number k of capped losses: w = tau on the k largest, c*l^(q-1) on the rest with "
       "c = ((gamma^p - k tau^p)/R_k)^(1/p) is feasible with ||w||_p = gamma, stationarity holds with one "
       "multiplier lambda > 0, the cap multipliers are mu_i = l_i - t* >= 0, and t* = (R_k/(m-k))^(1/q).",
       r"l_i = \lambda p\, w_i^{p-1} + \mu_i - \nu_i,\ \lambda = \tfrac{1}{p\,c^{p-1}},\ "
       r"\mu_i = l_i - t^*,\ t^* = (\tau/c)^{p-1} = \big(R_k/(m-k)\big)^{1/q}",
       "derived here (SPEC sec. 3); KKT for eq. 3 of the paper", numeric=_numeric_kkt)
def _kkt():
    l, capped_loss = sp.symbols("l l_c", positive=True)
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    zero((Q - 1) * P - Q, "(q-1) p != q")
    zero(k * tau**P + c**P * R - GAMMA_K**P, "norm constraint not active: k tau^p + c^p R != gamma^p")
    w = c * l ** (Q - 1)
    lam_expr = l / (P * w ** (P - 1))  # stationarity of an interior entry
    zero(sp.diff(lam_expr, l), "lambda depends on the loss: stationarity fails")
    require(sp.simplify(lam_expr).is_positive, "lambda > 0 not established")
    t = (tau / c) ** (P - 1)
    zero(c * t ** (Q - 1) - tau, "the uncapped formula does not reach tau at t*")
    require(sp.diff(w, l).is_positive, "uncapped weights are not increasing in the loss")
    mu = capped_loss - lam_expr * P * tau ** (P - 1)
    zero(mu - (capped_loss - t), "cap multiplier is not l_i - t*")
    zero(t - f.threshold_formula(R, GAMMA_K**P / tau**P, k, P), "t* != (R/(m-k))^(1/q)")
    return "norm, stationarity, lambda > 0, mu = l - t*, t* formula, for symbolic k, p, gamma, tau, R"


def _numeric_value():
    from lmp_theory.problem import cap_count
    from solvers.numpy import lmp_solve

    worst = 0.0
    for losses, p, gamma, tau_ in instances(300, seed=4):
        if p == 1.0 or math.isinf(p) or math.isinf(tau_):
            continue
        res = lmp_solve(losses, p, gamma, tau_)
        y, kk = sorted_split(losses, res.threshold)
        kk = min(kk, math.ceil(float(cap_count(p, gamma, tau_))) - 1)  # a loss at t* itself: count it uncapped
        if kk >= y.size:
            continue
        # the stated formula in 50-digit arithmetic: gamma^p underflows float64 for p = 1000
        mp.mp.dps = 50
        pm = mp.mpf(p)
        qm = pm / (pm - 1)
        ys = [mp.mpf(float(v)) for v in y]
        expected = f.value_formula(mp.mpf(tau_), sum(ys[:kk]), mp.mpf(gamma), kk, pm, sum(v**qm for v in ys[kk:]))
        worst = max(worst, float(abs(res.value - expected) / expected))
    require(worst <= 1e-10, f"value formula off by {worst:.2e}")
    return f"300 instances, worst relative error {worst:.1e}"


@claim("value-formula", "The optimal value",
       "L = tau*S_k + (gamma^p - k tau^p)^(1/p) * R_k^(1/q), with S_k the sum of the k capped losses and "
       "R_k the sum of q-th powers of the others.",
       r"L = \tau S_k + (\gamma^p - k\tau^p)^{1/p} R_k^{1/q}",
       "derived here (SPEC sec. 3)", numeric=_numeric_value)
def _value():
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    # <w, l> = tau S_k + sum_{uncapped} c l^(q-1) l = tau S_k + c R_k
    zero(tau * S + c * R - f.value_formula(tau, S, GAMMA_K, k, P, R), "<w, l> != stated value formula")
    return "<w, l> of the closed form equals the stated formula for symbolic k, p, gamma, tau, S, R"


def _numeric_gradient():
    import torch

    from solvers.numpy import lmp_solve, lmp_value
    from solvers.torch import lmp_value as torch_value

    worst_grad = worst_fd = worst_euler = 0.0
    for losses, p, gamma, tau_ in instances(60, seed=5, distinct=True):
        w = lmp_solve(losses, p, gamma, tau_).weights
        x = torch.tensor(losses, requires_grad=True)
        (grad,) = torch.autograd.grad(torch_value(x, p, gamma, tau_), x)
        if losses.max() <= 1e3 * losses.min():  # beyond that, L's rounding swamps a difference quotient
            h = 1e-7 * losses
            fd = np.array([(lmp_value(losses + hi * e, p, gamma, tau_) - lmp_value(losses - hi * e, p, gamma, tau_))
                           / (2 * hi) for hi, e in zip(h, np.eye(losses.size))])
        else:
            fd = w
        value = lmp_value(losses, p, gamma, tau_)
        scale = max(w.max(), 1e-300)
        worst_grad = max(worst_grad, np.max(np.abs(grad.numpy() - w)) / scale)
        worst_fd = max(worst_fd, np.max(np.abs(fd - w)) / scale)
        worst_euler = max(worst_euler, abs(np.dot(w, losses) - value) / max(abs(value), 1e-300))
    require(worst_grad <= 1e-12, f"autograd gradient != weights ({worst_grad:.2e})")
    require(worst_fd <= 1e-4, f"finite differences != weights ({worst_fd:.2e})")
    require(worst_euler <= 1e-12, f"Euler identity off by {worst_euler:.2e}")
    return (f"60 instances: autograd vs weights {worst_grad:.0e}, finite differences {worst_fd:.0e}, "
            f"Euler {worst_euler:.0e}")


@claim("gradient", "Gradient, Euler's identity, homogeneity",
       "dL/dl_i is the weight w_i (tau for capped, c*l_i^(q-1) otherwise: Danskin); <grad L, l> = L; "
       "L(a*l) = a*L(l) for a > 0.",
       r"\nabla L = w^*,\quad \langle \nabla L, l\rangle = L,\quad L(a l) = a L(l)",
       "Danskin's theorem (textbook); checked on the value formula here", numeric=_numeric_gradient)
def _gradient():
    a1, a2, b1, b2, b3, gamma, scale = sp.symbols("a1 a2 b1 b2 b3 gamma a", positive=True)
    capped, free = (a1, a2), (b1, b2, b3)

    def value(cs, bs):
        return f.value_formula(tau, sum(cs), gamma, 2, P, sum(b**Q for b in bs))

    L = value(capped, free)
    c = f.closed_form_coefficient(gamma, tau, 2, P, sum(b**Q for b in free))
    for x in capped:
        zero(sp.diff(L, x) - tau, "dL/d(capped loss) != tau")
    for x in free:
        zero(sp.diff(L, x) - c * x ** (Q - 1), "dL/d(uncapped loss) != c l^(q-1)")
    zero(sum(x * sp.diff(L, x) for x in capped + free) - L, "Euler's identity fails")
    zero(value([scale * x for x in capped], [scale * x for x in free]) - scale * L, "L is not 1-homogeneous")
    return "derivatives of the value formula (2 capped, 3 uncapped symbolic losses), Euler, homogeneity"

