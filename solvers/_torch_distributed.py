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
data or the pool size; ``global_pool_traffic`` lists them. The first carries, next to the pool
size, an exact description of the call (``GlobalCall``: ``p``, ``ratio``, dtype, reduction,
size weights, ``check_finite`` and the call's number on the group), which every process reads
back and compares before any collective that depends on it: a mismatch raises the same error on
every process instead of pairing unlike collectives (a wrong answer, or a hang). That read is the
one host synchronisation of a call.
"""

from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ._torch_closed_form import pinf_weights, pool_values, power, work_dtype
from ._torch_select import select_holder_device, select_p1
from .parameters import gamma_tau
from .problem import check_p, mismatched_call, not_finite, not_member, p_is_inf

__all__ = ["Traffic", "GlobalCall", "global_pool_traffic", "spans_processes", "global_value", "next_call_number"]


def spans_processes(group) -> bool:
    """Whether ``pool="global"`` has more than this process to pool over (else it is ``pool="batch"``)."""
    if dist.is_available() and group is dist.GroupMember.NON_GROUP_MEMBER:  # new_group() on a process left out
        raise not_member()
    if group is not None and not (dist.is_available() and isinstance(group, dist.ProcessGroup)):
        raise TypeError(f"group must be a torch.distributed ProcessGroup or None, got {type(group).__name__}")
    if not (dist.is_available() and dist.is_initialized()):
        return False
    if dist.get_rank(group) < 0:
        raise not_member()
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


@dataclass(frozen=True)
class GlobalCall:
    """What every process of the group must pass alike to ``pool="global"``; compared exactly.

    ``number`` is this process's count of earlier ``pool="global"`` calls on the group
    (``next_call_number``): a process that skipped or added a call is caught at its next one.
    """

    p: float
    ratio: float
    dtype: torch.dtype  # the losses' dtype as given (it sets the dtype of the value)
    reduction: str = "mean"
    size_weights: bool = False  # size_weight given (LossMaxPooling: class weights)
    check_finite: bool = True
    number: int = 0

    def fields(self) -> tuple[tuple[str, bytes], ...]:
        """Each compared field as a name and a byte string of fixed, even length (the same on every process)."""
        return (
            ("p", struct.pack("<d", self.p)),
            ("ratio", struct.pack("<d", self.ratio)),
            ("the losses' dtype", _fixed(str(self.dtype), 32)),
            ("reduction", _fixed(self.reduction, 8)),
            ("size_weight given or not (LossMaxPooling: class weights)", struct.pack("<H", self.size_weights)),
            ("check_finite", struct.pack("<H", self.check_finite)),
            ("the number of earlier pool='global' calls on the group", struct.pack("<Q", self.number)),
        )

    def digits(self) -> list[list[int]]:
        """Each field as 16-bit digits: equal digits on two processes iff equal fields."""
        return [list(struct.unpack(f"<{len(b) // 2}H", b)) for _, b in self.fields()]


def _fixed(text: str, size: int) -> bytes:
    raw = text.encode()
    if len(raw) > size:
        raise ValueError(f"{text!r} is longer than the {size} bytes pool='global' compares")
    return raw.ljust(size, b"\0")


_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def next_call_number(group) -> int:
    """This process's count of earlier ``pool="global"`` calls on ``group`` (None: the world), then one more."""
    key = dist.group.WORLD if group is None else group
    number = _CALLS.get(key, 0)
    _CALLS[key] = number + 1
    return number


def solve_global(pooled: torch.Tensor, valid: torch.Tensor, p: float, ratio: float, across: Collectives,
                 check_finite: bool, call: GlobalCall | None = None):
    """Weights ``(1, n)`` of this process's slice of the global pool and $L$ ``(1,)`` in float64.

    ``pooled``: this process's losses in the work dtype, shape ``(1, n)``, masked-out entries 0;
    ``valid``: its pool size (valid pixels, or their summed size weights; 0-d tensor). ``gamma``
    and ``tau`` come from the global size and the paper's ``p`` and ``ratio``. ``call``: what the
    processes compare (default: ``p``, ``ratio``, ``pooled``'s dtype and ``check_finite``).
    """
    call = GlobalCall(p, ratio, pooled.dtype, check_finite=check_finite) if call is None else call
    n = pooled.shape[1]
    if n == 0:  # a process with nothing to pool still takes part in every collective
        pooled = torch.zeros(1, 1, dtype=pooled.dtype, device=pooled.device)
    total = _first_collective(pooled, valid, call, across)
    _check(total, call, across.size)
    weights, value = solve_checked(pooled, total[:1], p, ratio, across)
    return weights[:, :n], value


def _first_collective(pooled, valid, call: GlobalCall, across: Collectives) -> torch.Tensor:
    """The sums over the processes of: the pool size, the count of processes with non-finite losses
    (``check_finite``), and each digit of the call and its square (``_check``)."""
    digits = [d for field in call.digits() for d in field]
    described = torch.tensor(digits, dtype=torch.float64).to(pooled.device)
    nonfinite = (~torch.isfinite(pooled)).any() if call.check_finite else torch.zeros((), dtype=torch.bool)
    local = torch.cat([valid.reshape(1).to(device=pooled.device, dtype=torch.float64),
                       nonfinite.reshape(1).to(device=pooled.device, dtype=torch.float64), described, described**2])
    return across.sum(local)


def _check(total: torch.Tensor, call: GlobalCall, size: int) -> None:
    """Raise on every process alike (they all hold the same ``total``): no process is left waiting.

    A field is the same on every process iff each of its digits is: for integers ``s_i``,
    ``size * sum(s_i^2) == (sum s_i)^2`` iff all ``s_i`` are equal (Cauchy-Schwarz), and digits
    below 2^16 keep these sums exact in float64 up to 2^21 processes.
    """
    values = total[1:].cpu().tolist()  # the documented synchronisation: one read per call
    nonfinite, rest = int(values[0]), [int(v) for v in values[1:]]
    half = len(rest) // 2
    sums, squares = rest[:half], rest[half:]
    differ, at = [], 0
    for (name, _), field in zip(call.fields(), call.digits()):
        span = range(at, at + len(field))
        if any(size * squares[i] != sums[i] * sums[i] for i in span):
            differ.append(name)
        at += len(field)
    if differ:
        raise mismatched_call(differ, _shown(call))
    if nonfinite:
        raise not_finite(detail=f"; {nonfinite} of {size} processes have some")


def _shown(call: GlobalCall) -> str:
    return (f"p={call.p!r}, ratio={call.ratio!r}, dtype={call.dtype}, reduction={call.reduction!r}, "
            f"size_weight {'given' if call.size_weights else 'not given'}, check_finite={call.check_finite}, "
            f"call {call.number} on the group")


def solve_checked(pooled: torch.Tensor, total: torch.Tensor, p: float, ratio: float, across: Collectives):
    """Weights and $L$ once the first collective is checked: ``total`` is the global pool size ``(1,)``.
    Device operations and collectives only (no host synchronisation)."""
    gamma, tau = gamma_tau(torch.where(total > 0, total, 1.0), p, ratio, power)  # an empty pool's L is 0
    lp = pooled.clamp(min=0)
    if p == 1.0:
        weights, _ = select_p1(lp, gamma, tau, across)
    elif p_is_inf(p):
        weights, _ = pinf_weights(lp, gamma, tau)
    else:
        weights, _ = select_holder_device(lp, p, gamma, tau, across)
    return weights, across.sum(pool_values(weights, lp))


class _GlobalValue(torch.autograd.Function):
    """$L$ of the global pool; the gradient of the local losses is ``world_size * grad * w``."""

    @staticmethod
    def forward(ctx, losses, pooled, valid, call, group, out_dtype):
        across = Collectives(group)
        weights, value = solve_global(pooled, valid, call.p, call.ratio, across, call.check_finite, call)
        ctx.save_for_backward(weights)
        ctx.size, ctx.shape = across.size, losses.shape
        return value[0].to(out_dtype)

    @staticmethod
    def backward(ctx, grad_value):
        (weights,) = ctx.saved_tensors
        grad = ctx.size * grad_value.to(weights.dtype) * weights
        return grad.reshape(ctx.shape).to(grad_value.dtype), None, None, None, None, None


def global_value(losses, pooled, valid, call: GlobalCall, group, out_dtype) -> torch.Tensor:
    """$L$ of one pool over the processes of ``group``, differentiable (see ``solvers.torch.lmp_pool``).

    ``losses``: this process's ``(1, n)`` losses as given (for autograd); ``pooled``: the same,
    validated, masked and in the work dtype; ``valid``: its pool size (0-d tensor); ``call``: what
    every process must have passed alike.
    """
    return _GlobalValue.apply(losses, pooled, valid, call, group, out_dtype)
