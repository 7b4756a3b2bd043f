r"""One loss max-pooling pool over every process of a ``torch.distributed`` group (``pool="global"``).

Each process holds a slice of the pool (its own images' valid pixels). The pool's threshold is
found without moving any loss between processes: the sort-free kernels of
``solvers._torch_select`` compute per-process statistics of fixed size (the valid count, the
radix selection's per-bin counts and power sums, counts and sums around the threshold) and pass
them through ``Collectives``, which all-reduces them over the group. Every process then holds
the same global statistics, bit for bit (an all-reduce hands every process the same result), so
every process takes the same decisions, returns the same $L$ and computes the global pool's
canonical weights for its own pixels.

The collectives are a fixed sequence that depends on ``p`` and the dtype only, never on the
data or the pool size; ``global_pool_traffic`` lists them. Nothing here reads a tensor back
to the host except the input check of ``check_finite=True``, after the first collective.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ._torch_closed_form import pinf_weights, pool_values, power, work_dtype
from ._torch_select import select_holder_device, select_p1
from .parameters import gamma_tau
from .problem import check_p, not_finite, p_is_inf

__all__ = ["Traffic", "global_pool_traffic", "spans_processes", "global_value"]


def spans_processes(group) -> bool:
    """Whether ``pool="global"`` has more than this process to pool over (else it is ``pool="batch"``)."""
    if group is not None and not (dist.is_available() and isinstance(group, dist.ProcessGroup)):
        raise TypeError(f"group must be a torch.distributed ProcessGroup or None, got {type(group).__name__}")
    if not (dist.is_available() and dist.is_initialized()):
        return False
    if dist.get_rank(group) < 0:
        raise ValueError("group must contain this process (pool='global' pools over the processes of group)")
    return dist.get_world_size(group) > 1


class Collectives:
    """Sums and maxima of per-process statistics over ``group``; each call is recorded.

    ``communicate=False`` records without communicating (one process's statistics are the pool's):
    ``global_pool_traffic`` lists the collectives of a call that way.
    """

    def __init__(self, group=None, communicate: bool = True):
        self.group, self.communicate = group, communicate
        self.size = dist.get_world_size(group) if communicate else 1
        self.calls: list[tuple[str, int]] = []

    def _reduce(self, x: torch.Tensor, op: str) -> torch.Tensor:
        x = x.contiguous().clone()  # all_reduce works in place; the caller's tensor stays local
        self.calls.append((op, x.numel() * x.element_size()))
        if self.communicate:
            dist.all_reduce(x, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX, group=self.group)
        return x

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(x, "sum")

    def max(self, x: torch.Tensor) -> torch.Tensor:
        return self._reduce(x, "max")


@dataclass(frozen=True)
class Traffic:
    """The all-reduces of one ``pool="global"`` call on each process, in order.

    ``calls``: ``(operation, bytes)`` per all-reduce, the bytes being the size of the tensor each
    process contributes (what goes over the wire depends on the backend's algorithm: about twice
    that for a ring).
    """

    calls: tuple[tuple[str, int], ...]

    @property
    def collectives(self) -> int:
        return len(self.calls)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.calls)


def global_pool_traffic(p: float, dtype: torch.dtype = torch.float32) -> Traffic:
    """The collectives of one ``pool="global"`` call for losses of ``dtype``, whatever the pool size.

    The sequence depends only on ``p`` (1, between 1 and inf, or inf) and the dtype the closed
    form runs in (float32 or float64, which sets the number of radix passes); found by running the
    solver on a one-loss pool with recording, non-communicating reductions.
    """
    p = check_p(p)
    across = Collectives(communicate=False)
    pooled = torch.ones(1, 1, dtype=work_dtype(dtype, p))
    solve_global(pooled, torch.ones((), dtype=torch.int64), p, 0.5, across, check_finite=False)
    return Traffic(tuple(across.calls))


def _signature(dtype: torch.dtype, p: float, ratio: float) -> tuple[int, int]:
    """Two small integers (1..256) that differ, but for a 1 in 65,536 chance, between processes that
    were called with a different ``p``, ``ratio`` or work dtype (their collectives would not match)."""
    crc = zlib.crc32(f"{dtype}|{p!r}|{ratio!r}".encode())
    return 1 + (crc & 0xFF), 1 + ((crc >> 8) & 0xFF)


def solve_global(pooled: torch.Tensor, valid: torch.Tensor, p: float, ratio: float, across: Collectives,
                 check_finite: bool):
    """Weights ``(1, n)`` of this process's slice of the global pool and $L$ ``(1,)`` in float64.

    ``pooled``: this process's losses in the work dtype, shape ``(1, n)``, masked-out entries 0;
    ``valid``: its pool size (valid pixels, or their summed size weights; 0-d tensor). ``gamma``
    and ``tau`` come from the global size and the paper's ``p`` and ``ratio``.
    """
    n = pooled.shape[1]
    if n == 0:  # a process with nothing to pool still takes part in every collective
        pooled = torch.zeros(1, 1, dtype=pooled.dtype, device=pooled.device)
    device = pooled.device
    # first collective: the global count, non-finite flags and the call signature, checked together
    local = torch.zeros(6, dtype=torch.float64, device=device)
    local[0] = valid
    if check_finite:
        local[1] = (~torch.isfinite(pooled)).any()
    for i, s in enumerate(_signature(pooled.dtype, p, ratio)):
        local[2 + 2 * i], local[3 + 2 * i] = s, s * s
    total = across.sum(local)
    if check_finite:
        _check(total, across.size)
    gamma, tau = gamma_tau(torch.where(total[:1] > 0, total[:1], 1.0), p, ratio, power)  # an empty pool's L is 0
    lp = pooled.clamp(min=0)
    if p == 1.0:
        weights, _ = select_p1(lp, gamma, tau, across)
    elif p_is_inf(p):
        weights, _ = pinf_weights(lp, gamma, tau)
    else:
        weights, _ = select_holder_device(lp, p, gamma, tau, across)
    value = across.sum(pool_values(weights, lp))
    return weights[:, :n], value


def _check(total: torch.Tensor, size: int) -> None:
    """Raise on every process alike (they all hold the same ``total``): no process is left waiting."""
    nonfinite, s1, s1_sq, s2, s2_sq = total[1:].cpu().tolist()  # the documented check_finite synchronisation
    if nonfinite:
        raise not_finite(detail=f"; {int(nonfinite)} of {size} processes have some")
    if size * s1_sq != s1 * s1 or size * s2_sq != s2 * s2:  # equal iff every process sent the same s
        raise ValueError("p, ratio and the losses' dtype must be the same on every process of the group "
                         "for pool='global'")


class _GlobalValue(torch.autograd.Function):
    """$L$ of the global pool; the gradient of the local losses is ``world_size * grad * w``."""

    @staticmethod
    def forward(ctx, losses, pooled, valid, p, ratio, group, check_finite, out_dtype):
        across = Collectives(group)
        weights, value = solve_global(pooled, valid, p, ratio, across, check_finite)
        ctx.save_for_backward(weights)
        ctx.size, ctx.shape = across.size, losses.shape
        return value[0].to(out_dtype)

    @staticmethod
    def backward(ctx, grad_value):
        (weights,) = ctx.saved_tensors
        grad = ctx.size * grad_value.to(weights.dtype) * weights
        return grad.reshape(ctx.shape).to(grad_value.dtype), None, None, None, None, None, None, None


def global_value(losses, pooled, valid, p, ratio, group, check_finite, out_dtype) -> torch.Tensor:
    """$L$ of one pool over the processes of ``group``, differentiable (see ``solvers.torch.lmp_pool``).

    ``losses``: this process's ``(1, n)`` losses as given (for autograd); ``pooled``: the same,
    validated, masked and in the work dtype; ``valid``: its count of valid pixels (0-d tensor).
    """
    return _GlobalValue.apply(losses, pooled, valid, p, ratio, group, check_finite, out_dtype)
