r"""The closed form's formulas in Torch, shared by the sort path, the radix-selection paths and the
pool across processes of ``solvers.torch``.

Tensor operations only: every pool of a ``(pools, n)`` tensor at once, on the tensor's device,
with no host synchronisation and no Python branching on tensor values (``p`` is a Python float,
so branching on it is free). Per-pool scalars (``gamma``, ``tau``, the cap count ``m``, the
remaining budget) are float64 whatever the input: ``gamma - k tau`` cancels badly in float32 once
``k`` reaches the thousands. Losses ``lp`` are non-negative (masked, clamped); weights come back
in ``lp``'s dtype, thresholds in float64.

Each formula is the twin of the NumPy one in ``solvers.problem`` (``log_ratio``, ``cap_count``) or
``solvers._numpy_closed_form`` (the rest), and ``tests/test_kernel_pairs.py`` runs each pair on
the same inputs.

Kernels that only need per-pool statistics of the losses (counts, sums, maxima) take an
``across`` argument through which those statistics pass before they are used: the identity
(``ONE_PROCESS``) when one process holds the whole pool, all-reduces over a process group
in ``solvers._torch_distributed``, which solves one pool spread over many processes.
"""

from __future__ import annotations

import math

import torch

from ._policy import computes_in_float64
from .problem import conjugate


def work_dtype(dtype: torch.dtype, p: float) -> torch.dtype:
    """The dtype the closed form runs in for losses of ``dtype`` (``solvers._policy``)."""
    return torch.float64 if computes_in_float64(dtype == torch.float64, p) else torch.float32


