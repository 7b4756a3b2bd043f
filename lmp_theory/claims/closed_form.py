"""Claims about the parameters, the closed form and its capped count, the value and the gradient.

Symbolic checks write ``p = 1 + 1/s`` with ``s = q - 1 > 0`` (so ``q = 1 + s``): every exponent
is then a rational function of one positive symbol and sympy can combine powers. Where a check
needs ``k < m`` (fewer losses capped than the cap count) it writes ``gamma^p = k tau^p + D`` with
``D > 0``. Numeric checks are counterexample searches over each claim's hypotheses.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp
import torch
from hypothesis import strategies as st

from solvers.numpy import lmp_solve, lmp_value
from solvers.problem import cap_count
from solvers.torch import lmp_value as torch_value
from solvers.torch import lmp_weights as torch_weights

from ..certificate import certify
from ..testing import strategies as gen
from . import _exact as ex
from . import formulas as f
from .registry import Search, claim, require, zero

s = sp.Symbol("s", positive=True)
P = 1 + 1 / s  # p in (1, inf)
Q = 1 + s
n, rho, tau, k, D, R, S, lam = sp.symbols("n rho tau k D R S lambda", positive=True)
GAMMA_K = (k * tau**P + D) ** (1 / P)  # gamma with gamma^p - k tau^p = D > 0

HOLDER_P = gen.exponents(1.0, math.inf, exclude_min=True, exclude_max=True)  # 1 < p < inf
FLOAT_MAX = mp.mpf(np.finfo(np.float64).max)


def _as_float(x) -> float:
    """An exact value as the float a correctly rounded evaluation returns (inf past the range)."""
    return math.inf if x > FLOAT_MAX else float(x)


def _paper_parameters_hold(inst) -> bool:
    p, _, _, _, _ = ex.parameters(inst)
    count, ratio = mp.mpf(inst.n), mp.mpf(inst.ratio)
    gamma = 1 / count if p == mp.inf else count ** (1 / p - 1)
    tau = gamma if p == mp.inf else (mp.inf if ratio == 0 else gamma * (ratio * count) ** (-1 / p))
    rtol = 1e-12 * max(1.0, math.log(float(count)) if count > 1 else 1.0)
    if not ex.close(inst.gamma, gamma, rtol):
        return False
    if tau == mp.inf or tau > FLOAT_MAX:
        return math.isinf(inst.tau)
    if not ex.close(inst.tau, tau, rtol * max(1.0, float(abs(mp.log(ratio * count))) if ratio > 0 else 1.0)):
        return False
    if p == mp.inf or ratio == 0:
        return True
    # m tau^p = gamma^p: the cap count is ratio * n, to the rounding of gamma and tau (amplified p-fold)
    return ex.close(float(cap_count(inst.p, inst.gamma, inst.tau)), ratio * count, 1e-11 * max(1.0, inst.p))


@claim("paper-parameters", "The paper's gamma and tau",
       "gamma = n^(1/p-1) is the p-norm of the uniform weighting 1/n; m = ratio*n weights at tau = gamma*m^(-1/p) "
       "exhaust the budget (m tau^p = gamma^p); p->1 gives gamma=1, tau=1/m; p->inf gives gamma=tau=1/n; ratio 0 "
       "gives tau = inf (no cap) for p < inf. paper_parameters returns these values correctly rounded (inf where "
       "tau exceeds the float range).",
       "n >= 1 an integer, 1 <= p <= inf, 0 <= ratio <= 1",
       r"\|\tfrac1n \mathbf 1\|_p = n^{1/p-1} = \gamma,\quad m\,\tau^p = \gamma^p,\quad "
       r"\lim_{p\to1}(\gamma,\tau) = (1, \tfrac1m),\quad \lim_{p\to\infty}(\gamma,\tau) = (\tfrac1n, \tfrac1n)",
       "Rota Bulò et al., CVPR 2017, sec. 3.1",
       numeric=Search(_paper_parameters_hold, lambda: gen.instances(
           parameters="paper", losses=st.integers(1, 10**6).map(lambda count: np.zeros(count)))))
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
    return "2 identities and 4 limits for symbolic n, p, ratio"


def _holder_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    _, q, gamma, _, _ = ex.parameters(inst)
    y = ex.positives(losses)
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    if not y:
        return res.value == 0 and not np.any(res.weights)
    norm_q = mp.fsum(v**q for v in y) ** (1 / q)
    stated = [gamma * v ** (q - 1) / norm_q ** (q - 1) if v > 0 else mp.mpf(0) for v in losses]
    return (ex.close(res.value, f.holder_value(gamma, norm_q), 1e-10)
            and ex.weights_agree(res.weights, stated, inst, 1e-10))


@claim("holder", "No cap: Hölder's weighting",
       "With tau = inf, L = gamma*||l+||_q and the maximizer is w = gamma (l+)^(q-1) / ||l+||_q^(q-1); the solvers "
       "return it (value to 1e-10 relative, weights to 1e-10 of the largest; values below the normal float range to "
       "their spacing).",
       "tau = inf, 1 < p < inf, gamma > 0, any real losses",
       r"\tau=\infty:\ L = \gamma \|l^+\|_q,\quad w^* = \gamma\, (l^+)^{q-1} / \|l^+\|_q^{q-1}",
       "Hölder's inequality (textbook); the paper's eq. 3 with no cap",
       numeric=Search(_holder_holds, lambda: gen.instances(p=HOLDER_P, cap=False)))
def _holder():
    a, b, c, gamma = sp.symbols("a b c gamma", positive=True)
    norm_q = (a**Q + b**Q + c**Q) ** (1 / Q)
    w = [gamma * x ** (Q - 1) / norm_q ** (Q - 1) for x in (a, b, c)]
    zero(sum(x**P for x in w) - gamma**P, "||w||_p != gamma")
    zero(w[0] * a + w[1] * b + w[2] * c - f.holder_value(gamma, norm_q), "<w, l> != gamma ||l||_q")
    zero(a / w[0] ** (P - 1) - b / w[1] ** (P - 1), "stationarity: lambda differs between entries")
    zero(a / w[0] ** (P - 1) - c / w[2] ** (P - 1), "stationarity: lambda differs between entries")
    return "norm, value and stationarity for 3 symbolic positive losses and symbolic p"


SLACK = mp.mpf(10) ** -35  # relative slack of the searches' exact comparisons (80 digits, minus cancellation)


def _k_rule_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    p, q, gamma, tau, m = ex.parameters(inst)
    y = ex.positives(losses)
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    if len(y) <= m:  # no k < m leaves a loss uncapped: every positive loss is at the cap
        return ex.weights_close(res.weights, [tau if v > 0 else mp.mpf(0) for v in losses], 1e-12)
    bound = [mp.inf] + y  # bound[k] = y_(k) (1-based), y_(0) = inf
    consistent = []
    for kk in range(int(mp.ceil(m))):
        t = ex.split(losses, inst, kk).threshold
        if bound[kk] * (1 + SLACK) >= t and t * (1 + SLACK) >= y[kk]:
            consistent.append((kk, t))
    if not consistent:
        return False
    ks = [kk for kk, _ in consistent]
    if ks != list(range(ks[0], ks[-1] + 1)):
        return False
    t0 = consistent[0][1]
    if any(not ex.close(t, t0, SLACK) for _, t in consistent):
        return False
    if len(ks) > 1 and not any(ex.close(v, t0, SLACK) for v in y):  # several k only where t* is a loss
        return False
    if ks[0] != ex.k_rule(y, p, gamma, tau):
        return False
    return ex.weights_agree(res.weights, ex.weights(losses, inst, ex.split(losses, inst, ks[0])), inst, 1e-10)


@claim("k-rule", "The number of capped losses",
       "With the positive losses sorted, l_(1) >= l_(2) >= ..., l_(0) = inf, m = (gamma/tau)^p and "
       "t_k* = (R_k/(m-k))^(1/q): if n+ <= m every positive loss is capped; otherwise the k < m with "
       "l_(k) >= t_k* >= l_(k+1) exist, form a run of consecutive integers with one common t_k* = t*, and the "
       "run has more than one element only when t* equals a loss (ties at t*, all weighted tau either way); "
       "so k is unique when no loss equals t*. The smallest such k is the smallest k < m with "
       "c_k l_(k+1)^(q-1) <= tau, and the solvers cap the k largest (their weights match this closed form to 1e-10 "
       "of the largest weight, plus the problem's conditioning: the spread of the exact weights over 4-ulp "
       "changes of gamma and tau, which is large only where m is within rounding of an integer).",
       "1 < p < inf, gamma > 0, 0 < tau < inf, any real losses (ties, zeros and negatives included)",
       r"l_{(k)} \ge t_k^* = \Big(\tfrac{R_k}{m-k}\Big)^{1/q} \ge l_{(k+1)},\qquad "
       r"t_k^{*q}(m-k) = l_{(k+1)}^q + t_{k+1}^{*q}(m-k-1)",
       "derived here",
       numeric=Search(_k_rule_holds, lambda: gen.instances(p=HOLDER_P, cap=True)))
def _k_rule():
    y1, R1, E = sp.symbols("y R_1 E", positive=True)
    m = k + 1 + E  # k + 1 < m: both t_k* and t_(k+1)* are defined
    # R_k = y^q + R_(k+1): t_k*^q is the weighted mean of y^q (weight 1) and t_(k+1)*^q (weight m - k - 1),
    # so t_k* lies between y = l_(k+1) and t_(k+1)*.
    t_k = f.threshold_formula(y1**Q + R1, m, k, P)
    t_k1 = f.threshold_formula(R1, m, k + 1, P)
    zero(t_k**Q * (m - k) - y1**Q - t_k1**Q * (m - k - 1), "t_k*^q (m-k) != l_(k+1)^q + t_(k+1)*^q (m-k-1)")
    # c_k y^(q-1) <= tau  <=>  y <= (tau/c_k)^(p-1) = t_k*
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    zero((tau / c) ** (P - 1) - f.threshold_formula(R, GAMMA_K**P / tau**P, k, P), "(tau/c_k)^(p-1) != t_k*")
    # for m - k <= 1 the condition t_k* >= l_(k+1) holds: t_k*^q = R_k/(m-k) >= R_k >= l_(k+1)^q
    u = sp.Symbol("u", positive=True)
    require(sp.simplify((y1**Q + R1) / (1 / (1 + u)) - y1**Q).is_positive, "t_k* >= l_(k+1) not shown for m-k <= 1")
    return ("t_k*^q is the weighted mean of l_(k+1)^q and t_(k+1)*^q (so t_k* >= l_(k+1) propagates to k+1: "
            "the consistent k form a run), c_k l^(q-1) <= tau <=> l <= t_k*, and the largest k < m is never "
            "too small: existence and the smallest-k form, for symbolic k, p, gamma, tau, R")


def _kkt_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    p, q, gamma, tau, m = ex.parameters(inst)
    sp_ = ex.split(losses, inst)
    w = ex.weights(losses, inst, sp_)
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    if not ex.weights_agree(res.weights, w, inst, 1e-10):
        return False
    tol = SLACK
    for v, wi in zip(losses, w):  # w >= 0, w <= tau; nu_i = -l_i >= 0 where w_i = 0
        if wi < 0 or wi > tau * (1 + tol) or (wi == 0 and v > 0):
            return False
    if sp_.k >= len(sp_.y):  # every positive loss capped: norm inactive (lambda = 0), mu_i = l_i+
        return mp.fsum(wi**p for wi in w) <= gamma**p * (1 + tol)
    if not ex.close(mp.fsum(wi**p for wi in w), gamma**p, tol):  # the norm constraint is active
        return False
    lam_ = 1 / (p * sp_.c ** (p - 1))
    t_star = lam_ * p * tau ** (p - 1)  # = (tau / c)^(p-1)
    if not ex.close(t_star, sp_.threshold, tol):
        return False
    for v, wi in zip(losses, w):
        if v <= 0:
            continue
        capped = v > sp_.y[sp_.k]
        mu = v - lam_ * p * wi ** (p - 1)  # stationarity l_i = lambda p w_i^(p-1) + mu_i
        if not ex.close(mu, max(v - t_star, 0), tol, scale=v):  # mu_i = (l_i - t*)+
            return False
        if not capped and v > t_star * (1 + tol):
            return False
    return lam_ > 0


@claim("kkt-closed-form", "The closed form satisfies the KKT conditions (for the k-rule's k)",
       "With k the number of capped losses given by the k-rule: w = tau on the k largest positive losses, "
       "c*l^(q-1) on the other positive ones (c = ((gamma^p - k tau^p)/R_k)^(1/p)) and 0 on l_i <= 0 is feasible "
       "with ||w||_p = gamma; stationarity l_i = lambda p w_i^(p-1) + mu_i - nu_i holds with one lambda = "
       "1/(p c^(p-1)) > 0, cap multipliers mu_i = (l_i - t*)+ >= 0, sign multipliers nu_i = (-l_i)+ and "
       "t* = (tau/c)^(p-1) = (R_k/(m-k))^(1/q). If n+ tau^p <= gamma^p, w = tau on every positive loss "
       "(lambda = 0, mu_i = l_i+). For another k the same formulas violate a KKT condition in general "
       "(a weight above tau or a negative multiplier). The solvers return these weights (to 1e-10 of the largest, "
       "plus the conditioning allowance of claim k-rule).",
       "1 < p < inf, gamma > 0, 0 < tau < inf, any real losses",
       r"l_i = \lambda p\, w_i^{p-1} + \mu_i - \nu_i,\ \lambda = \tfrac{1}{p\,c^{p-1}},\ "
       r"\mu_i = (l_i - t^*)^+,\ t^* = (\tau/c)^{p-1} = \big(R_k/(m-k)\big)^{1/q}",
       "derived here; KKT for eq. 3 of the paper",
       numeric=Search(_kkt_holds, lambda: gen.instances(p=HOLDER_P, cap=True)))
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
    return ("for a symbolic k < m: norm active, one lambda > 0, uncapped weights increasing and reaching tau at t*, "
            "mu_i = l_i - t* on capped losses, t* formula; mu_i >= 0 and c l^(q-1) <= tau need l_(k) >= t* >= "
            "l_(k+1), the k-rule (claim k-rule)")


def _value_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    return ex.close(lmp_value(inst.losses, inst.p, inst.gamma, inst.tau), ex.value(losses, inst), 1e-10)


@claim("value-formula", "The optimal value",
       "With k from the k-rule: L = tau*S_k + (gamma^p - k tau^p)^(1/p) * R_k^(1/q), S_k the sum of the k capped "
       "losses and R_k the sum of q-th powers of the other positive ones (L = tau*S when every positive loss is "
       "capped); the solvers' value agrees to 1e-10 relative.",
       "1 < p < inf, gamma > 0, 0 < tau < inf, any real losses",
       r"L = \tau S_k + (\gamma^p - k\tau^p)^{1/p} R_k^{1/q}",
       "derived here",
       numeric=Search(_value_holds, lambda: gen.instances(p=HOLDER_P, cap=True)))
def _value():
    c = f.closed_form_coefficient(GAMMA_K, tau, k, P, R)
    zero(tau * S + c * R - f.value_formula(tau, S, GAMMA_K, k, P, R), "<w, l> != stated value formula")
    return "<w, l> of the closed form equals the stated formula for symbolic k, p, gamma, tau, S, R"


STEP = mp.mpf(10) ** -25    # difference step, relative to the loss (to the largest loss at a zero loss)
SHRINK = mp.mpf(10) ** -10  # a second, smaller step at a zero loss: L(l + h e_i) - L(l) ~ h^q there, or ~ h at a kink
KINK = mp.mpf(10) ** -20    # one-sided partials this far apart (relative to the largest weight) are a kink


# half the gradient search at the ends, where ties and zeros are kinks or not depending on the budget
EDGE_INSTANCES = gen.instances(p=st.sampled_from([1.0, math.inf]))


def _one_sided(losses: list, inst, i: int, h, at) -> tuple:
    """The right and left difference quotients of the exact ``L`` in coordinate ``i`` (``at`` = L(losses))."""
    up, down = list(losses), list(losses)
    up[i], down[i] = losses[i] + h, losses[i] - h
    return (ex.value(up, inst) - at) / h, (at - ex.value(down, inst)) / h


def _gradient_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    x = torch.tensor(inst.losses, requires_grad=True)
    (grad,) = torch.autograd.grad(torch_value(x, inst.p, inst.gamma, inst.tau), x)
    if not np.array_equal(grad.numpy(), res.weights) and not ex.weights_close(
            grad.numpy(), ex.mpf_list(res.weights), 1e-12):
        return False
    largest = max(abs(v) for v in losses) or mp.mpf(1)
    with mp.workdps(ex.difference_digits(losses) + 10):  # + 10: the smaller step at zero losses
        exact = ex.value(losses, inst)
        steps = [(abs(v) or largest) * STEP for v in losses]
        right, left = zip(*(_one_sided(losses, inst, i, h, exact) for i, h in enumerate(steps)))
        if ex.kinked(losses, inst):  # some coordinate's one-sided partials differ; the weight lies between them
            top = max(max(abs(r), abs(l)) for r, l in zip(right, left))
            if not any(r - l > KINK * top for r, l in zip(right, left)):
                return False
            expected = [min(max(mp.mpf(float(w)), l), r) for w, r, l in zip(res.weights, right, left)]
        else:
            expected = [(r + l) / 2 for r, l in zip(right, left)]
            for i in (i for i, v in enumerate(losses) if v == 0):  # differentiable at a zero: the quotient -> 0
                smaller, _ = _one_sided(losses, inst, i, steps[i] * SHRINK, exact)
                if left[i] != 0 or not (right[i] == 0 or 0 <= smaller < right[i]):
                    return False
                expected[i] = mp.mpf(0)
    if not ex.weights_agree(res.weights, expected, inst, 1e-9):
        return False
    scale = mp.fsum(abs(mp.mpf(float(w)) * v) for w, v in zip(res.weights, losses))
    euler = ex.close(mp.fsum(mp.mpf(float(w)) * v for w, v in zip(res.weights, losses)), exact, 1e-12, scale or 1)
    doubled = ex.close(lmp_value(2.0 * inst.losses, inst.p, inst.gamma, inst.tau), 2 * res.value, 1e-12)
    return euler and doubled


@claim("gradient", "Gradient, Euler's identity, homogeneity, and exactly where L has kinks",
       "L is differentiable at l exactly where its maximizer is unique, that is everywhere except (a) where some "
       "l_i = 0 while the budget is slack (p = inf; or #{l_j > 0} tau^p < gamma^p, which with tau = inf means no "
       "positive loss) and (b) at p = 1 only, where a positive level t is held by two or more losses that split "
       "what the losses above it leave: 0 < gamma - tau #{l_j > t} < tau #{l_j = t} (tau = inf: t = max l). Ties "
       "for 1 < p <= inf, zero losses with the budget spent, and negative losses are not kinks. Where L is "
       "differentiable, dL/dl_i is the canonical weight w_i (tau for capped, c l_i^(q-1) for other positive "
       "losses, 0 for the rest: Danskin; central differences of the exact value agree with the solvers' weights to "
       "1e-9 plus the conditioning allowance of claim k-rule, and at a zero loss the one-sided quotient shrinks "
       "with the step) and Torch's autograd returns it; at a kink some coordinate's one-sided partial "
       "derivatives differ and the canonical weight lies between them (a subgradient). <grad L, l> = L; "
       "L(a l) = a L(l) for a > 0.",
       "1 <= p <= inf, gamma > 0, 0 < tau <= inf, any real losses (ties, zeros and negatives included)",
       r"\nabla L = w^*,\quad \langle \nabla L, l\rangle = L,\quad L(a l) = a L(l)",
       "Danskin's theorem (textbook); the kink set derived here",
       numeric=Search(_gradient_holds, lambda: st.one_of(gen.instances(), EDGE_INSTANCES), budget=150))
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


def _least_norm_holds(inst) -> bool:
    losses = inst.losses
    for w in (lmp_solve(losses, inst.p, inst.gamma, inst.tau).weights,
              torch_weights(torch.tensor(losses), inst.p, inst.gamma, inst.tau).numpy()):
        cert = certify(losses, w, inst.p, inst.gamma, inst.tau)
        if cert.violation > 1e-10 or not ex.close(cert.upper_bound, cert.value, 1e-10):
            return False
        if np.any(w[losses <= 0] != 0):
            return False
        for value in np.unique(losses[losses > 0]):
            tied = w[losses == value]
            if np.ptp(tied) > 1e-12 * max(np.max(w), 1e-300):
                return False
    return True


@claim("least-norm", "The canonical maximizer is the least-norm one, and the solvers return it",
       "The maximizers form a closed convex set with a unique element of least Euclidean norm. It is zero wherever "
       "l_i <= 0 (zeroing such a weight keeps it feasible and optimal and lowers the norm) and equal on equal "
       "losses (permuting tied losses maps maximizers to maximizers; averaging lowers the norm). The maximizer is "
       "unique on the positive losses for 1 < p < inf and p = inf; at p = 1 ties at the cut share the remainder "
       "equally. Both solvers (NumPy, Torch) return this weighting: certified optimal to 1e-10, zero on l_i <= 0, "
       "equal on ties.",
       "1 <= p <= inf, gamma > 0, 0 < tau <= inf, any real losses (ties, zeros and negatives: where maximizers are "
       "not unique)",
       r"w^\star = \operatorname{argmin}\{\|w\|_2 : w \in \operatorname{argmax}_{W} \langle w, l\rangle\}",
       "derived here",
       numeric=Search(_least_norm_holds, lambda: gen.instances(), budget=200))
def _least_norm():
    r, d1, d2 = sp.symbols("r d1 d2", real=True)
    split = (r / 3 + d1, r / 3 + d2, r / 3 - d1 - d2)  # any split of a remainder r over three tied losses
    excess = sum(x**2 for x in split) - r**2 / 3
    zero(excess - (d1**2 + d2**2 + (d1 + d2) ** 2), "the excess norm is not the stated sum of squares")
    require((d1**2 + d2**2 + (d1 + d2) ** 2).is_nonnegative, "the excess norm is not established >= 0")
    return ("an unequal split of the remainder over a tie exceeds the equal split's squared norm by a sum of "
            "squares (3 tied losses); the rest of the argument is structural (convexity, symmetry)")
