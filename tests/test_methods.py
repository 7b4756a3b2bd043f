"""The methods' own mechanisms: the select fallbacks, batching, radix selection, memory, tracing.

That every method gives the same canonical answer on the corpus is tests/test_matrix.py."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmp_theory import paper_parameters
from solvers import _numpy_capped, _numpy_select, _numpy_sort, _torch_paths
from solvers import numpy as lmp_np
from solvers import torch as lmp_torch
from solvers._torch_select import kth_largest, select_p1

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("p", [1.0, 1.001, 1.7, 5.0])
def test_select_fallback_when_the_sample_misses(monkeypatch, p):
    """A bracket at the largest loss misses (unless nothing is capped); the pool then falls back: still exact."""
    monkeypatch.setattr(_numpy_select, "_bracket", lambda sample, rank, n: (float(sample[0]), float(sample[0])))
    rng = np.random.default_rng(0)
    x = rng.exponential(size=(3, 20000))
    gamma, tau = paper_parameters(20000, p, 0.2)
    got = lmp_np.lmp_weights(x, p, gamma, tau, method="select")
    np.testing.assert_allclose(got, lmp_np.lmp_weights(x, p, gamma, tau, method="sort"), rtol=1e-12, atol=0)


def test_select_batched_with_masks_and_per_pool_parameters():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=(4, 30000)).astype(np.float32)
    x[:, ::5] = 0.0
    mask = rng.random(x.shape) < 0.9
    counts = mask.sum(1)
    for p in (1.0, 1.7, math.inf):
        gamma, tau = paper_parameters(counts, p, 0.3)
        sel = lmp_np.lmp_weights(x, p, gamma, tau, mask=mask, method="select")
        srt = lmp_np.lmp_weights(x, p, gamma, tau, mask=mask, method="sort")
        np.testing.assert_allclose(sel, srt, rtol=0, atol=1e-6 * float(srt.max()))
        tsel = lmp_torch.lmp_weights(torch.from_numpy(x), p, torch.from_numpy(gamma), torch.from_numpy(tau),
                                     mask=torch.from_numpy(mask), method="select").numpy()
        np.testing.assert_allclose(tsel, srt, rtol=0, atol=1e-6 * float(srt.max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_radix_kth_largest_is_bit_exact(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3000, generator=g, dtype=dtype)
    x[0, :2000] = 0
    x[1] = torch.round(x[1] * 4)  # heavy ties
    x[2] *= 1e-35 if dtype == torch.float32 else 1e-300
    x[3, ::2] = torch.finfo(dtype).tiny / 8  # subnormals
    x[4] = 7.0  # all equal
    rank = torch.tensor([0, 17, 2999, 1500, 123, 2998])
    expected = torch.sort(x, 1, descending=True).values.gather(1, rank[:, None])[:, 0]
    assert torch.equal(kth_largest(x, rank), expected)
    for row in range(6):  # one pool at a time: on CPU the passes after the first keep only the chosen bin
        assert torch.equal(kth_largest(x[row:row + 1], rank[row:row + 1]), expected[row:row + 1])


def test_sort_free_device_paths_do_not_synchronise():
    """The CUDA select paths (radix selection for p = 1, direct for p = inf), traced whole on CPU."""
    torch._dynamo.reset()
    x = torch.rand(3, 20000)
    x[1, ::2] = 0.0
    gamma = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    tau = torch.tensor([1e-3, 1e-4, 2e-5], dtype=torch.float64)  # per-pool ranks
    radix = torch.compile(lambda l, g, t: select_p1(l, g, t), fullgraph=True, backend="eager")
    weights, threshold = radix(x, gamma, tau)
    expected = lmp_np.lmp_solve(x.numpy(), 1.0, gamma.numpy(), tau.numpy(), method="sort")
    torch.testing.assert_close(weights, torch.from_numpy(expected.weights), rtol=0, atol=0)
    torch._dynamo.reset()
    direct = torch.compile(lambda l: lmp_torch.lmp_value(l, math.inf, 1e-3, 1e-4, check_finite=False, method="select"),
                           fullgraph=True, backend="eager")
    torch.testing.assert_close(direct(x), lmp_torch.lmp_value(x, math.inf, 1e-3, 1e-4, method="sort"))


SHAPES = {"many pools": (256, 4096), "tiny pools": (2**18, 4), "one pool": (1, 2**20)}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("method", ["auto", "sort", "select"])
@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_numpy_peak_extra_memory_is_at_most_4x_the_input(shape, method, p):
    """tracemalloc: the output and every temporary together, for 4 MB of float32 with zero and negative losses.

    The sort path runs over chunks of pools and over blocks of columns within a pool, so a forced
    sort on one pool of 2^20 losses holds only its sorted copy and one block's temporaries."""
    pools, n = SHAPES[shape]
    x = np.random.default_rng(0).exponential(size=(pools, n)).astype(np.float32)
    x[:, 1::8] = 0.0
    x[:, 2::8] *= -1.0
    assert _numpy_peak(x, p, method) <= 4 * x.nbytes


