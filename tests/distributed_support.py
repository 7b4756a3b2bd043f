"""Helpers of tests/test_distributed.py: an in-process stand-in for a process group, and the
checks that spawned gloo processes run (one process group per spawn, many checks in it)."""

from __future__ import annotations

import datetime
import math
import threading

import numpy as np
import torch
import torch.distributed as dist

from lmp_theory import paper_parameters
from solvers import numpy as lmp_np
from solvers._torch_distributed import Collectives, solve_global
from solvers._torch_closed_form import work_dtype
from solvers.torch import LossMaxPooling, global_pool_traffic, lmp_pool

P_GRID = [1.0, 1.0 + 1e-3, 1.7, 10.0, math.inf]
RATIOS = [0.0, 0.1, 0.3, 1.0]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


class ThreadGroup:
    """``k`` threads that reduce like the processes of a group (sums in rank order, maxima)."""

    def __init__(self, k: int):
        # a timeout, not an abort on error: an error raised by every thread right after a reduction must not
        # break the barrier for a thread still leaving it; a thread that fails alone leaves the others waiting 60 s
        self.k, self.barrier, self.slots = k, threading.Barrier(k, timeout=60), [None] * k

    def member(self, rank: int) -> ThreadMember:
        return ThreadMember(self, rank)


class ThreadMember(Collectives):
    def __init__(self, group: ThreadGroup, rank: int):
        super().__init__(communicate=False)
        self.threads, self.rank, self.size = group, rank, group.k

    def _reduce(self, x, op):
        x = super()._reduce(x, op)  # records the call
        g = self.threads
        g.slots[self.rank] = x
        g.barrier.wait()
        out = g.slots[0].clone()
        for y in g.slots[1:]:
            out = out + y if op == "sum" else torch.maximum(out, y)
        g.barrier.wait()
        return out


def solve_in_threads(slices, masks, p, ratio, dtype, check_finite=True, calls=None):
    """``solve_global`` on each slice in its own thread: per-slice (weights, value, recorded calls).

    ``calls``: each thread's ``GlobalCall`` (default: the one of ``p``, ``ratio``, ``dtype`` and
    ``check_finite``). The first error of any thread is raised."""
    out, errors = _run_in_threads(slices, masks, p, ratio, dtype, check_finite, calls)
    if any(errors):
        raise next(e for e in errors if e is not None)
    return out


def errors_in_threads(slices, calls):
    """Each thread's exception (or None) when thread ``r`` is called as ``calls[r]`` describes."""
    call = calls[0]
    masks = [torch.ones(len(s), dtype=torch.bool) for s in slices]
    return _run_in_threads(slices, masks, call.p, call.ratio, call.dtype, call.check_finite, calls)[1]


