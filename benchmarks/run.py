"""The benchmark suite: our solvers against the floors, interleaved, medians, written to docs/benchmarks.md.

    python benchmarks/run.py            # the full suite (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # small sizes only (what the tests run)

Every timing is a median over repeats, and each repeat runs all contenders of one configuration
back to back (interleaved), so a noisy, shared machine slows them alike; the report quotes
ratios measured in the same run, never absolute targets. Floors: ``np.sum`` (one pass), a power pass
``np.power(l, 0.7)``, ``np.partition``, ``np.sort``. Alternatives a user would otherwise write: a top-k
mean (``torch.topk``), mmseg-style OHEM (sort and threshold), a 30-step bisection, and ``cvxpy``.
The memory suite's shapes (zero and negative losses, from tiny pools to one pool) are timed as well.
Peak extra memory (output included) is measured per case and method, as a multiple of the input's
size: NumPy with ``tracemalloc``, Torch CPU as the peak resident set size in a child process (glibc
told to return freed blocks, peak reset before each call).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from lmp_theory import paper_parameters
from solvers import _numba_loops as numba_loops
from solvers import numpy as lmp_np
from solvers import torch as lmp_torch

ROOT = Path(__file__).resolve().parents[1]
P_VALUES = (1.0, 1.001, 1.7, 10.0, math.inf)
RATIO = 0.1
TARGET_N = 2**21
FORCED_MAX_N = 2**21  # forced method="sort"/"select" rows up to this size (beyond, "auto" only)


SAMPLE_SECONDS = 6e-3  # a sample of a fast call repeats it back to back for at least this long


def _time(fn, number: int = 1) -> float:
    """Seconds per call of ``number`` calls back to back, with the cyclic garbage collector off (as
    ``timeit`` does)."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        gc.enable()


def interleaved(contenders: dict, repeats: int) -> dict:
    """Median seconds per call of each callable, timing them round-robin ``repeats`` times after a warm-up.

    The collector runs once per round, not per call: with Torch loaded one collection takes tens of
    milliseconds, longer than most of the calls timed. Each round runs the contenders in a new order
    (seeded): a call's time depends on the one before it (cold caches after a collection, the
    allocator's state after a large array is freed: up to 50 % for the same code), and a fixed order
    would charge that to the same contenders every round. A call under ``SAMPLE_SECONDS`` is repeated
    back to back within its sample, as ``timeit`` does: one call of 0.1 ms measured up to 4x slower
    alone, just after another contender, than in a loop, and the first call after another contender
    can pay for fresh pages of its output (the same 0.8 ms call measured 30 % apart in two orders with
    samples of 2 ms; 6 ms samples put Torch's p = inf over NumPy's at 1.06-1.09 in three runs)."""
    for fn in contenders.values():  # the warm-up
        fn()
    number = {name: max(1, min(1000, math.ceil(SAMPLE_SECONDS / max(_time(fn), 1e-7))))
              for name, fn in contenders.items()}
    names = list(contenders)
    samples = {name: [] for name in names}
    order = np.random.default_rng(len(names))
    for _ in range(repeats):
        gc.collect()
        for i in order.permutation(len(names)):
            samples[names[i]].append(_time(contenders[names[i]], number[names[i]]))
    return {name: statistics.median(ts) for name, ts in samples.items()}


def _data(n: int, dtype, pools: int = 1):
    rng = np.random.default_rng(n)
    x = rng.exponential(size=(pools, n)).astype(dtype)  # cross-entropy-like: positive, skewed
    x[:, ::4] *= dtype(1e-8)  # a quarter of tiny losses, as in a well-fitted segmentation batch
    return x[0] if pools == 1 else x


