"""Sort-free Torch paths: the private core of ``method="select"`` in ``solvers.torch``.

* ``p = 1``: the threshold is the ``floor(m)``-th largest loss of each pool (0-based), found by
  **radix selection** on the float's bit pattern (non-negative IEEE floats order like their
  integer bits): a fixed number of passes, each a per-pool histogram of the next 11 bits
  (``bincount``) and a descending cumulative count. Exact, no sort, no host synchronisation, and
  each pool may have its own rank (per-pool ``gamma``/``tau``, masks).
* ``1 < p < inf`` on the device: radix selection of the bin holding $t^*$, with per-bin
  counts and power sums (``select_holder_radix``), then the exact closed form.

CPU tensors take the NumPy selection core instead (``solvers.torch`` hands them over, outside
``torch.compile``): scatter-based histograms are slow on CPU.
"""

from __future__ import annotations

import math

import torch

from ._torch_closed_form import ONE_PROCESS, cap_count, holder_weights, p1_weights, power
from .problem import conjugate

DIGIT_BITS = 11


def _int_view(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The bit pattern of non-negative floats as integers that order like the floats."""
    if x.dtype == torch.float64:
        return x.view(torch.int64), 63
    return x.view(torch.int32).to(torch.int64), 31


def kth_largest(lp: torch.Tensor, rank: torch.Tensor, across=ONE_PROCESS) -> torch.Tensor:
    """Per row of non-negative ``lp``, the element of descending 0-based ``rank``.

    Radix selection, most significant digit first; the answer is bit-exact. The per-bin counts
    pass through ``across``, so the rows may be slices of pools spread over processes. A rank at
    or beyond the row's (pool's) length gives a meaningless element, never an error.
    """
    pools, n = lp.shape
    bits, total_bits = _int_view(lp.contiguous())
    prefix = torch.zeros(pools, dtype=torch.int64, device=lp.device)
    remaining = rank.to(torch.int64)
    high_mask = torch.zeros_like(prefix)  # bits already fixed by earlier passes
    for shift, width in _passes(total_bits):
        nbins = 1 << width
        offsets = (torch.arange(pools, device=lp.device) * nbins)[:, None]
        digit = (bits >> shift) & (nbins - 1)
        match = (bits & high_mask[:, None]) == prefix[:, None]
        index = torch.where(match, offsets + digit, torch.full_like(digit, pools * nbins))  # misses: a dump bin
        flat = index.reshape(-1)  # a histogram with a static size (bincount's size depends on the data)
        counts = torch.zeros(pools * nbins + 1, dtype=torch.int64, device=lp.device)
        counts = across.sum(counts.scatter_add_(0, flat, torch.ones_like(flat))[:-1].reshape(pools, nbins))
        above = counts.flip(1).cumsum(1).flip(1)  # above[:, j] = #{matching elements with digit >= j}
        strictly_above = above - counts
        # the digit d with strictly_above[d] <= remaining < above[d] (above is non-increasing in d)
        chosen = ((above > remaining[:, None]).sum(1) - 1).clamp(min=0)
        remaining = remaining - torch.gather(strictly_above, 1, chosen[:, None])[:, 0]
        prefix = prefix | (chosen << shift)
        high_mask = high_mask | ((nbins - 1) << shift)
        if _compacts(lp):
            bits = bits[match & (digit == chosen[:, None])][None]
    if lp.dtype == torch.float64:
        return prefix.view(torch.float64)
    return prefix.to(torch.int32).view(torch.float32)


def select_p1(lp: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor, across=ONE_PROCESS):
    """p = 1 without sorting: the cut element by radix selection (per-pool ranks allowed)."""
    return p1_weights(lp, gamma, tau, lambda x, rank: kth_largest(x, rank, across), across)


def select_holder_radix(lp: torch.Tensor, p: float, m: torch.Tensor, across=ONE_PROCESS):
    """1 < p < inf without sorting: the bin holding t* by radix passes over the float bits (device path).

    Each pass splits every pool's current bit range into ``2^11`` bins and evaluates the dual's
    $h(e) = \\#\\{l \\ge e\\} + \\sum_{l < e} (l/e)^q$ at every bin edge from per-bin counts and
    per-bin sums of $(l / e_{upper})^q$ (each term in (0, 1]: nothing overflows), combined
    in log space (``logcumsumexp`` over the bins, plus one running log-sum for the losses below
    the range). The bin whose edges straddle ``m`` holds $t^*$; after the last pass it is a
    single float ``u``, every loss above ``u`` is capped and the rest follow the power law.
    Returns the number of capped losses and ``u``. The per-bin statistics pass through ``across``.
    """
    pools, n = lp.shape
    q = conjugate(p)
    bits, total_bits = _int_view(lp.contiguous())
    device = lp.device
    positive = lp > 0
    prefix = torch.zeros(pools, dtype=torch.int64, device=device)
    high_mask = torch.zeros_like(prefix)
    above = torch.zeros(pools, dtype=torch.float64, device=device)  # losses above the range: capped
    log_below = torch.full((pools,), -math.inf, dtype=torch.float64, device=device)  # log sum l^q below it
    for shift, width in _passes(total_bits):
        nbins = 1 << width
        offsets = (torch.arange(pools, device=device) * nbins)[:, None]
        bin_index = torch.arange(nbins, device=device, dtype=torch.int64)
        match = positive & ((bits & high_mask[:, None]) == prefix[:, None])
        digit = (bits >> shift) & (nbins - 1)
        index = torch.where(match, offsets + digit, torch.full_like(digit, pools * nbins)).reshape(-1)
        upper = _as_float(_next_edge(bits, shift, lp.dtype), lp.dtype)  # each loss's bin upper edge
        # in float64: h sums up to n of these terms, so their rounding must stay far below 1
        ratio = lp.to(torch.float64) / upper.to(torch.float64)
        term = torch.where(match, power(ratio, q), torch.zeros((), dtype=torch.float64, device=device)).reshape(-1)
        size = pools * nbins + 1
        counts = torch.zeros(size, dtype=torch.float64, device=device).scatter_add_(0, index, match.reshape(-1).double())
        sums = torch.zeros(size, dtype=torch.float64, device=device).scatter_add_(0, index, term)
        counts, sums = across.sum(torch.stack([counts[:-1], sums[:-1]]).reshape(2, pools, nbins))
        # bin edges as floats, in log space: lower edge of bin b is prefix | b << shift
        edge_bits = prefix[:, None] | (bin_index[None, :] << shift)
        log_lower = torch.log(_as_float(edge_bits, lp.dtype).to(torch.float64))
        log_upper = torch.log(_as_float(_next_edge(edge_bits, shift, lp.dtype), lp.dtype).to(torch.float64))
        # log sum_{l in bin} l^q; empty bins (and the top bin, whose edge is inf) contribute nothing
        ninf = torch.full_like(sums, -math.inf)
        log_bins = torch.where(sums > 0, torch.log(sums) + q * log_upper, ninf)
        cum = torch.logcumsumexp(log_bins, dim=1)
        before = torch.cat([torch.full((pools, 1), -math.inf, dtype=torch.float64, device=device), cum[:, :-1]], 1)
        log_part = torch.logaddexp(before, log_below[:, None]) - q * log_lower
        at_or_above = counts.flip(1).cumsum(1).flip(1)  # losses in bins >= b
        h = above[:, None] + at_or_above + torch.exp(log_part)
        h = torch.where(log_lower == -math.inf, torch.full_like(h, math.inf), h)  # the edge at 0: h = inf
        chosen = ((h >= m[:, None]).sum(1) - 1).clamp(0, nbins - 1)  # h decreases with b
        pick = chosen[:, None]
        above = above + (at_or_above.gather(1, pick)[:, 0] - counts.gather(1, pick)[:, 0])
        log_below = torch.logaddexp(log_below, before.gather(1, pick)[:, 0])
        prefix = prefix | (chosen << shift)
        high_mask = high_mask | ((nbins - 1) << shift)
        if _compacts(lp):
            keep = match & (digit == pick)
            lp, bits, positive = lp[keep][None], bits[keep][None], positive[keep][None]
    # the last bin is the single float u = prefix (it may lie above every loss: nothing capped);
    # losses equal to u are uncapped (t* >= u)
    return above, _as_float(prefix, lp.dtype)


def select_holder_device(lp: torch.Tensor, p: float, gamma: torch.Tensor, tau: torch.Tensor, across=ONE_PROCESS):
    """1 < p < inf by radix selection, then the exact closed form on the capped set it identifies.

    Every statistic of the losses passes through ``across`` (counts, the largest uncapped loss, a
    power sum), so the rows may be slices of pools spread over processes.
    """
    q = conjugate(p)
    m = cap_count(p, gamma, tau)
    k, u = select_holder_radix(lp, p, m, across)
    positive = lp > 0
    partial = k < across.sum(positive.sum(1).to(torch.float64))
    uncapped = positive & ~(lp > u[:, None])
    ref = across.max(torch.where(uncapped, lp, torch.zeros_like(lp)).amax(dim=1).to(torch.float64))  # largest uncapped
    ref = torch.where(partial & (ref > 0), ref, torch.ones_like(ref))
    # sum over the uncapped losses of (l / ref)^q (>= 1) with direct powers: the log-space sums of
    # the radix passes choose the bin, but multiplied by q ~ 1000 they are not accurate to 1e-15
    ratio = (lp / ref[:, None].to(lp.dtype)).to(torch.float64)
    tail_sum = across.sum(torch.where(uncapped, power(ratio, q), torch.zeros_like(ratio)).sum(dim=1))
    return holder_weights(lp, p, gamma, tau, m, k, ref, tail_sum, partial)


def _compacts(lp: torch.Tensor) -> bool:
    """One pool on CPU: after each radix pass, keep only the chosen bin's elements for the next
    passes (a shape that depends on the data, which a CPU tensor can afford and a GPU cannot)."""
    return lp.shape[0] == 1 and lp.device.type == "cpu"


def _passes(total_bits: int) -> list[tuple[int, int]]:
    """(shift, width) of each radix pass, most significant first; the last one takes what is left."""
    out, top = [], total_bits
    while top > 0:
        width = min(DIGIT_BITS, top)
        out.append((top - width, width))
        top -= width
    return out


def _next_edge(int_bits: torch.Tensor, shift: int, dtype: torch.dtype) -> torch.Tensor:
    """The bits of the next bin edge above ``int_bits`` at ``shift``, at most the bits of +inf."""
    inf_bits = 0x7FF0000000000000 if dtype == torch.float64 else 0x7F800000
    return torch.clamp((int_bits >> shift) + 1, max=inf_bits >> shift) << shift


def _as_float(int_bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Integer bit patterns (int64) back to floats of ``dtype``."""
    if dtype == torch.float64:
        return int_bits.view(torch.float64)
    return int_bits.to(torch.int32).view(torch.float32)
