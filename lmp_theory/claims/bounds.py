"""Claims bounding L: by the mean and the max under the paper's parameters, by Hölder and the cap always."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp
import torch

from solvers.numpy import lmp_solve, lmp_value
from solvers.torch import lmp_value as torch_value

from ..testing import strategies as gen
from . import _exact as ex
from . import formulas as f
from .closed_form import GAMMA_K, P, Q, R, S, k, n, tau
from .duality import t
from .registry import Search, claim, require, zero


def _parameter_gradients_hold(inst, value: float) -> bool:
    """dL/dgamma = ||min(l+, t*)||_q and dL/dtau = sum (l - t*)+ (1 < p < inf, some loss uncapped)."""
    losses = ex.mpf_list(inst.losses)
    p, q, _, _, m = ex.parameters(inst)
    if not (1 < p < mp.inf) or math.isinf(inst.tau) or len(ex.positives(losses)) <= m * (1 + 1e-9):
        return True
    s = ex.split(losses, inst)
    gamma_t = torch.tensor(inst.gamma, dtype=torch.float64, requires_grad=True)
    tau_t = torch.tensor(inst.tau, dtype=torch.float64, requires_grad=True)
    d_gamma, d_tau = torch.autograd.grad(torch_value(torch.tensor(inst.losses), inst.p, gamma_t, tau_t),
                                         (gamma_t, tau_t))
    norm = mp.fsum(min(v, s.threshold) ** q for v in s.y) ** (1 / q)
    excess = mp.fsum(v - s.threshold for v in s.y if v > s.threshold)
    scale = abs(value) / min(inst.gamma, inst.tau)
    return (ex.close(float(d_gamma), norm, 1e-9, max(norm, scale)) and norm > 0
            and ex.close(float(d_tau), excess, 1e-9, max(excess, scale)))


def _bounds_hold(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    _, q, gamma, tau_, _ = ex.parameters(inst)
    value = lmp_value(inst.losses, inst.p, inst.gamma, inst.tau)
    scale = max(abs(value), inst.gamma * float(np.max(np.abs(inst.losses))), 1e-300)
    if inst.ratio is not None and value < float(mp.fsum(losses) / inst.n) - 1e-13 * scale:
        return False
    y = ex.positives(losses)
    holder = gamma * (mp.fsum(v**q for v in y) ** (1 / q) if q < mp.inf else (y[0] if y else 0))
    if value > min(holder, tau_ * mp.fsum(y)) * (1 + 1e-12) + mp.mpf(10) ** -320:
        return False
    for g2, t2 in [(inst.gamma * 1.3, inst.tau), (inst.gamma, inst.tau * 1.3)]:
        if lmp_value(inst.losses, inst.p, g2, t2) < value - 1e-13 * scale:
            return False
    return _parameter_gradients_hold(inst, value)


@claim("bounds", "Bounds, monotonicity in gamma and tau, and their derivatives",
       "Under the paper's parameters mean(l) <= L (the uniform weighting is admissible: n*tau = ratio^(-1/p) >= 1). "
       "For any gamma, tau: L <= min(gamma*||l+||_q, tau*||l+||_1) (g at t = max l and t = 0) and L is "
       "non-decreasing in gamma and tau; for 1 < p < inf, tau < inf and n+ > m, dL/dgamma = ||min(l+, t*)||_q > 0 "
       "and dL/dtau = sum (l_i - t*)+ >= 0 (autograd's gamma/tau gradients agree).",
       "1 <= p <= inf, gamma > 0, 0 < tau <= inf, any real losses; mean(l) <= L only under the paper's parameters",
       r"\bar l \le L \le \min(\gamma\|l^+\|_q, \tau\|l^+\|_1),\ \partial_\gamma L = \|\min(l^+,t^*)\|_q > 0,\ "
       r"\partial_\tau L = \textstyle\sum_i (l_i-t^*)^+ \ge 0",
       "derived here; Hölder's inequality",
       numeric=Search(_bounds_hold, lambda: gen.instances(), budget=200))
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
    zero(f.dvalue_dgamma(GAMMA_K, tau, k, P, R) - (R + k * t_star**Q) ** (1 / Q), "dL/dgamma != ||min(l+, t*)||_q")
    return "n tau >= 1, g at the ends, dL/dgamma = ||min(l+,t*)||_q > 0, dL/dtau = S_k - k t* (symbolic k < m)"


def _max_bound_holds(inst) -> bool:
    res = lmp_solve(inst.losses, inst.p, inst.gamma, inst.tau)
    top = float(np.max(np.maximum(inst.losses, 0)))
    return float(np.sum(res.weights)) <= 1 + 1e-12 and res.value <= top * (1 + 1e-12)


@claim("max-bound", "Under the paper's parameters L is at most the largest loss",
       "Under the paper's parameters every admissible w has ||w||_1 <= n^(1-1/p) ||w||_p <= n^(1-1/p) gamma = 1 "
       "(Hölder against the all-ones vector), so L <= max(l+): LMP never weights the pool above max-pooling.",
       "the paper's parameters: n >= 1, 1 <= p <= inf, 0 <= ratio <= 1; any real losses",
       r"\|w\|_1 \le n^{1-1/p}\|w\|_p \le n^{1-1/p}\gamma = 1 \Rightarrow L \le \max_i l_i^+",
       "derived here; Hölder's inequality",
       numeric=Search(_max_bound_holds, lambda: gen.instances(parameters="paper")))
def _max_bound():
    zero(n ** (1 - 1 / P) * f.paper_gamma(n, P) - 1, "n^(1-1/p) gamma != 1")
    return "n^(1-1/p) gamma = 1 for symbolic n, p (Hölder's ||w||_1 <= n^(1/q) ||w||_p is textbook)"
