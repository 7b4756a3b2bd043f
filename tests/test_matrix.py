"""The solver matrix: every backend x method x dtype on the corpus, once per cell.

Each cell runs the conformance kit (canonical weights against the golden mpmath answers, or the
duality certificate for the large pools) and, from the same calls, checks what the kit does not
look at: the value (``lmp_value``), the dtype of weights and value, and agreement with NumPy's
float64 sort path (1e-12 in float64, so select = sort and Torch = NumPy to 1e-12; 1e-5 in float32).

Cells: NumPy and Torch (CPU, and CUDA where present) with ``method`` auto, sort and select; Torch
select and sort on CPU run twice, through the NumPy cores and through the device (CUDA) paths
(``solvers._torch_paths._DEVICE_PATHS_ON_CPU``). The select cells lower ``SELECT_MIN_N`` to 1, so that the
selection core itself runs on the corpus's small pools (which it otherwise hands to the sort path).

On the corpus's small pools ``auto`` is the sort path (it selects from 16,384 losses on): its cells
run in the slow suite, as do the large pools (where ``auto`` selects), in every cell.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest
import torch

from lmp_theory.corpus import cases
from lmp_theory.testing import assert_conforms, conformance_cases, torch_solver
from solvers import _numpy_select, _torch_paths
from solvers import numpy as lmp_np
from solvers import torch as lmp_torch

CUDA = torch.cuda.is_available()
GOLDEN = conformance_cases()
LARGE = [c for c in cases(large=True) if c.family == "large"]
_BY_NAME = {c.name: c for c in GOLDEN + LARGE}
AGREEMENT = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def _numpy(method):
    def solve(losses, p, gamma, tau):
        return (lmp_np.lmp_weights(losses, p, gamma, tau, method=method),
                lmp_np.lmp_value(losses, p, gamma, tau, method=method))

    return solve


def _torch(method, device="cpu"):
    def solve(losses, p, gamma, tau):
        x = torch.as_tensor(losses, device=device)
        return (lmp_torch.lmp_weights(x, p, gamma, tau, method=method),
                lmp_torch.lmp_value(x, p, gamma, tau, method=method))

    return solve


# cell -> (solver (losses, p, gamma, tau) -> (weights, value), device of a Torch cell, patches)
CELLS = {
    "numpy-auto": (_numpy("auto"), None, {}),
    "numpy-sort": (_numpy("sort"), None, {}),
    "numpy-select": (_numpy("select"), None, {"select_core": True}),
    "torch-auto": (_torch("auto"), "cpu", {}),
    "torch-sort": (_torch("sort"), "cpu", {}),
    "torch-select": (_torch("select"), "cpu", {"select_core": True}),  # the NumPy core on CPU tensors
    "torch-select-device": (_torch("select"), "cpu", {"device_paths": True}),  # radix selection, traced paths
    "torch-sort-device": (_torch("sort"), "cpu", {"device_paths": True}),  # torch.sort (CPU tensors sort in NumPy)
}
for _method in ("auto", "sort", "select"):
    CELLS[f"cuda-{_method}"] = (_torch(_method, "cuda"), "cuda", {"cuda": True})

DTYPES = [np.float64, np.float32]


def _cell_params(slow_cells=()):
    out = []
    for name, (_, _, patches) in CELLS.items():
        marks = []
        if patches.get("cuda"):
            marks.append(pytest.mark.skipif(not CUDA, reason="no CUDA device"))
        if name in slow_cells:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _key(losses, p, gamma, tau):
    data = np.ascontiguousarray(np.asarray(losses, dtype=np.float64)).tobytes()
    return hashlib.sha1(data).hexdigest(), float(p), float(gamma), float(tau)


@functools.lru_cache(maxsize=None)
def _reference(name):
    """NumPy's float64 sort path: the cells' common yardstick."""
    case = _BY_NAME[name]
    result = lmp_np.lmp_solve(case.losses, case.p, case.gamma, case.tau, method="sort")
    return result.weights, float(result.value)


class Recorder:
    """The kit's weight function for a cell; keeps each call's weights and value for the checks after the kit."""

    def __init__(self, solve, device):
        self.solve, self.seen = solve, {}
        self.fn = self._weights if device is None else torch_solver(self._tensor_weights, device=device)

    def _weights(self, losses, p, gamma, tau):
        w, v = self.solve(losses, p, gamma, tau)
        self.seen[_key(losses, p, gamma, tau)] = (w, v)
        return w

    def _tensor_weights(self, x, p, gamma, tau):
        w, v = self.solve(x, p, gamma, tau)
        self.seen[_key(x.cpu().numpy(), p, gamma, tau)] = (w.cpu().numpy(), v.cpu().numpy())
        return w


def _relerr(a, b):
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b), initial=0.0)) / scale


def _run_cell(cell, dtype, corpus, monkeypatch):
    solve, device, patches = CELLS[cell]
    if patches.get("select_core"):  # below SELECT_MIN_N the select method hands pools to the sort path
        monkeypatch.setattr(_numpy_select, "SELECT_MIN_N", 1)
    if patches.get("device_paths"):
        monkeypatch.setattr(_torch_paths, "_DEVICE_PATHS_ON_CPU", True)
    dtype = np.dtype(dtype)
    recorder = Recorder(solve, device)
    assert_conforms(recorder.fn, dtype=dtype, cases=corpus)
    runnable = [c for c in corpus if dtype == np.float64 or c.float32]
    assert runnable and len(recorder.seen) == len({_key(c.losses, c.p, c.gamma, c.tau) for c in runnable})
    tol = AGREEMENT[dtype]
    for case in runnable:
        w, v = recorder.seen[_key(case.losses, case.p, case.gamma, case.tau)]
        assert w.dtype == dtype and v.dtype == dtype and np.shape(v) == (), (case.name, w.dtype, v.dtype)
        ref_w, ref_v = _reference(case.name)
        assert _relerr(w, ref_w) <= tol, (case.name, _relerr(w, ref_w))
        assert abs(float(v) - ref_v) <= tol * max(abs(ref_v), 1e-300), (case.name, float(v), ref_v)


# The device paths cost about 20 ms a case on CPU: the fast loop runs every fourth case, the slow suite the rest.
FAST_STRIDE = {"torch-select-device": 4, "torch-sort-device": 4}
SLOW_CELLS = {"numpy-auto", "torch-auto", "cuda-auto"}  # on small pools auto is the sort path


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("cell", _cell_params(slow_cells=SLOW_CELLS))
def test_cell_on_the_corpus(cell, dtype, monkeypatch):
    """The kit's full corpus (about 1,100 cases with golden answers; float32: those representable)."""
    _run_cell(cell, dtype, GOLDEN[::FAST_STRIDE.get(cell, 1)], monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("cell", [c for c in _cell_params() if c.values[0] in FAST_STRIDE])
def test_cell_on_the_rest_of_the_corpus(cell, dtype, monkeypatch):
    """The cases test_cell_on_the_corpus leaves out."""
    stride = FAST_STRIDE[cell]
    _run_cell(cell, dtype, [c for i, c in enumerate(GOLDEN) if i % stride], monkeypatch)


# The kit's certificate judgement of a 2^20 pool costs about half a second, Torch's sort path on CPU more:
# numpy-sort, numpy-select (the NumPy cores, which auto and Torch's sort and select use on CPU) and the
# device radix selection take every large pool; the other cells a share (auto: p = inf and the dispatch).
LARGE_STRIDE = {"numpy-auto": 3, "torch-auto": 3, "torch-sort": 4, "torch-select": 4, "torch-sort-device": 4}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("cell", _cell_params())
def test_cell_on_large_pools(cell, dtype, monkeypatch):
    """Pools of 2^16 and 2^20 losses (30 % of them below 1e-7), judged by the certificate."""
    assert len(LARGE) == 20 and max(c.n for c in LARGE) == 2**20
    _run_cell(cell, dtype, LARGE[::LARGE_STRIDE.get(cell, 1)], monkeypatch)
