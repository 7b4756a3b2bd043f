"""pool="global": one LMP pool over every process of a torch.distributed group, equal to one process.

The algorithm is checked two ways: in threads that stand in for processes (fast, so hypothesis can
split pools at random), and in spawned gloo process groups of 2 and 3 processes through the public
``lmp_pool``/``LossMaxPooling``, DistributedDataParallel gradients included.
"""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st

from solvers import _torch_distributed as distributed
from solvers.torch import LossMaxPooling, global_pool_traffic, lmp_pool
from solvers._torch_distributed import GlobalCall
from tests.distributed_support import (
    P_GRID,
    RATIOS,
    TOL,
    errors_in_threads,
    mismatch_worker,
    reference,
    relative_errors,
    solve_in_threads,
    worker,
)

ROOT = Path(__file__).resolve().parents[1]


@st.composite
def split_pools(draw):
    """A pool (ties, zeros, negatives, masked entries) cut into 1 to 4 slices, some of them empty."""
    n = draw(st.integers(0, 60))
    levels = draw(st.lists(st.sampled_from([0.0, -1.0, 1e-3, 0.5, 1.0, 2.0, 3.5, 1e3]), min_size=n, max_size=n))
    noise = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    losses = np.array(levels) * (1.0 + np.array(noise) * draw(st.sampled_from([0.0, 1e-9, 1.0])))
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool) | draw(st.booleans())
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=0, max_size=3)))
    return losses, mask, np.split(np.arange(n), cuts)


@given(split_pools(), st.sampled_from(P_GRID), st.sampled_from(RATIOS + [0.05, 0.77]),
       st.sampled_from([torch.float64, torch.float32]))
def test_split_pool_equals_the_whole_pool(split, p, ratio, dtype):
    losses, mask, parts = split
    x = torch.from_numpy(losses).to(dtype)
    out = solve_in_threads([x[i] for i in parts], [torch.from_numpy(mask[i]) for i in parts], p, ratio, dtype)
    values = [v for _, v, _ in out]
    assert all(torch.equal(v, values[0]) for v in values)  # the same bits on every process
    expected_w, expected_v = reference(x.double().numpy(), mask, p, ratio)
    weights = torch.cat([w for w, _, _ in out]).double().numpy()
    w_err, v_err = relative_errors(weights, float(values[0]), expected_w, expected_v)
    assert w_err <= TOL[dtype] and v_err <= TOL[dtype]


@pytest.mark.parametrize("p", P_GRID)
def test_uneven_and_empty_slices_on_the_grid(p):
    rng = np.random.default_rng(5)
    for ratio in RATIOS:
        for dtype in (torch.float64, torch.float32):
            sizes = [50, 0, 300, 7, 1]
            losses = np.round(rng.exponential(size=sum(sizes)) * 3) / 3  # ties, zeros
            mask = rng.random(losses.size) < 0.8
            mask[-8:] = False  # the last two slices have no valid loss
            parts = np.split(np.arange(losses.size), np.cumsum(sizes)[:-1])
            x = torch.from_numpy(losses).to(dtype)
            out = solve_in_threads([x[i] for i in parts], [torch.from_numpy(mask[i]) for i in parts], p, ratio, dtype)
            assert all(torch.equal(v, out[0][1]) for _, v, _ in out)
            expected_w, expected_v = reference(x.double().numpy(), mask, p, ratio)
            weights = torch.cat([w for w, _, _ in out]).double().numpy()
            w_err, v_err = relative_errors(weights, float(out[0][1]), expected_w, expected_v)
            assert w_err <= TOL[dtype] and v_err <= TOL[dtype], (ratio, dtype, w_err, v_err)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_collectives_are_a_fixed_sequence_independent_of_the_pool(p, dtype):
    rng = np.random.default_rng(0)
    plan = global_pool_traffic(p, dtype)
    for sizes in ([5, 0], [3000, 10, 1], [1]):
        slices = [torch.from_numpy(rng.exponential(size=s)).to(dtype) for s in sizes]
        out = solve_in_threads(slices, [torch.ones(s, dtype=torch.bool) for s in sizes], p, 0.3, dtype)
        assert all(tuple(calls) == plan.calls for _, _, calls in out)
    widths = {torch.float32: [11, 11, 9], torch.float64: [11] * 5 + [8]}[dtype]  # radix passes over 31 / 63 bits
    stats = {1.0: 1, 1.7: 2, math.inf: 0}[p]  # per-bin statistics: counts (and power sums for 1 < p < inf)
    assert [b for _, b in plan.calls if b >= 256 * 8] == [stats * 2**w * 8 for w in widths] * (stats > 0)
    assert plan.collectives == {1.0: len(widths) + 4, 1.7: len(widths) + 5, math.inf: 2}[p]
    assert plan.calls[0] == ("sum", 560)  # the pool size, the non-finite count and the call's 34 digits, squared
    assert plan.bytes - sum(b for _, b in plan.calls if b >= 256 * 8) <= 560 + 4 * 48