def _numpy_peak(x: np.ndarray, p: float, method: str) -> int:
    """Peak bytes that tracemalloc sees during one lmp_weights call (paper's parameters, ratio 0.1)."""
    import tracemalloc

    gamma, tau = paper_parameters(x.shape[1], p, 0.1)
    tracemalloc.start()
    try:
        lmp_np.lmp_weights(x, p, gamma, tau, method=method)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _hard_pool(kind: str) -> np.ndarray:
    """One pool of 2^20 losses where the sampled bracket has the least room: all equal, a dozen tied
    levels, float16 (computed in float32 block by block)."""
    x = np.random.default_rng(0).exponential(size=(1, 2**20))
    if kind == "all equal":
        return np.full(x.shape, 0.5, dtype=np.float32)
    if kind == "tied levels":
        return (np.round(x * 4) / 4).astype(np.float32)
    x[:, 1::8] = 0.0
    return x.astype(np.float16)


@pytest.mark.parametrize("kind", ["all equal", "tied levels", "float16"])
@pytest.mark.parametrize("method", ["auto", "sort", "select"])
@pytest.mark.parametrize("p", [1.0, 1.001, 1.7])
def test_numpy_peak_extra_memory_with_ties_p_near_1_and_half_precision(kind, method, p):
    """tracemalloc, output included: ties (where a bracket of sample values is empty), p near 1 (float32
    computed in float64) and float16 input (computed in float32) make no pool-sized copy."""
    x = _hard_pool(kind)
    assert _numpy_peak(x, p, method) <= 4 * x.nbytes


@pytest.mark.parametrize("p", [1.0, 1.7, 10.0])
def test_select_value_of_subnormal_losses(p):
    """float64 losses around 3e-310: the select path's value is as exact as the sort path's (a product of
    a weight coefficient and a subnormal loss lost 8 digits). All equal: L is the loss itself (the
    uniform weighting is optimal under the paper's parameters)."""
    n = 2**15
    rng = np.random.default_rng(7)
    gamma, tau = paper_parameters(n, p, 0.1)
    equal = np.full(n, 3e-310)
    for method in ("select", "auto"):
        assert abs(lmp_np.lmp_value(equal, p, gamma, tau, method=method) - 3e-310) <= 1e-12 * 3e-310
    spread = 3e-310 * rng.uniform(0.5, 1.5, n)
    exact = lmp_np.lmp_value(spread, p, gamma, tau, method="sort")
    scaled = lmp_np.lmp_value(spread * 1e300, p, gamma, tau, method="select") * 1e-300  # normal floats
    for method in ("select", "auto"):
        got = lmp_np.lmp_value(spread, p, gamma, tau, method=method)
        assert abs(got - exact) <= 1e-12 * exact and abs(got - scaled) <= 1e-12 * exact


