"""What a compiled kernel would buy: the selection path's first pass at p = 1.7, fused.

At 1 < p < inf most of the solver's time is its first pass over the pool (``_collect``: the power
sum below the bracket, the powers the weights are a multiple of, the counts, the kept losses).
NumPy runs it as about ten ufunc passes per block. Here the same pass is timed against one fused
loop: ``torch.compile`` (inductor, which generates C++ on CPU) of the pass without the gather, and
numba (``fastmath``) where it is installed (the ``fast`` extra). Neither was faster on the machines
measured (their powers are scalar), so the solvers' compiled pass (``solvers._numba_loops.upper_pass``)
keeps NumPy's power and compiles only what is around it.
"""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np
import torch

from lmp_theory import paper_parameters
from solvers import _numpy_select
from solvers.problem import cap_count, conjugate

P = 1.7


def _bracket(x: np.ndarray, pool):
    """The bracket the solver takes for this pool."""
    gamma, tau = paper_parameters(x.size, P, 0.1)
    _, t_lo, t_hi = _numpy_select.holder_bracket(pool, conjugate(P), float(cap_count(P, gamma, tau)))
    return t_lo, t_hi


def _torch_pass(l, lo, hi, e):
    """The fused pass for inductor: the powers, the power sum (float64), the counts and the kept flags."""
    r = torch.clamp(l, max=lo) / lo
    u = r**e
    kept = l > lo
    return u, (r * u).double().sum(), (l > 0).sum(), (l > hi).sum(), kept


def _numba_pass():
    import numba

    @numba.njit(fastmath=True)
    def fused(l, lo, hi, e, u, kept):
        total, positives, over = 0.0, 0, 0
        for i in range(l.size):
            v = l[i]
            r = min(v, lo) / lo
            w = r**e
            u[i] = w
            total += np.float64(r * w)
            positives += v > 0
            over += v > hi
            kept[i] = v > lo
        return total, positives, over

    return fused


def compiled_suite(x: np.ndarray, repeats: int, interleaved) -> list[dict]:
    """Median ms of the pass on the float32 pool ``x``: NumPy (the solver's own), inductor, numba; with
    each kernel's compile seconds (the first call of a process)."""
    pool = _numpy_select._Pool(x, None, np.dtype(np.float32))
    t_lo, t_hi = _bracket(x, pool)
    q = conjugate(P)
    out, kept = np.empty_like(x), np.empty(x.shape, dtype=bool)
    contenders = {"NumPy (the solver's pass, with the gather)": (
        lambda: _numpy_select._collect(pool, t_lo, t_hi, True, q, powers=out)),
                  "np.power(l, 0.7) (one power pass)": lambda: np.power(x, np.float32(0.7))}
    compile_s = {}
    tx = torch.from_numpy(x)
    lo, hi, e = (torch.tensor(v, dtype=torch.float32) for v in (t_lo, t_hi, q - 1.0))
    fused = torch.compile(_torch_pass, dynamic=True)
    start = time.perf_counter()
    fused(tx, lo, hi, e)
    compile_s["torch.compile (inductor), without the gather"] = time.perf_counter() - start
    contenders["torch.compile (inductor), without the gather"] = lambda: fused(tx, lo, hi, e)
    if importlib.util.find_spec("numba") is not None:
        kernel = _numba_pass()
        args = (x, np.float32(t_lo), np.float32(t_hi), np.float32(q - 1.0), out, kept)
        start = time.perf_counter()
        kernel(*args)
        compile_s["numba (fastmath), without the gather"] = time.perf_counter() - start
        contenders["numba (fastmath), without the gather"] = lambda: kernel(*args)
    medians = interleaved(contenders, repeats)
    base = medians["NumPy (the solver's pass, with the gather)"]
    return [dict(contender=name, ms=1e3 * sec, over_numpy=sec / base, compile_s=compile_s.get(name, math.nan))
            for name, sec in medians.items()]