class OneProcess:
    """Reductions of per-pool statistics when one process holds the whole pool: the identity."""

    @staticmethod
    def sum(x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def max(x: torch.Tensor) -> torch.Tensor:
        return x


ONE_PROCESS = OneProcess()


def power(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """``x ** exponent`` for an exponent computed from ``p`` (``q``, ``1/p``, ``q - 1``...).

    Under ``torch.compile`` the exponent goes in as a 0-d tensor. As a Python float, once Dynamo has
    made ``p`` symbolic (it does on the second compilation for another ``p``, and then reuses that graph
    for every later ``p``), inductor bakes the ``p`` of that compilation into the power while ``p``'s
    other uses follow the call (torch 2.13; the ``eager`` and ``aot_eager`` backends are right).
    Minimal reproducer::

        f = torch.compile(lambda x, p: x ** (1.0 / p) + p * x, fullgraph=True)
        x = torch.full((2,), 36.0, dtype=torch.float64)
        for p in (1.7, 1000.0, 3.0):  # at p = 3: 36 ** (1/1000) + 3 * 36 = 109.0036, not 111.3019
            print(f(x, p)[0].item(), (x ** (1.0 / p) + p * x)[0].item())
    """
    if torch.compiler.is_compiling():
        return x ** (torch.ones((), dtype=x.dtype, device=x.device) * exponent)
    return x ** exponent


def log_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(a / b)`` for positive tensors, exact to rounding even where ``a / b`` under/overflows."""
    ratio = a / b
    info = torch.finfo(ratio.dtype)
    normal = (ratio >= info.tiny) & (ratio <= info.max)
    return torch.where(normal, torch.log(torch.where(normal, ratio, torch.ones_like(ratio))), torch.log(a) - torch.log(b))


def cap_count(p: float, gamma: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """$m = (\\gamma/\\tau)^p$ in float64, via ``log1p`` where the ratio is near 1 (see
    ``solvers.problem.cap_count``); 0 for ``tau = inf``."""
    ratio = gamma / tau
    near = (ratio > 0.5) & (ratio < 2.0)
    safe_tau = torch.where(near, tau, torch.ones_like(tau))
    log_ratio_ = torch.where(near, torch.log1p((gamma - tau) / safe_tau), torch.log(ratio))
    return torch.where(torch.isinf(tau), torch.zeros_like(tau), torch.exp(p * log_ratio_))


def p1_cap_count(gamma: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """p = 1: $m = \\gamma / \\tau$ exactly (one division; 0 for ``tau = inf``)."""
    return torch.where(torch.isinf(tau), torch.zeros_like(tau), gamma / tau)


def p1_share(gamma: torch.Tensor, tau: torch.Tensor, above: torch.Tensor, tied: torch.Tensor) -> torch.Tensor:
    """p = 1: the weight of each of the ``tied`` losses at the cut, ``above`` losses being capped."""
    spent = torch.where(above > 0, tau * above, torch.zeros_like(tau))
    return torch.minimum(tau, (gamma - spent) / torch.clamp(tied, min=1))


def holder_budget(gamma: torch.Tensor, p: float, m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """$(\\gamma^p - k \\tau^p)^{1/p}$ as $\\gamma (1 - k/m)^{1/p}$; ``gamma`` where ``k = 0``."""
    frac = torch.where(k > 0, k / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(m))
    return gamma * torch.exp(torch.log1p(-torch.clamp(frac, max=1.0)) / p)


def holder_coef(gamma: torch.Tensor, p: float, m: torch.Tensor, k: torch.Tensor, tail_sum: torch.Tensor):
    """The uncapped weights' coefficient: the remaining budget over ``tail_sum ** (1/p)``."""
    return holder_budget(gamma, p, m, k) / power(tail_sum, 1.0 / p)


def holder_threshold(ref: torch.Tensor, tail_sum: torch.Tensor, m: torch.Tensor, k: torch.Tensor,
                     q: float) -> torch.Tensor:
    """$t^*$ solving $k + \\mathrm{tail\\_sum} / (t/\\mathrm{ref})^q = m$; ``inf`` without a cap."""
    return ref * torch.exp((torch.log(tail_sum) - torch.log(m - k)) / q)


def pool_values(weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """$\\langle w, l \\rangle$ of every pool in float64, the losses divided by their pool's largest first.

    A product ``w_i l_i`` in the work dtype underflows for tiny losses (float32 losses of 1e-36
    times weights of 1e-6 are subnormal; 1e-45 times 1/16 is 0). ``l / max(l)`` is in ``[0, 1]``
    and the weights are largest where the losses are, so the leading terms keep full precision and
    a term that underflows is below ``tiny`` times the sum. Pools without a positive loss have value 0.
    """
    top = losses.max(dim=1, keepdim=True).values
    top = torch.where(top > 0, top, torch.ones_like(top))
    scaled = (losses / top).mul_(weights)  # one temporary, as the plain product
    return top[:, 0].to(torch.float64) * scaled.sum(dim=1).to(torch.float64)  # (a float64 sum would copy on CPU)


def pinf_weights(x: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor):
    """p = inf: min(gamma, tau) on every positive entry of ``x`` (no clamped copy needed)."""
    cap = torch.minimum(gamma, tau).to(x.dtype)[:, None]
    weights = torch.where(x > 0, cap, 0.0)  # a scalar 0: no zeros buffer
    threshold = torch.where(gamma >= tau, torch.zeros_like(gamma), torch.full_like(gamma, math.inf))
    return weights, threshold


def p1_weights(lp: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor, kth_largest, across=ONE_PROCESS):
    """p = 1: tau above the floor(m)-th largest loss, the ties there share the remainder.

    ``kth_largest(lp, rank)`` finds the cut element: by sorting, or by radix selection. The
    counts pass through ``across`` (see the module docstring).
    """
    positives = across.sum((lp > 0).sum(dim=1))
    m = p1_cap_count(gamma, tau)
    cut = torch.floor(torch.minimum(m, positives.to(torch.float64))).to(torch.int64)
    partial = cut < positives
    t = torch.where(partial, kth_largest(lp, cut).to(torch.float64), torch.zeros_like(gamma))
    tt = t.to(lp.dtype)[:, None]
    above, tied = across.sum(torch.stack([(lp > tt).sum(dim=1), ((lp == tt) & (lp > 0)).sum(dim=1)]))
    share = p1_share(gamma, tau, above, tied)
    weights = torch.where(lp > tt, tau.to(lp.dtype)[:, None], torch.zeros_like(lp))
    weights = torch.where((lp == tt) & (lp > 0), share.to(lp.dtype)[:, None], weights)
    return weights, t


def holder_weights(lp, p, gamma, tau, m, k, ref, tail_sum, partial):
    """Weights and thresholds from the capped count ``k``, the largest uncapped loss ``ref`` and
    ``tail_sum`` = sum over the uncapped losses of (l / ref)^q, for every pool."""
    q = conjugate(p)
    dtype = lp.dtype
    ref = ref.to(dtype)[:, None]
    coef = holder_coef(gamma, p, m, k, tail_sum).to(dtype)[:, None]
    tau_w = tau.to(dtype)[:, None]
    # a power of the ratio (one rounding) rather than exp/log: weights stay accurate for q ~ 1000;
    # ratios that underflow go through logs, since (l/ref)^(q-1) may still matter for q near 1
    ratio = lp / ref
    tiny = ratio < torch.finfo(dtype).tiny
    powers = torch.where(tiny, torch.exp((q - 1.0) * log_ratio(lp, ref)), power(ratio, q - 1.0))
    weights = torch.minimum(coef * powers, tau_w)
    weights = torch.where(lp > ref, tau_w.expand_as(lp), weights)
    weights = torch.where(partial[:, None], weights, tau_w.expand_as(lp))
    weights = torch.where(lp > 0, weights, torch.zeros_like(lp))

    t = holder_threshold(ref[:, 0].to(torch.float64), tail_sum, m, k, q)
    threshold = torch.where(partial, t, torch.zeros_like(t))
    return weights, threshold