_TORCH_MEMORY_CHILD = """
import gc, json, math, sys
import numpy as np, torch
from lmp_theory import paper_parameters
from solvers import torch as lmp_torch

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

torch.set_num_threads(1)
rows = []

def measure(t, ps, label):
    for p in ps:
        gamma, tau = paper_parameters(t.shape[1], p, 0.1)
        for method in ("auto", "sort", "select"):
            lmp_torch.lmp_weights(t[:1, :64], p, gamma, tau, method=method)  # lazy initialisation
            gc.collect()
            before = status("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak RSS
            w = lmp_torch.lmp_weights(t, p, gamma, tau, method=method)
            rows.append([label, p, method, (status("VmHWM") - before) / (t.numel() * t.element_size())])
            del w

for pools, n in json.loads(sys.argv[1]):
    x = np.random.default_rng(0).exponential(size=(pools, n)).astype(np.float32)
    x[:, 1::8] = 0.0
    x[:, 2::8] *= -1.0
    measure(torch.from_numpy(x), (1.0, 1.7, math.inf), f"{pools} x {n}")
half = np.random.default_rng(0).exponential(size=(1, 2**20))
half[:, 1::8] = 0.0
measure(torch.from_numpy(half.astype(np.float16)), (1.0, 1.001, 1.7), "float16, 1 x 2^20")
print(json.dumps(rows))
"""