def test_the_docs_table_of_collectives_is_true():
    text = (ROOT / "docs" / "distributed.md").read_text()
    rows = [line.split("|")[1:5] for line in text.splitlines() if line.startswith("| ") and line.count("|") == 5]
    assert len(rows) == 6  # header + 5
    for p, losses, collectives, size in rows[1:]:
        for dtype in ([torch.float32, torch.float64] if losses.strip() == "any" else [getattr(torch, losses.strip())]):
            traffic = global_pool_traffic(float(p), dtype)
            assert (traffic.collectives, traffic.bytes) == (int(collectives), int(size.replace(",", ""))), (p, losses)


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_the_global_solve_reads_nothing_back_to_the_host(p):
    """After the one documented read (the check of the first collective), traced whole (fullgraph): no
    .item(), no branching on data; only the collectives would remain on NCCL. Also with inductor, which
    once baked a symbolic p into powers (tests/test_compile.py)."""
    x, total = torch.rand(1, 3000), torch.tensor([3000.0], dtype=torch.float64)
    expected = distributed.solve_checked(x, total, p, 0.3, distributed.Collectives(communicate=False))
    for backend in ("eager", "inductor") if p == 1.7 else ("eager",):
        torch._dynamo.reset()
        solve = torch.compile(lambda x, n: distributed.solve_checked(x, n, p, 0.3, distributed.Collectives(communicate=False)),
                              fullgraph=True, backend=backend)
        for got, want in zip(solve(x, total), expected):  # compiled float32 powers and fusions round differently
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_threads_raise_together_on_non_finite_losses():
    slices = [torch.rand(5, dtype=torch.float64), torch.tensor([1.0, math.inf], dtype=torch.float64)]
    with pytest.raises(ValueError, match="1 of 2 processes"):
        solve_in_threads(slices, [torch.ones(5, dtype=torch.bool), torch.ones(2, dtype=torch.bool)], 1.7, 0.3,
                         torch.float64)


BASE_CALL = GlobalCall(1.7, 0.3, torch.float32)


@pytest.mark.parametrize("change,named", [
    (dict(p=8.699), "p"),  # with float64 losses 1.7 and 8.699 shared the 16-bit CRC compared before
    (dict(p=math.nextafter(1.7, 2.0)), "p"),  # the last bit
    (dict(p=math.inf), "p"),
    (dict(ratio=0.2), "ratio"),
    (dict(dtype=torch.float16), "dtype"),  # computed in float32 like float32 losses, returned as float16
    (dict(reduction="sum"), "reduction"),
    (dict(size_weights=True), "size_weight"),
    (dict(check_finite=False), "check_finite"),
    (dict(number=1), "number of earlier pool='global' calls"),
    (dict(p=1.0, ratio=0.1, number=7), "p, ratio, the number"),
])
@pytest.mark.parametrize("size", [2, 3])
def test_a_call_that_differs_on_one_process_raises_on_every_process(change, named, size):
    calls = [BASE_CALL] * (size - 1) + [dataclasses.replace(BASE_CALL, **change)]
    slices = [torch.rand(5) for _ in range(size)]
    slices[-1][0] = math.nan  # with check_finite=False there: the others asked for the check, and raise
    errors = errors_in_threads(slices, calls)
    for e in errors:
        assert isinstance(e, ValueError) and "differ between processes" in str(e) and named in str(e), e
    assert all(str(e).split("(this process")[0] == str(errors[0]).split("(this process")[0] for e in errors)


def test_calls_alike_pass_the_comparison():
    calls = [dataclasses.replace(BASE_CALL, number=4)] * 3
    assert errors_in_threads([torch.rand(5), torch.rand(0), torch.rand(2)], calls) == [None] * 3


def test_the_call_number_counts_per_group():
    class Group:  # any weak-referenceable key stands in for a ProcessGroup
        pass

    a, b = Group(), Group()
    assert [distributed.next_call_number(g) for g in (a, a, b, a, b)] == [0, 1, 0, 2, 1]


@pytest.mark.slow  # spawned processes; the comparison is tested in threads above, in the fast loop
def test_gloo_mismatched_calls_raise_on_every_process(tmp_path):
    """Through the public lmp_pool and LossMaxPooling: each mismatch raises on both processes, then an
    aligned call still works (nobody was left inside a collective)."""
    mp.spawn(mismatch_worker, args=(2, str(tmp_path / "store")), nprocs=2, join=True)


def test_without_a_process_group_global_is_batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (3, 5, 5), generator=g)
    grads = []
    for pool in ("batch", "global"):
        logits.grad = None
        loss = LossMaxPooling(1.7, 0.2, pool=pool)(logits, target)
        loss.backward()
        grads.append((loss.detach(), logits.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    x = torch.rand(2, 7)
    assert torch.equal(lmp_pool(x, 1.0, 0.5, pool="global"), lmp_pool(x, 1.0, 0.5, pool="batch"))


@pytest.mark.slow  # spawned processes; the algorithm is tested in threads above, in the fast loop
@pytest.mark.parametrize("size", [2, 3])
def test_gloo_process_groups_equal_one_process(size, tmp_path):
    """Values, weights, the collectives, errors and DDP gradients, checked inside each process."""
    mp.spawn(worker, args=(size, str(tmp_path / "store")), nprocs=size, join=True)


@pytest.mark.slow
def test_ddp_example_under_torchrun_prints_the_single_process_curve():
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "examples" / "ddp_train.py"), "--compare", "--steps", "4", "--images", "3"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 process(es)" in out.stdout and "identical loss curves" in out.stdout