def _floors(x) -> dict:
    """One pass over the losses (np.sum), a fresh output written once (np.full_like: what any solver
    returning weights pays), a power pass (the cheapest pass a p > 1 solver needs), selection and
    sorting, along the last axis."""
    half = x.shape[-1] // 2
    return {"np.sum": lambda: np.sum(x, axis=-1), "np.full_like": lambda: np.full_like(x, 0.5),
            "np.power": lambda: np.power(x, x.dtype.type(0.7)),
            "np.partition": lambda: np.partition(x, half, axis=-1), "np.sort": lambda: np.sort(x, axis=-1)}


def _solvers(x, p, gamma, tau, forced: bool) -> dict:
    tx = torch.from_numpy(x)
    out = {"numpy auto": lambda: lmp_np.lmp_weights(x, p, gamma, tau),
           "torch auto": lambda: lmp_torch.lmp_weights(tx, p, gamma, tau, check_finite=False)}
    for method in ("sort", "select") if forced else ():
        out[f"numpy {method}"] = lambda m=method: lmp_np.lmp_weights(x, p, gamma, tau, method=m)
        out[f"torch {method}"] = lambda m=method: lmp_torch.lmp_weights(tx, p, gamma, tau, method=m, check_finite=False)
    if numba_loops.ENABLED and p in (1.0, 1.7, math.inf):  # what the fast extra's loops buy, in the same rounds
        for method in ("auto", "sort") if forced and p == 1.0 else ("auto",):
            out[f"numpy {method}, {NUMBA_OFF}"] = lambda m=method: _numba_off(lmp_np.lmp_weights, x, p, gamma, tau,
                                                                              method=m)
    return out


NUMBA_OFF = "numba off"


def _numba_off(solver, *args, **kwargs):
    """``solver`` with the compiled loops switched off (plain NumPy)."""
    numba_loops.ENABLED = False
    try:
        return solver(*args, **kwargs)
    finally:
        numba_loops.ENABLED = True