@pytest.mark.slow  # a child process per shape and method; the NumPy memory checks stay in the fast loop
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
def test_torch_cpu_peak_extra_memory_is_at_most_4x_the_input():
    """Peak RSS of a child process (as benchmarks/run.py measures it: glibc returns freed blocks
    above 64 kB, the peak is reset before each call), output included, 4 MB of float32 per shape;
    a forced sort on one pool included (the NumPy sort core, not torch.sort and its int64 indices), and
    one float16 pool (which the NumPy cores take as it is: a float32 copy alone is twice the input)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    child = subprocess.run([sys.executable, "-c", _TORCH_MEMORY_CHILD, json.dumps(list(SHAPES.values()))],
                           env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    rows = json.loads(child.stdout.splitlines()[-1])
    assert len(rows) == 9 * len(SHAPES) + 9
    over = [row for row in rows if row[-1] > 4.0]
    assert not over, over


def test_select_in_float64_for_float32_pools_with_zeros():
    """p < 1.125 computes float32 pools in float64; the compressed weights are scattered back in float32."""
    x = np.random.default_rng(4).exponential(size=(2, 20000)).astype(np.float32)
    x[:, ::3] = 0.0
    gamma, tau = paper_parameters(20000, 1.05, 0.2)
    got = lmp_np.lmp_weights(x, 1.05, gamma, tau, method="select")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, lmp_np.lmp_weights(x, 1.05, gamma, tau, method="sort"), rtol=1e-5, atol=0)


def test_forced_select_on_tiny_pools_takes_the_vectorised_sort_path(monkeypatch):
    def per_pool(*args):
        raise AssertionError("a Python loop over 100,000 pools")

    monkeypatch.setattr(_numpy_select, "_Pool", per_pool)
    x = np.random.default_rng(2).standard_normal((100_000, 3))
    gamma, tau = paper_parameters(3, 1.7, 0.5)
    for lmp in (lmp_np, lmp_torch):
        data = x if lmp is lmp_np else torch.from_numpy(x)
        got = np.asarray(lmp.lmp_weights(data, 1.7, gamma, tau, method="select"))
        np.testing.assert_array_equal(got, lmp_np.lmp_weights(x, 1.7, gamma, tau, method="sort"))


@pytest.fixture
def device_paths_on_cpu(monkeypatch):
    """Run the CUDA paths (radix selection, torch.sort) on CPU tensors, which use the NumPy cores."""
    monkeypatch.setattr(_torch_paths, "_DEVICE_PATHS_ON_CPU", True)


def test_device_select_path_for_holder_does_not_synchronise(device_paths_on_cpu):
    torch._dynamo.reset()
    x = torch.rand(3, 5000, requires_grad=True)
    gamma = torch.tensor([0.02, 0.05, 0.1], dtype=torch.float64)
    fn = torch.compile(lambda l, g: lmp_torch.lmp_value(l, 1.7, g, 1e-3, check_finite=False, method="select").sum(),
                       fullgraph=True, backend="eager")
    fn(x, gamma).backward()
    expected = lmp_np.lmp_weights(x.detach().numpy(), 1.7, gamma.numpy(), 1e-3, method="sort")
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=0, atol=1e-6 * expected.max())


def _hard_pools(dtype):
    """Pools for the blockwise sort path: long tie runs (across block boundaries, at the cut),
    losses over 600 decades, zeros and negative losses."""
    rng = np.random.default_rng(12)
    levels = rng.exponential(size=(4, 1500))
    levels[0] = np.round(levels[0] * 4) / 4  # a dozen values, runs of ~100 to ~400
    levels[1, :700] = 2.0  # one run of 700 at the top
    levels[2] = 10.0 ** rng.uniform(-300, 300, 1500) if dtype == np.float64 else 10.0 ** rng.uniform(-30, 30, 1500)
    levels[3, ::3] = 0.5  # a run of 500 in the middle
    levels[:, 1::9] = 0.0
    levels[:, 2::9] *= -1.0
    return levels.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1.0, 1 + 1e-15, 1 + 1e-3, 1.05, 1.7, 4.0])
def test_sort_path_in_small_blocks_matches_one_block(monkeypatch, p, dtype):
    """The sort path's passes over blocks of columns (carried log-sums and tie groups, pairwise sums
    mirrored) give the answers of one block per pool: bit for bit from 128 columns on (NumPy's
    pairwise block, ``PAIRWISE_BLOCK``), within 1e-15 below."""
    x = _hard_pools(dtype)
    n = x.shape[1]
    mask = np.ones(x.shape, dtype=bool)
    mask[3, 1000:] = False
    for ratio in (0.02, 0.1, 0.3, 0.9):
        gamma, tau = paper_parameters(n, p, ratio)
        assert x.size <= _numpy_sort.BLOCK_LOSSES  # one block per pool
        whole = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
        for width in (128, 200, 1000, 7):
            monkeypatch.setattr(_numpy_sort, "BLOCK_LOSSES", width * x.shape[0])  # blocks of `width` columns
            monkeypatch.setattr(_numpy_sort, "PAIRWISE_BLOCK", min(width, 128))
            blocked = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
            monkeypatch.undo()
            for got, want in zip(blocked, whole):
                if width >= 128:
                    np.testing.assert_array_equal(got, want)
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("p", [1.001, 1.7, 5.0])
def test_select_upper_side_whose_capped_set_reaches_above_the_bracket(monkeypatch, p):
    """A bracket below t* kept on its upper side: the losses above t_hi are not all capped, so every
    kept loss is sorted and solved (not only those inside the bracket); still the sort path's answer."""
    monkeypatch.setattr(_numpy_select, "_bracket", lambda sample, rank, n: (float(sample[-200]), float(sample[-100])))
    monkeypatch.setattr(_numpy_select, "_upper_side", lambda sample, t_lo, t_hi: True)
    reached = []
    original = _numpy_select._holder_upper

    def spy(*args, **kwargs):
        solved = original(*args, **kwargs)
        reached.append(solved is _numpy_select._REACHES_ABOVE)
        return solved

    monkeypatch.setattr(_numpy_select, "_holder_upper", spy)
    x = np.random.default_rng(5).exponential(size=(2, 20000))
    gamma, tau = paper_parameters(20000, p, 0.2)
    got = lmp_np.lmp_weights(x, p, gamma, tau, method="select")
    assert any(reached)
    np.testing.assert_allclose(got, lmp_np.lmp_weights(x, p, gamma, tau, method="sort"), rtol=1e-12, atol=0)


@pytest.mark.parametrize("spread", [1.0, 50.0, 5000.0])  # within LOG_RANGE, and beyond it (the accumulate)
def test_prefix_log_sums_match_the_logaddexp_accumulate(spread):
    rng = np.random.default_rng(int(spread))
    z = np.sort(-spread * rng.random((3, 257)), axis=1)
    z[1, :40] = -np.inf  # zero losses first
    z[2] = -np.inf  # a row of zeros
    start = np.array([[-np.inf], [0.3 * spread], [-2.0]])
    want = np.logaddexp.accumulate(np.concatenate([start, z], axis=1), axis=1)
    got = _numpy_capped.prefix_log_sums(start, z)
    finite = np.isfinite(want)
    assert np.array_equal(finite, np.isfinite(got))
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-12 * max(spread, 1.0))
