r"""Sort-based closed form of loss max-pooling in Torch: the private core of ``solvers.torch``.

The same mathematics as ``solvers.numpy`` (the closed form of ``docs/spec.md``), written with
tensor operations only: every pool of a ``(pools, n)`` tensor is solved at once, on the
tensor's device, with no host synchronisation and no Python branching on tensor values
(``p`` is a Python float, so branching on it is free). Per-pool scalars (``gamma``, ``tau``,
the cap count ``m``, the remaining budget) are float64 whatever the input: ``gamma - k tau``
cancels badly in float32 once ``k`` reaches the thousands.

Inputs are non-negative losses ``lp`` (the masked, clamped losses), ``gamma`` and ``tau`` of
shape ``(pools,)`` in float64. Outputs: weights in ``lp``'s dtype and thresholds in float64.

Kernels that only need per-pool statistics of the losses (counts, sums, maxima) take an
``across`` argument through which those statistics pass before they are used: the identity
(``ONE_PROCESS``) when one process holds the whole pool, all-reduces over a process group
in ``solvers._torch_distributed``, which solves one pool spread over many processes.
"""

from __future__ import annotations

import math

import torch

from lmp_theory.problem import conjugate, p_is_inf

# Below this p (q - 1 > 8) a float32 ratio's rounding error is amplified more than 8-fold by the
# power (l / t)^(q-1); float32 inputs are then computed in float64 to keep the 1e-5 accuracy.
FLOAT64_BELOW_P = 1.125


def work_dtype(dtype: torch.dtype, p: float) -> torch.dtype:
    """The dtype the closed form runs in for losses of ``dtype``: float64, or float32 (also for half types)."""
    if dtype == torch.float64 or 1.0 < p < FLOAT64_BELOW_P:  # p = 1 takes no powers of the losses
        return torch.float64
    return torch.float32


class OneProcess:
    """Reductions of per-pool statistics when one process holds the whole pool: the identity."""

    @staticmethod
    def sum(x: torch.Tensor) -> torch.Tensor:
        return x

    @staticmethod
    def max(x: torch.Tensor) -> torch.Tensor:
        return x


ONE_PROCESS = OneProcess()


def log_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(a / b)`` for positive tensors, exact to rounding even where ``a / b`` under/overflows."""
    ratio = a / b
    info = torch.finfo(ratio.dtype)
    normal = (ratio >= info.tiny) & (ratio <= info.max)
    return torch.where(normal, torch.log(torch.where(normal, ratio, torch.ones_like(ratio))), torch.log(a) - torch.log(b))


def cap_count(p: float, gamma: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """$m = (\\gamma/\\tau)^p$ in float64, via ``log1p`` where the ratio is near 1 (see
    ``lmp_theory.problem.cap_count``); 0 for ``tau = inf``."""
    ratio = gamma / tau
    near = (ratio > 0.5) & (ratio < 2.0)
    safe_tau = torch.where(near, tau, torch.ones_like(tau))
    log_ratio_ = torch.where(near, torch.log1p((gamma - tau) / safe_tau), torch.log(ratio))
    return torch.where(torch.isinf(tau), torch.zeros_like(tau), torch.exp(p * log_ratio_))


def solve_sorted(lp: torch.Tensor, p: float, gamma: torch.Tensor, tau: torch.Tensor):
    """Weights and thresholds of every pool (rows of ``lp``), by sorting (p = inf needs no sort)."""
    if p == 1.0:
        return p1_weights(lp, gamma, tau, _kth_largest_by_sort)
    if p_is_inf(p):
        return pinf_weights(lp, gamma, tau)
    return _holder(lp, p, gamma, tau)


def sort_on_cpu(pooled: torch.Tensor, p: float, gamma: torch.Tensor, tau: torch.Tensor):
    """A CPU tensor (finite p): the NumPy sort path on zero-copy views. It holds a sorted copy in
    the losses' dtype and temporaries of bounded size, where ``torch.sort`` alone allocates int64
    indices (twice a float32 pool). Weights, values and thresholds, as ``solvers.torch._solve``."""
    from .numpy import sort_pools

    weights, value, threshold = sort_pools(pooled.numpy(), None, p, gamma.numpy(), tau.numpy())
    return torch.from_numpy(weights), torch.from_numpy(value), torch.from_numpy(threshold)


def pinf_weights(x: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor):
    """p = inf: min(gamma, tau) on every positive entry of ``x`` (no clamped copy needed)."""
    cap = torch.minimum(gamma, tau).to(x.dtype)[:, None]
    weights = torch.where(x > 0, cap, 0.0)  # a scalar 0: no zeros buffer
    threshold = torch.where(gamma >= tau, torch.zeros_like(gamma), torch.full_like(gamma, math.inf))
    return weights, threshold


def _kth_largest_by_sort(lp: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Per row, the element of descending 0-based ``rank`` (clamped to n-1), by sorting."""
    y = torch.sort(lp, dim=1, descending=True).values
    return torch.gather(y, 1, torch.clamp(rank, max=lp.shape[1] - 1)[:, None])[:, 0]