def _run_in_threads(slices, masks, p, ratio, dtype, check_finite, calls):
    group, out, errors = ThreadGroup(len(slices)), [None] * len(slices), [None] * len(slices)

    def work(rank):
        try:
            member = group.member(rank)
            x = slices[rank].to(work_dtype(dtype, p))
            pooled = torch.where(masks[rank], x, torch.zeros_like(x))[None]
            call = None if calls is None else calls[rank]
            weights, value = solve_global(pooled, masks[rank].sum(), p, ratio, member, check_finite, call)
            out[rank] = weights[0], value[0], member.calls
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors[rank] = exc

    threads = [threading.Thread(target=work, args=(r,)) for r in range(len(slices))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


def reference(losses: np.ndarray, mask: np.ndarray, p: float, ratio: float):
    """The single-process answer on the concatenated pool: NumPy float64 weights and value."""
    gamma, tau = paper_parameters(max(int(mask.sum()), 1), p, ratio)
    return (lmp_np.lmp_weights(losses, p, gamma, tau, mask=mask),
            float(lmp_np.lmp_value(losses, p, gamma, tau, mask=mask)))


def relative_errors(weights, value, expected_weights, expected_value, scale=None):
    """Weight error relative to ``scale`` (default the largest expected weight), value error relative."""
    scale = max(float(np.max(expected_weights, initial=0.0)) if scale is None else scale, 1e-300)
    w_err = float(np.max(np.abs(weights - expected_weights), initial=0.0)) / scale
    return w_err, abs(value - expected_value) / max(abs(expected_value), 1e-300)


# ---- spawned gloo processes ---------------------------------------------------------------------

def _batch(seed: int, sizes: list[int], dtype, ignore_share: float, empty_rank: int | None):
    """The whole batch (same on every process) and each process's slice of images."""
    g = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    losses = (torch.rand(total, 6, 7, generator=g, dtype=torch.float64) * 4).round() / 4  # heavy ties
    losses = losses * torch.exp(torch.randn(total, 1, 1, generator=g, dtype=torch.float64))
    mask = torch.rand(total, 6, 7, generator=g) >= ignore_share
    bounds = np.cumsum([0] + sizes)
    if empty_rank is not None:
        mask[bounds[empty_rank]:bounds[empty_rank + 1]] = False
    return losses.to(dtype), mask, bounds


def _check_pool(rank, size, seed, sizes, dtype, p, ratio, empty_rank=None):
    losses, mask, bounds = _batch(seed, sizes, dtype, 0.2, empty_rank)
    mine = losses[bounds[rank]:bounds[rank + 1]].clone().requires_grad_(True)
    value = lmp_pool(mine, p, ratio, mask=mask[bounds[rank]:bounds[rank + 1]], pool="global")
    value.backward()
    value = value.detach()
    weights = mine.grad.reshape(-1).double().numpy() / size  # the gradient is world_size * w
    values = [torch.zeros((), dtype=dtype) for _ in range(size)]
    dist.all_gather(values, value)
    assert all(torch.equal(v, value) for v in values), f"ranks disagree on L: {values}"
    expected_w, expected_v = reference(losses.double().numpy().reshape(-1), mask.numpy().reshape(-1), p, ratio)
    lo, hi = bounds[rank] * 42, bounds[rank + 1] * 42
    w_err, v_err = relative_errors(weights, float(value), expected_w[lo:hi], expected_v, scale=expected_w.max())
    tol = TOL[dtype]
    assert w_err <= tol and v_err <= tol, (p, ratio, dtype, sizes, empty_rank, w_err, v_err)
    # the same pool on one process (pool="batch" of solvers.torch, the concatenation)
    whole = lmp_pool(losses, p, ratio, mask=mask, pool="batch")
    assert abs(float(whole) - float(value)) <= tol * max(abs(float(whole)), 1e-300)


def _check_traffic(rank, size):
    """The collectives a call issues are the ones global_pool_traffic lists, for any pool size."""
    calls, real = [], dist.all_reduce

    def counting(tensor, *args, **kwargs):
        calls.append(tensor.numel() * tensor.element_size())
        return real(tensor, *args, **kwargs)

    dist.all_reduce = counting
    try:
        for p in (1.0, 1.7, math.inf):
            for dtype, n in ((torch.float32, 10), (torch.float64, 5000 * (rank + 1))):
                calls.clear()
                lmp_pool(torch.rand(1, n, dtype=dtype), p, 0.2, pool="global")
                plan = global_pool_traffic(p, dtype)
                assert calls == [b for _, b in plan.calls], (p, dtype, calls, plan)
    finally:
        dist.all_reduce = real


def _check_errors_raise_everywhere(rank, size):
    """A NaN on one process, or a p that differs, raises on every process: nobody waits forever."""
    x = torch.rand(2, 30)
    if rank == size - 1:
        x[0, 3] = math.nan
    try:
        lmp_pool(x, 1.7, 0.2, pool="global")
    except ValueError as exc:
        assert "1 of" in str(exc) and "finite" in str(exc), exc
    else:
        raise AssertionError("a NaN on one process was not reported")
    try:
        lmp_pool(torch.rand(2, 30), 1.7 + (rank == 0), 0.2, pool="global")
    except ValueError as exc:
        assert "needs the same call on every process" in str(exc) and "p differ" in str(exc), exc
    else:
        raise AssertionError("a p that differs between processes was not reported")


def _check_ddp_gradients(rank, size, sizes):
    """After DDP averages them, parameter gradients equal the single-process run's on the whole batch."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 5, 3, padding=1).double()
    single = torch.nn.Conv2d(3, 5, 3, padding=1).double()
    single.load_state_dict(model.state_dict())
    ddp = DistributedDataParallel(model)
    g = torch.Generator().manual_seed(7)
    bounds = np.cumsum([0] + sizes)
    images = torch.randn(bounds[-1], 3, 6, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (bounds[-1], 6, 6), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    target[bounds[size - 1]:] = 255  # the last process has no valid pixel
    mine = slice(bounds[rank], bounds[rank + 1])
    for p in P_GRID:
        for ratio in (0.1, 0.5):
            ddp.zero_grad()
            single.zero_grad()
            LossMaxPooling(p, ratio, ignore_index=255, pool="global")(ddp(images[mine]), target[mine]).backward()
            LossMaxPooling(p, ratio, ignore_index=255, pool="batch")(single(images), target).backward()
            for a, b in zip(model.parameters(), single.parameters()):
                err = float((a.grad - b.grad).abs().max()) / max(float(b.grad.abs().max()), 1e-300)
                assert err <= 1e-12, (p, ratio, err)


def _check_class_weighted(rank, size):
    """Class weights set the global pool's size (their sum) exactly as in one process's pool="batch"."""
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(3 * size, 4, 5, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (3 * size, 5, 6), generator=gen)
    target[0, 0, :3] = 255
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25], dtype=torch.float64)
    mine = slice(3 * rank, 3 * rank + 3)
    for p in (1.0, 1.7, math.inf):
        layer = dict(p=p, ratio=0.3, ignore_index=255, weight=weight)
        pooled = LossMaxPooling(pool="global", **layer)(logits[mine], target[mine])
        whole = LossMaxPooling(pool="batch", **layer)(logits, target)
        assert abs(float(pooled) - float(whole)) <= 1e-12 * abs(float(whole)), (p, float(pooled), float(whole))


def worker(rank: int, size: int, store: str) -> None:
    """One spawned process: every check, in one gloo process group."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size,
                            timeout=datetime.timedelta(seconds=120))
    try:
        uneven = [3, 1, 2][:size] if size < 3 else [3, 1, 2]
        for dtype in (torch.float64, torch.float32):
            for i, p in enumerate(P_GRID):
                for j, ratio in enumerate(RATIOS):
                    _check_pool(rank, size, 10 * i + j, uneven, dtype, p, ratio)
                _check_pool(rank, size, 100 + i, [0] + uneven[1:], dtype, p, 0.3)  # a process with no image
                _check_pool(rank, size, 200 + i, uneven, dtype, p, 0.1, empty_rank=0)  # all ignored on one
                _check_pool(rank, size, 300 + i, [2, 0, 1][:size], dtype, p, 0.1, empty_rank=size - 1)
        for i, p in enumerate(P_GRID):  # pools of the single-process select path (n >= 16,384)
            _check_pool(rank, size, 400 + i, [250] * size, torch.float32, p, 0.1)
        _check_traffic(rank, size)
        _check_errors_raise_everywhere(rank, size)
        _check_ddp_gradients(rank, size, [2, 1, 3][:size])
        _check_class_weighted(rank, size)
    finally:
        dist.destroy_process_group()


