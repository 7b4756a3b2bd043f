"""Sort-free Torch paths: the private core of ``method="select"`` in :mod:`solvers.torch`.

* ``p = inf``: every positive loss gets ``min(gamma, tau)``; one elementwise pass.
* ``p = 1``: the threshold is the ``floor(m)``-th largest loss of each pool (0-based), found by
  **radix selection** on the float's bit pattern (non-negative IEEE floats order like their
  integer bits): a fixed number of passes, each a per-pool histogram of the next 11 bits
  (``bincount``) and a descending cumulative count. Exact, no sort, no host synchronisation, and
  each pool may have its own rank (per-pool ``gamma``/``tau``, masks).
* CPU tensors (``p = 1`` and ``1 < p < inf``): the NumPy selection core
  (:mod:`solvers._numpy_select`) on zero-copy views of the tensor, because scatter-based
  histograms are slow on CPU (the radix path measured 6x slower there). A CPU tensor has no device
  queue to stall, so this reads data on the host by design; the answer is the same exact one.
  On CUDA, ``1 < p < inf`` uses the sort path (see ``method`` in :func:`solvers.torch.lmp_weights`).
"""

from __future__ import annotations

import torch

DIGIT_BITS = 11


def _int_view(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The bit pattern of non-negative floats as integers that order like the floats."""
    if x.dtype == torch.float64:
        return x.view(torch.int64), 63
    return x.view(torch.int32).to(torch.int64), 31


def kth_largest(lp: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Per row of non-negative ``lp``, the element of descending 0-based ``rank`` (clamped to n-1).

    Radix selection, most significant digit first; the answer is bit-exact.
    """
    pools, n = lp.shape
    bits, total_bits = _int_view(lp.contiguous())
    radix = 1 << DIGIT_BITS
    offsets = (torch.arange(pools, device=lp.device) * radix)[:, None]
    prefix = torch.zeros(pools, dtype=torch.int64, device=lp.device)
    remaining = torch.clamp(rank, max=n - 1).to(torch.int64)
    shift = max(total_bits - DIGIT_BITS, 0)
    high_mask = torch.zeros_like(prefix)  # bits already fixed by earlier passes
    while True:
        digit = (bits >> shift) & (radix - 1)
        match = (bits & high_mask[:, None]) == prefix[:, None]
        index = torch.where(match, offsets + digit, torch.full_like(digit, pools * radix))  # misses: a dump bin
        flat = index.reshape(-1)  # a histogram with a static size (bincount's size depends on the data)
        counts = torch.zeros(pools * radix + 1, dtype=torch.int64, device=lp.device)
        counts = counts.scatter_add_(0, flat, torch.ones_like(flat))[:-1].reshape(pools, radix)
        above = counts.flip(1).cumsum(1).flip(1)  # above[:, j] = #{matching elements with digit >= j}
        strictly_above = above - counts
        # the digit d with strictly_above[d] <= remaining < above[d] (above is non-increasing in d)
        chosen = ((above > remaining[:, None]).sum(1) - 1).clamp(min=0)
        remaining = remaining - torch.gather(strictly_above, 1, chosen[:, None])[:, 0]
        prefix = prefix | (chosen << shift)
        high_mask = high_mask | ((radix - 1) << shift)
        if shift == 0:
            break
        shift = max(shift - DIGIT_BITS, 0)
    if lp.dtype == torch.float64:
        return prefix.view(torch.float64)
    return prefix.to(torch.int32).view(torch.float32)


def select_p1(lp: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor):
    """p = 1 without sorting: tau above the floor(m)-th largest loss, the ties there share the rest."""
    pools, n = lp.shape
    positives = (lp > 0).sum(dim=1)
    m = torch.where(torch.isinf(tau), torch.zeros_like(tau), gamma / tau)
    cut = torch.floor(torch.clamp(m, max=float(n))).to(torch.int64)
    partial = cut < positives
    t = torch.where(partial, kth_largest(lp, cut).to(torch.float64), torch.zeros_like(gamma))
    tt = t.to(lp.dtype)[:, None]
    above = (lp > tt).sum(dim=1)
    tied = ((lp == tt) & (lp > 0)).sum(dim=1)
    spent = torch.where(above > 0, tau * above, torch.zeros_like(tau))
    share = torch.minimum(tau, (gamma - spent) / torch.clamp(tied, min=1))
    weights = torch.where(lp > tt, tau.to(lp.dtype)[:, None], torch.zeros_like(lp))
    weights = torch.where((lp == tt) & (lp > 0), share.to(lp.dtype)[:, None], weights)
    return weights, t


def select_on_cpu(pooled: torch.Tensor, p: float, gamma: torch.Tensor, tau: torch.Tensor):
    """A CPU tensor: the NumPy selection core on zero-copy views (CPU histograms by scatter are slow)."""
    from .numpy import select_pools

    weights, value, threshold = select_pools(pooled.numpy(), None, p, gamma.numpy(), tau.numpy())
    return torch.from_numpy(weights), torch.from_numpy(value), torch.from_numpy(threshold)

