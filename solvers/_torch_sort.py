"""The sort path of ``solvers.torch``: ``k`` and $t^*$ of every pool from its sorted losses.

The same algorithm as ``solvers._numpy_sort`` (the dual's $h$ at every sorted loss from suffix
log-sum-exps, ties counted exactly), on whole descending rows with tensor operations only; the weights
then come from the kernels of ``solvers._torch_closed_form``. Never synchronises with the host.
"""

from __future__ import annotations

import math

import torch

from ._torch_closed_form import cap_count, holder_weights, log_ratio, p1_weights, power
from .problem import conjugate


def solve_sorted(lp: torch.Tensor, p: float, gamma: torch.Tensor, tau: torch.Tensor):
    """Weights and thresholds of every pool (rows of ``lp``), by sorting; ``1 <= p < inf``
    (``p = inf`` needs no sort: ``solvers.torch`` takes ``pinf_weights`` for it)."""
    if p == 1.0:
        return p1_weights(lp, gamma, tau, _kth_largest_by_sort)
    return _holder(lp, p, gamma, tau)


def _kth_largest_by_sort(lp: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Per row, the element of descending 0-based ``rank`` (clamped to n-1), by sorting."""
    y = torch.sort(lp, dim=1, descending=True).values
    return torch.gather(y, 1, torch.clamp(rank, max=lp.shape[1] - 1)[:, None])[:, 0]


def _holder(lp, p, gamma, tau):
    """1 < p < inf: count the capped losses k, then the threshold, then the weights."""
    n = lp.shape[1]
    q = conjugate(p)
    y = torch.sort(lp, dim=1, descending=True).values
    m = cap_count(p, gamma, tau)
    k, positives = capped_count(y, q, m)
    partial = k < positives
    ref = torch.gather(y, 1, torch.clamp(k, max=n - 1)[:, None])
    ref = torch.where(partial[:, None], ref, torch.ones_like(ref))  # largest uncapped loss
    beyond = torch.arange(n, device=lp.device)[None, :] >= k[:, None]
    ratio_q = torch.where(beyond & (y > 0), power(y / ref, q), torch.zeros_like(y))
    tail_sum = ratio_q.sum(dim=1, dtype=torch.float64)  # sum_{i >= k} (y_i / y_k)^q, >= 1 if partial
    return holder_weights(lp, p, gamma, tau, m, k.to(torch.float64), ref[:, 0], tail_sum, partial)


def capped_count(y: torch.Tensor, q: float, m: torch.Tensor):
    """Per row of descending non-negative losses ``y``: the number k of capped losses and of positive ones.

    h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q is the dual's h(t) at t = y_j; y_j is
    capped iff h_j < m (strict, so that k < m and the budget left for the uncapped losses is never
    rounded to 0). Ties are counted exactly via run ends; only strictly smaller losses go through
    log-sums, which for q ~ 1e15 cannot resolve a count of equal terms. The twin of
    ``solvers._numpy_sort.capped_count`` (which runs block by block on ascending rows).
    """
    n = y.shape[1]
    positive = y > 0
    top = y[:, :1]
    z = q * log_ratio(y, torch.where(top > 0, top, torch.ones_like(top)))
    tail = torch.logcumsumexp(z.flip(1), dim=1).flip(1)
    last = torch.ones_like(positive)
    last[:, :-1] = y[:, 1:] != y[:, :-1]
    ends = torch.where(last, torch.arange(1, n + 1, device=y.device), n)
    run_end = torch.cummin(ends.flip(1), dim=1).values.flip(1)  # index after each position's tie group
    padded = torch.cat([tail, torch.full_like(tail[:, :1], -math.inf)], dim=1)
    below = torch.gather(padded, 1, run_end)
    h = run_end.to(y.dtype) + torch.exp(torch.where(positive, below - z, torch.full_like(z, math.inf)))
    return (positive & (h < m.to(y.dtype)[:, None])).sum(dim=1), positive.sum(dim=1)
