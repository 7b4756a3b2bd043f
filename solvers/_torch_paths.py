"""Which path solves a batch of Torch pools: the NumPy cores, the device sort path or radix selection.

``solve`` takes the validated ``(pools, n)`` losses of ``solvers._torch_inputs.prepare`` and returns the
weights, values and thresholds; every path gives the same canonical answer (``solvers._policy`` has the
rules that pick one).
"""

from __future__ import annotations

from functools import partial

import torch

from ._numpy_closed_form import pinf_pools
from ._numpy_select import select_pools
from ._numpy_sort import sort_pools
from ._policy import AUTO_SELECT_MIN_N, CUDA_CHUNK_MIN, SORT_CHUNK_MIN, chunk_rows
from ._torch_closed_form import pinf_weights, pool_values
from ._torch_select import select_holder_device, select_p1
from ._torch_sort import solve_sorted
from .problem import p_is_inf

# Tests set this to run the device (CUDA) select and sort paths on CPU tensors.
_DEVICE_PATHS_ON_CPU = False


def solve(pooled, p, gamma, tau, method="auto", value_wanted: bool = True):
    """Weights ``(pools, n)`` in ``pooled``'s dtype, values and thresholds ``(pools,)`` in float64.

    ``pooled``: the losses of every pool (masked-out entries 0; negative entries get weight 0).
    ``value_wanted=False``: the NumPy cores may leave the values NaN (it spares a pass).
    """
    pools, n = pooled.shape
    if pools == 0 or n == 0:
        zeros = torch.zeros(pools, dtype=torch.float64, device=pooled.device)
        return torch.zeros_like(pooled), zeros, zeros
    numpy_core = numpy_cores_solve(pooled.device, p)
    select = method == "select" or (
        method == "auto" and n >= AUTO_SELECT_MIN_N and (numpy_core or p == 1.0 or p_is_inf(p))
    )
    if numpy_core:  # the NumPy cores read the positive losses themselves
        core = partial(_pinf_core if p_is_inf(p) else select_pools if select else sort_pools, value_wanted=value_wanted)
        return _on_numpy_core(core, pooled, p, gamma, tau)
    if p_is_inf(p):  # every positive loss gets min(gamma, tau): one elementwise pass
        solve_rows = pinf_weights
    elif select:
        solve_rows = _on_positive_part(select_p1 if p == 1.0 else partial(select_holder_device, p=p))
    else:  # the device sort path (small pools, method="sort", and auto for 1 < p < inf on CUDA)
        solve_rows = _on_positive_part(partial(solve_sorted, p=p))
    # Chunks of pools bound the temporaries (a dozen per loss); on CUDA only beyond 2^22 losses,
    # where one launch per chunk costs nothing next to the work.
    rows = chunk_rows(pools, n, CUDA_CHUNK_MIN if pooled.is_cuda else SORT_CHUNK_MIN)
    if rows >= pools:  # one chunk: no copies
        return _solve_chunk(solve_rows, pooled, gamma, tau)
    weights = torch.empty_like(pooled)
    value = torch.empty(pools, dtype=torch.float64, device=pooled.device)
    threshold = torch.empty_like(value)
    for start in range(0, pools, rows):
        chunk = slice(start, start + rows)
        parts = _solve_chunk(solve_rows, pooled[chunk], gamma[chunk], tau[chunk])
        weights[chunk], value[chunk], threshold[chunk] = parts
    return weights, value, threshold


def numpy_cores_solve(device: torch.device, p: float) -> bool:
    """Whether ``solve`` hands pools on ``device`` to the NumPy cores: CPU tensors, except under
    torch.compile (which cannot trace them; they take the device paths, as on CUDA). The cores take
    float16, float32 and float64 as they are (their blocks are converted to the work dtype one at a
    time; at ``p = inf`` the weights are written in the input's dtype and the sums are in float32 or wider).

    At ``p = inf`` too: the NumPy core writes the weights in one pass and sums the losses once, where the
    device path's value (``pool_values``) takes four passes (measured 6x slower on CPU)."""
    return device.type == "cpu" and not (_DEVICE_PATHS_ON_CPU or torch.compiler.is_compiling())


def _pinf_core(flat, mask, p, gamma, tau, value_wanted: bool = True):
    """``pinf_pools`` with the cores' signature (``p`` is inf)."""
    return pinf_pools(flat, mask, gamma, tau, value_wanted)


def _on_numpy_core(solve_pools, pooled, p, gamma, tau):
    """A CPU tensor through a NumPy path (``select_pools`` or ``sort_pools``) on zero-copy views.

    CPU histograms by scatter are slow (the radix path measured 6x slower) and ``torch.sort`` alone
    allocates int64 indices (twice a float32 pool); the NumPy cores hold neither. A CPU tensor has
    no device queue to stall, so reading it on the host costs nothing.
    """
    weights, value, threshold = solve_pools(pooled.numpy(), None, p, gamma.numpy(), tau.numpy())
    return torch.from_numpy(weights), torch.from_numpy(value), torch.from_numpy(threshold)


def _on_positive_part(solve_rows):
    """A path that takes the non-negative losses, applied to the clamped losses."""
    return lambda pooled, gamma, tau: solve_rows(pooled.clamp(min=0), gamma=gamma, tau=tau)


def _solve_chunk(solve_rows, pooled, gamma, tau):
    """Weights, values and thresholds of a chunk of pools with one of the paths (``solve_rows``)."""
    weights, threshold = solve_rows(pooled, gamma=gamma, tau=tau)
    # Weights are 0 on non-positive losses, so <w, pooled> = <w, l+>.
    return weights, pool_values(weights, pooled), threshold