def _raises_everywhere(named: str, call) -> None:
    try:
        call()
    except ValueError as exc:
        assert named in str(exc), exc
    else:
        raise AssertionError(f"no error for a {named} that differs between processes")


def mismatch_worker(rank: int, size: int, store: str) -> None:
    """One spawned process of a group where the processes call pool="global" differently."""
    from solvers import _torch_distributed

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size,
                            timeout=datetime.timedelta(seconds=60))
    try:
        x = torch.rand(2, 30, generator=torch.Generator().manual_seed(rank))
        with_nan = x.clone()
        with_nan[0, 0] = math.nan
        first = rank == 0
        for named, args, kwargs in [
            # float64: p = 1.7 and 8.699 shared the 16-bit CRC compared before (both processes returned a
            # number), and so did 1 and 11.68, whose collectives differ (gloo aborted a process)
            ("p", (x.double(), 1.7 if first else 8.699, 0.3), {}),
            ("p", (x.double(), 1.0 if first else 11.68, 0.3), {}),
            ("ratio", (x, 1.7, 0.3 if first else 0.30000000000000004), {}),
            ("dtype", (x.half() if first else x, 1.7, 0.3), {}),
            ("reduction", (x, 1.7, 0.3), dict(reduction="mean" if first else "sum")),
            ("size_weight", (x, 1.7, 0.3), dict(size_weight=torch.ones_like(x) if first else None)),
            ("check_finite", (x if first else with_nan, 1.7, 0.3), dict(check_finite=first)),
        ]:
            _raises_everywhere(named, lambda: lmp_pool(*args, pool="global", **kwargs))
        logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(rank))
        target = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(rank))
        layer = LossMaxPooling(1.7, 0.3, pool="global", weight=torch.tensor([1.0, 2.0, 0.5]) if first else None)
        _raises_everywhere("class weights", lambda: layer(logits, target))
        # a process that made one call more than the others (simulated: its count moved on by one)
        _torch_distributed._CALLS[dist.group.WORLD] += rank
        _raises_everywhere("number of earlier pool='global' calls", lambda: lmp_pool(x, 1.7, 0.3, pool="global"))
        _torch_distributed._CALLS[dist.group.WORLD] -= rank  # aligned again
        only_first = dist.new_group([0])  # every process calls new_group; the others get a placeholder
        if not first:
            try:
                lmp_pool(x, 1.7, 0.3, pool="global", group=only_first)
            except ValueError as exc:
                assert "not a member of group" in str(exc), exc
            else:
                raise AssertionError("a group without this process was accepted")
        value = lmp_pool(x, 1.7, 0.3, pool="global")  # after every error: an aligned call still works
        values = [torch.zeros(()) for _ in range(size)]
        dist.all_gather(values, value.detach())
        whole = torch.cat([torch.rand(2, 30, generator=torch.Generator().manual_seed(r)) for r in range(size)])
        assert all(torch.equal(v, value) for v in values)
        assert abs(float(value) - float(lmp_pool(whole, 1.7, 0.3, pool="batch"))) <= 1e-5 * float(value)
    finally:
        dist.destroy_process_group()