def cpu_suite(sizes, repeats) -> list[dict]:
    """One row per (n, dtype, p, contender): median ms, and the ratio to np.sort, of one pool."""
    rows = []
    for n in sizes:
        for dtype in (np.float32, np.float64) if n == TARGET_N else (np.float32,):
            x = _data(n, dtype)
            for p in P_VALUES:
                gamma, tau = paper_parameters(n, p, RATIO)
                contenders = {**_floors(x), **_solvers(x, p, gamma, tau, n <= FORCED_MAX_N)}
                medians = interleaved(contenders, repeats if n <= TARGET_N else max(3, repeats // 2))
                rows += [dict(n=n, dtype=np.dtype(dtype).name, p=p, contender=name, ms=1e3 * sec,
                              over_np_sort=sec / medians["np.sort"]) for name, sec in medians.items()]
    return rows


def batched_suite(n: int, pools: int, repeats: int) -> list[dict]:
    """``pools`` pools of ``n`` (float32) against the floors along the same axis."""
    x = _data(n, np.float32, pools)
    rows = []
    for p in P_VALUES:
        gamma, tau = paper_parameters(n, p, RATIO)
        medians = interleaved({**_floors(x), **_solvers(x, p, gamma, tau, True)}, repeats)
        rows += [dict(pools=pools, n=n, p=p, contender=name, ms=1e3 * sec) for name, sec in medians.items()]
    return rows


def shapes_suite(total: int, repeats: int) -> list[dict]:
    """``total`` float32 losses with zeros and negative ones (the memory suite's four shapes, from 2^18 pools of 4
    to one pool) at p = 1, 1.7 and inf: ``auto`` against np.sort and np.sum along the same axis."""
    rows = []
    for name, x, p, gamma, tau, method in _memory_cases(total):
        if method != "auto" or name.startswith("one pool, "):  # the four shapes only, not the hard single pools
            continue
        tx = torch.from_numpy(x)
        contenders = {"np.sum": lambda: np.sum(x, axis=-1), "np.sort": lambda: np.sort(x, axis=-1),
                      "numpy auto": lambda: lmp_np.lmp_weights(x, p, gamma, tau),
                      "torch auto": lambda: lmp_torch.lmp_weights(tx, p, gamma, tau, check_finite=False)}
        medians = interleaved(contenders, repeats)
        rows += [dict(shape=name, pools=x.shape[0], n=x.shape[1], p=p, contender=c, ms=1e3 * sec,
                      over_np_sort=sec / medians["np.sort"]) for c, sec in medians.items()]
    return rows


def alternatives_suite(n: int, repeats: int) -> list[dict]:
    """What a user would otherwise write, on one float32 pool of ``n`` (ratio 0.1), against our p = 1 and p = 1.7."""
    x = _data(n, np.float32)
    tx = torch.from_numpy(x)
    k = max(1, int(RATIO * n))

    def ohem():  # mmseg-style OHEM: sort, threshold at the k-th largest, mean of the losses above it
        threshold = np.sort(x)[n - k]
        return np.mean(x, where=x >= threshold)

    def bisection(p=1.7, steps=30):  # t with sum min(1, (l / t)^q) = m by bisection, then the weights
        q, m = p / (p - 1), RATIO * n
        lo, hi = 0.0, float(x.max())
        for _ in range(steps):
            t = 0.5 * (lo + hi)
            h = np.sum(np.minimum(np.power(x / np.float32(t), np.float32(q)), 1.0), dtype=np.float64)
            lo, hi = (t, hi) if h > m else (lo, t)
        return np.minimum(np.power(x / np.float32(hi), np.float32(q - 1)), 1.0)

    g1, t1 = paper_parameters(n, 1.0, RATIO)
    g17, t17 = paper_parameters(n, 1.7, RATIO)
    contenders = {"top-k mean (torch.topk)": lambda: torch.topk(tx, k, sorted=False).values.mean(),
                  "OHEM (np.sort + threshold)": ohem, "30-step bisection, p = 1.7": bisection,
                  "lmp_weights p = 1 (NumPy)": lambda: lmp_np.lmp_weights(x, 1.0, g1, t1),
                  "lmp_weights p = 1.7 (NumPy)": lambda: lmp_np.lmp_weights(x, 1.7, g17, t17)}
    return [dict(contender=name, ms=1e3 * sec) for name, sec in interleaved(contenders, repeats).items()]


def layer_suite(shape, repeats: int) -> list[dict]:
    """LossMaxPooling(p=1.7, ratio=0.3) against nn.CrossEntropyLoss, forward and backward, on CPU."""
    import torch.nn.functional as F

    batch, classes, height, width = shape
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, height, width, generator=gen, requires_grad=True)
    target = torch.randint(0, classes, (batch, height, width), generator=gen)
    layer = lmp_torch.LossMaxPooling(p=1.7, ratio=0.3, check_finite=False)

    def step(fn):
        logits.grad = None
        fn().backward()

    med = interleaved({"ce": lambda: step(lambda: F.cross_entropy(logits, target)),
                       "lmp": lambda: step(lambda: layer(logits, target))}, repeats)
    return [dict(shape="x".join(map(str, shape)), ce_ms=1e3 * med["ce"], lmp_ms=1e3 * med["lmp"],
                 ratio=med["lmp"] / med["ce"])]


def _memory_cases(total: int):
    """(case name, losses, p, gamma, tau, method): ``total`` float32 losses with zeros and negative ones in
    four shapes, then one pool of ``total / 4`` where the bracket has the least room (all equal, a dozen
    tied levels), p near 1 (float32 computed in float64) and float16 (computed in float32)."""
    shapes = {"many pools": (total // 16383, 16383), "large pools": (16, total // 16), "one pool": (1, total),
              "tiny pools": (total // 4, 4)}
    for name, (pools, n) in shapes.items():
        x = np.random.default_rng(n).exponential(size=(pools, n)).astype(np.float32)
        x[:, 1::8] = 0.0  # zero and negative losses: the select path must not copy whole pools for them
        x[:, 2::8] *= -1.0
        for p in (1.0, 1.7, math.inf):
            gamma, tau = paper_parameters(n, p, RATIO)
            for method in ("auto", "sort", "select"):
                yield name, x, p, gamma, tau, method
    n = total // 4
    base = np.random.default_rng(0).exponential(size=(1, n))
    hard = {"one pool, all equal": np.full((1, n), 0.5, dtype=np.float32),
            "one pool, tied levels": (np.round(base * 4) / 4).astype(np.float32),
            "one pool, random": base.astype(np.float32), "one pool, float16": base.astype(np.float16)}
    for name, x in hard.items():
        for p in (1.0, 1.001, 1.1, 1.7):
            gamma, tau = paper_parameters(n, p, RATIO)
            for method in ("auto", "sort", "select"):
                yield name, x, p, gamma, tau, method


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


def torch_memory_rows(total: int) -> list[dict]:
    """Torch CPU: peak RSS above the RSS before the call (run in a child, see ``memory_suite``)."""
    torch.set_num_threads(1)
    rows = []
    for name, x, p, gamma, tau, method in _memory_cases(total):
        t = torch.from_numpy(x)
        lmp_torch.lmp_weights(t[:1, :64], p, gamma, tau, method=method)  # warm-up: lazy initialisation
        gc.collect()
        before = _rss()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (Linux)
        w = lmp_torch.lmp_weights(t, p, gamma, tau, method=method)
        rows.append(dict(lib="torch", shape=name, dtype=x.dtype.name, pools=x.shape[0], n=x.shape[1], p=p,
                         method=method, ratio=(_peak_rss() - before) / x.nbytes))
        del w
    return rows


def memory_suite(total: int) -> list[dict]:
    """Peak extra memory (output included) over the input's size: NumPy (tracemalloc), Torch CPU (RSS)."""
    rows = []
    gc.collect()
    for name, x, p, gamma, tau, method in _memory_cases(total):
        tracemalloc.start()  # traces only what is allocated from here: no collection needed before
        lmp_np.lmp_weights(x, p, gamma, tau, method=method)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(dict(lib="numpy", shape=name, dtype=x.dtype.name, pools=x.shape[0], n=x.shape[1], p=p,
                         method=method, ratio=peak / x.nbytes))
    if not Path("/proc/self/clear_refs").exists():
        return rows
    # glibc keeps freed heap for reuse, which hides later peaks: allocations above 64 kB are mapped
    # and unmapped instead (MALLOC_MMAP_THRESHOLD_ also stops the threshold from adapting)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    child = subprocess.run([sys.executable, __file__, "--torch-memory", str(total)], env=env, check=True,
                           capture_output=True, text=True)
    return rows + json.loads(child.stdout.splitlines()[-1])


def cvxpy_suite(sizes) -> list[dict]:
    """The exact reference's wall time (conic solve + refinement + verification)."""
    from lmp_theory.reference import solve

    rows = []
    solve(_data(10, np.float64), 1.7, *paper_parameters(10, 1.7, RATIO))  # warm-up: cvxpy's first call compiles
    for n in sizes:
        x = _data(n, np.float64)
        for p in (1.0, 1.7, math.inf):
            gamma, tau = paper_parameters(n, p, RATIO)
            sec = _time(lambda: solve(x, p, gamma, tau))
            fast = statistics.median(_time(lambda: lmp_np.lmp_weights(x, p, gamma, tau)) for _ in range(5))
            rows.append(dict(n=n, p=p, seconds=sec, over_numpy=sec / fast))
    return rows


def gpu_suite(repeats: int) -> list[dict]:
    """On CUDA: weights for 8 x 2^21 against torch.sort, and LossMaxPooling against cross-entropy."""
    if not torch.cuda.is_available():
        return []
    import torch.nn.functional as F

    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    x = torch.from_numpy(_data(2**21, np.float32, 8)).to(dev)
    rows = []
    for p in (1.0, 1.7, math.inf):
        gamma, tau = paper_parameters(2**21, p, RATIO)
        contenders = {"torch.sort": lambda: (torch.sort(x, dim=1), sync())}
        for method in ("sort", "select"):
            contenders[method] = (lambda m=method: (lmp_torch.lmp_weights(x, p, gamma, tau, method=m,
                                                                          check_finite=False), sync()))
        med = interleaved(contenders, repeats)
        for method in ("sort", "select"):
            rows.append(dict(what=f"weights 8x2^21 p={p:g} {method}", ms=1e3 * med[method],
                             ratio=med[method] / med["torch.sort"], baseline="torch.sort"))
    logits = torch.randn(8, 19, 1024, 2048, device=dev, requires_grad=True)
    target = torch.randint(0, 19, (8, 1024, 2048), device=dev)
    layer = lmp_torch.LossMaxPooling(p=1.7, ratio=0.3, check_finite=False)

    def step(fn):
        logits.grad = None
        fn().backward()
        sync()

    med = interleaved({"ce": lambda: step(lambda: F.cross_entropy(logits, target)),
                       "lmp": lambda: step(lambda: layer(logits, target))}, repeats)
    rows.append(dict(what="LossMaxPooling fwd+bwd 8x19x1024x2048", ms=1e3 * med["lmp"], ratio=med["lmp"] / med["ce"],
                     baseline="nn.CrossEntropyLoss fwd+bwd"))
    return rows


def _numpy_uses_avx512() -> bool:
    """Whether NumPy dispatches to AVX-512 here (its np.sort of floats is then vectorised, x86-simd-sort)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # another NumPy layout: unknown, say no
        return False
    return bool(__cpu_features__.get("AVX512_SKX"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    avx512 = ", AVX-512" if _numpy_uses_avx512() else ", no AVX-512"
    numba = (f"numba {numba_loops.numba.__version__} (the fast extra's loops on)" if numba_loops.ENABLED
             else "numba not installed or off (plain NumPy)")
    return (f"{cpu}{avx512}, {torch.get_num_threads()} Torch threads{gpu}; Python {platform.python_version()}, "
            f"NumPy {np.__version__}, Torch {torch.__version__}, {numba}; {datetime.date.today().isoformat()}")


if __name__ == "__main__":
    from compiled import compiled_suite
    from report import write_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--torch-memory", type=int, help=argparse.SUPPRESS)  # the child of memory_suite
    args = parser.parse_args()
    if args.torch_memory:
        print(json.dumps(torch_memory_rows(args.torch_memory)))
        sys.exit(0)
    sizes = [2**10, 2**14] if args.quick else [2**10, 2**14, 2**17, 2**21, 2**24]
    repeats = 3 if args.quick else 15  # medians of 15 rounds: identical code measured up to 12 % apart with 9
    results = {
        "machine": machine(),
        "cpu": cpu_suite(sizes, repeats),
        "batched": batched_suite(2**12 if args.quick else 2**17, 16, repeats),
        "shapes": shapes_suite(2**14 if args.quick else 2**22, repeats),
        "alternatives": alternatives_suite(2**14 if args.quick else TARGET_N, repeats),
        "layer": layer_suite((1, 19, 32, 64) if args.quick else (2, 19, 512, 1024), 3 if args.quick else 5),
        "memory": memory_suite(2**16 if args.quick else 2**24),
        "cvxpy": cvxpy_suite([100, 1000] if args.quick else [100, 1000, 10000]),
        "compiled": compiled_suite(_data(2**14 if args.quick else TARGET_N, np.float32), repeats, interleaved),
        "gpu": gpu_suite(repeats),
        "quick": args.quick,
    }
    write_report(results, Path(args.out))
    print(f"wrote {args.out}")
