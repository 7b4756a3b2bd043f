"""The second-order claim: the Jacobian of the canonical weights (the Hessian of L), 1 < p < inf.

With ``k`` losses capped and ``U`` the other positive ones, ``w_i = c l_i^(q-1)`` on ``U`` with
``c = ((gamma^p - k tau^p) / R)^(1/p)``, ``R = sum_U l^q``; differentiating (``q/p = q - 1``) gives

    dw_i/dl_j = c (q - 1) (delta_ij l_i^(q-2) - l_i^(q-1) l_j^(q-1) / R)    (i, j in U),

and 0 in every other row and column (capped and non-positive losses keep their weight locally). This is
what Torch's double backward computes; the search compares it with autograd's Hessian of ``lmp_value``
and with central differences of the exact weights at 80 digits.
"""

from __future__ import annotations

import mpmath as mp
import sympy as sp
import torch

from solvers.torch import lmp_value as torch_value

from ..testing import strategies as gen
from . import _exact as ex
from . import formulas as f
from .closed_form import HOLDER_P, P, Q, k, tau
from .registry import Search, claim, zero

STEP = mp.mpf(10) ** -25   # central differences of the exact weights, relative to the loss moved
FAMILIES = ("integers", "reals", "outlier")
MODERATE = 1e-30  # |l| in [1e-30, 1e30]: beyond, float64 cannot carry the double backward (see the hypotheses)
AWAY = 1e-6                # a loss this close (relative) to t* sits on a kink of w: no Jacobian there


def stated_jacobian(losses: list, inst) -> tuple[list[list], mp.mpf] | None:
    """The Jacobian as the claim states it and its scale (the largest ``c (q-1) l^(q-2)``, before the
    rank-one term cancels part of it), or None at a kink of ``w`` (a loss at ``t*``)."""
    _, q, _, _, _ = ex.parameters(inst)
    s = ex.split(losses, inst)
    if any(abs(v - s.threshold) <= AWAY * s.threshold for v in losses if v > 0 and s.threshold < mp.inf):
        return None
    uncapped = [s.k < len(s.y) and 0 < v < s.threshold for v in losses]  # every positive loss capped: none
    jacobian = [[s.c * (q - 1) * ((a ** (q - 2) if i == j else 0) - a ** (q - 1) * b ** (q - 1) / s.R)
                 if uncapped[i] and uncapped[j] else mp.mpf(0)
                 for j, b in enumerate(losses)] for i, a in enumerate(losses)]
    scale = max((s.c * (q - 1) * v ** (q - 2) for v, free in zip(losses, uncapped) if free), default=mp.mpf(1))
    return jacobian, scale


def _moderate(losses) -> bool:
    sizes = abs(losses[losses != 0])
    return bool(sizes.min() >= MODERATE and sizes.max() <= 1 / MODERATE)


def _jacobian_holds(inst) -> bool:
    losses = ex.mpf_list(inst.losses)
    found = stated_jacobian(losses, inst)
    if found is None:
        return True
    stated, top = found
    x = torch.tensor(inst.losses, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(lambda v: torch_value(v, inst.p, inst.gamma, inst.tau), x)
    with mp.workdps(ex.difference_digits(losses)):
        for j, v in enumerate(losses):
            h = abs(v) * STEP
            up, down = list(losses), list(losses)
            up[j], down[j] = v + h, v - h
            w_up = ex.weights(up, inst, ex.split(up, inst))
            w_down = ex.weights(down, inst, ex.split(down, inst))
            for i in range(len(losses)):
                difference = (w_up[i] - w_down[i]) / (2 * h)
                if abs(difference - stated[i][j]) > 1e-12 * top:
                    return False
                if abs(mp.mpf(float(hessian[i, j])) - stated[i][j]) > 1e-8 * top:
                    return False
    return True


@claim("jacobian", "The Jacobian of the weights (the Hessian of L), 1 < p < inf",
       "Away from the kinks of w (a loss at t* or at 0, where the capped set changes), with k losses capped and "
       "U the other positive ones, dw_i/dl_j = c (q-1) (delta_ij l_i^(q-2) - l_i^(q-1) l_j^(q-1) / R_k) for i, j "
       "in U and 0 in every other row and column; it is symmetric (the Hessian of L) and J l = 0 (w is "
       "0-homogeneous). Torch's double backward returns it (to 1e-8 of the largest c (q-1) l_i^(q-2)) and central "
       "differences of the exact weights at 80 digits agree to 1e-12.",
       "1 < p < inf, gamma > 0, 0 < tau <= inf, distinct non-zero losses, none within 1e-6 (relative) of t*, "
       "of magnitudes between 1e-30 and 1e30 (beyond, Torch's double backward can overflow to inf or NaN where the "
       "entries themselves are floats)",
       r"\frac{\partial w_i}{\partial l_j} = c\,(q-1)\Big(\delta_{ij}\, l_i^{q-2}"
       r" - \frac{l_i^{q-1} l_j^{q-1}}{R_k}\Big)\quad (i, j \in U)",
       "derived here",
       numeric=Search(_jacobian_holds, lambda: gen.instances(p=HOLDER_P, losses=gen.loss_vectors(
           distinct=True, families=FAMILIES).filter(_moderate)), budget=100))
def _jacobian():
    gamma = sp.Symbol("gamma", positive=True)
    free = sp.symbols("b1 b2 b3", positive=True)
    R = sum(b**Q for b in free)
    c = f.closed_form_coefficient(gamma, tau, k, P, R)
    for i, a in enumerate(free):
        w_i = c * a ** (Q - 1)
        for j, b in enumerate(free):
            stated = c * (Q - 1) * ((a ** (Q - 2) if i == j else 0) - a ** (Q - 1) * b ** (Q - 1) / R)
            zero(sp.diff(w_i, b) - stated, f"dw_{i + 1}/dl_{j + 1} != the stated Jacobian")
    zero(sum(sp.diff(c * free[0] ** (Q - 1), b) * b for b in free), "J l != 0")
    return "the stated Jacobian is sympy's derivative of c l_i^(q-1) (3 uncapped symbolic losses, k capped), J l = 0"