def p1_weights(lp: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor, kth_largest, across=ONE_PROCESS):
    """p = 1: tau above the floor(m)-th largest loss, the ties there share the remainder.

    ``kth_largest(lp, rank)`` finds the cut element: by sorting, or by radix selection. The
    counts pass through ``across`` (see the module docstring).
    """
    positives = across.sum((lp > 0).sum(dim=1))
    m = torch.where(torch.isinf(tau), torch.zeros_like(tau), gamma / tau)
    cut = torch.floor(torch.minimum(m, positives.to(torch.float64))).to(torch.int64)
    partial = cut < positives
    t = torch.where(partial, kth_largest(lp, cut).to(torch.float64), torch.zeros_like(gamma))
    tt = t.to(lp.dtype)[:, None]
    above, tied = across.sum(torch.stack([(lp > tt).sum(dim=1), ((lp == tt) & (lp > 0)).sum(dim=1)]))
    spent = torch.where(above > 0, tau * above, torch.zeros_like(tau))
    share = torch.minimum(tau, (gamma - spent) / torch.clamp(tied, min=1))
    weights = torch.where(lp > tt, tau.to(lp.dtype)[:, None], torch.zeros_like(lp))
    weights = torch.where((lp == tt) & (lp > 0), share.to(lp.dtype)[:, None], weights)
    return weights, t


def _holder(lp, p, gamma, tau):
    """1 < p < inf: count the capped losses k, then the threshold, then the weights."""
    pools, n = lp.shape
    q = conjugate(p)
    dtype = lp.dtype
    y = torch.sort(lp, dim=1, descending=True).values
    positive = y > 0
    top = y[:, :1]
    positives = positive.sum(dim=1)
    m = cap_count(p, gamma, tau)

    # h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q is the dual's h(t) at t = y_j; y_j is
    # capped iff h_j < m (strict, so that k < m and the budget left for the uncapped losses is
    # never rounded to 0). Ties are counted exactly via run ends; only strictly smaller losses go
    # through log-sums, which for q ~ 1e15 cannot resolve a count of equal terms.
    z = q * log_ratio(y, torch.where(top > 0, top, torch.ones_like(top)))
    tail = torch.logcumsumexp(z.flip(1), dim=1).flip(1)
    index = torch.arange(n, device=lp.device, dtype=dtype)
    last = torch.ones_like(positive)
    last[:, :-1] = y[:, 1:] != y[:, :-1]
    ends = torch.where(last, torch.arange(1, n + 1, device=lp.device), n)
    run_end = torch.cummin(ends.flip(1), dim=1).values.flip(1)  # index after each position's tie group
    padded = torch.cat([tail, torch.full_like(tail[:, :1], -math.inf)], dim=1)
    below = torch.gather(padded, 1, run_end)
    h = run_end.to(dtype) + torch.exp(torch.where(positive, below - z, torch.full_like(z, math.inf)))
    k = (positive & (h < m.to(dtype)[:, None])).sum(dim=1)
    partial = k < positives

    ref = torch.gather(y, 1, torch.clamp(k, max=n - 1)[:, None])
    ref = torch.where(partial[:, None], ref, torch.ones_like(ref))  # largest uncapped loss
    beyond = index[None, :] >= k[:, None].to(dtype)
    ratio_q = torch.where(beyond & positive, (y / ref) ** q, torch.zeros_like(y))
    tail_sum = ratio_q.sum(dim=1, dtype=torch.float64)  # sum_{i >= k} (y_i / y_k)^q, >= 1 if partial
    return holder_weights(lp, p, gamma, tau, m, k.to(torch.float64), ref[:, 0], tail_sum, partial)


def holder_weights(lp, p, gamma, tau, m, k, ref, tail_sum, partial):
    """Weights and thresholds from the capped count ``k``, the largest uncapped loss ``ref`` and
    ``tail_sum`` = sum over the uncapped losses of (l / ref)^q, for every pool (shared by the
    sort path and the radix-selection path).
    """
    q = conjugate(p)
    dtype = lp.dtype
    ref = ref.to(dtype)[:, None]
    frac = torch.where(k > 0, k / torch.where(m > 0, m, torch.ones_like(m)), torch.zeros_like(m))
    budget = gamma * torch.exp(torch.log1p(-torch.clamp(frac, max=1.0)) / p)  # (gamma^p - k tau^p)^(1/p)
    coef = (budget / tail_sum ** (1.0 / p)).to(dtype)[:, None]
    tau_w = tau.to(dtype)[:, None]
    # a power of the ratio (one rounding) rather than exp/log: weights stay accurate for q ~ 1000;
    # ratios that underflow go through logs, since (l/ref)^(q-1) may still matter for q near 1
    ratio = lp / ref
    tiny = ratio < torch.finfo(dtype).tiny
    power = torch.where(tiny, torch.exp((q - 1.0) * log_ratio(lp, ref)), ratio ** (q - 1.0))
    weights = torch.minimum(coef * power, tau_w)
    weights = torch.where(lp > ref, tau_w.expand_as(lp), weights)
    weights = torch.where(partial[:, None], weights, tau_w.expand_as(lp))
    weights = torch.where(lp > 0, weights, torch.zeros_like(lp))

    # t* solves k + R_k / t^q = m: t* = y_k (tail_sum / (m - k))^(1/q); inf with no cap
    t = ref[:, 0].to(torch.float64) * torch.exp((torch.log(tail_sum) - torch.log(m - k)) / q)
    threshold = torch.where(partial, t, torch.zeros_like(t))
    return weights, threshold
