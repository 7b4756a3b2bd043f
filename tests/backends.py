"""The solver backends under test, behind one NumPy-in, NumPy-out signature.

``numpy`` and ``torch`` are the default method; the ``-select`` backends run the selection core
itself: ``method="select"`` hands pools below ``SELECT_MIN_N`` (4,096) losses to the sort path, which
would make them the default backends again on the small pools that properties and regressions draw.
"""

import contextlib

import numpy as np

import solvers.numpy as lmp_np
from solvers import _numpy_select


@contextlib.contextmanager
def _select_core(method):
    if method != "select":
        yield
        return
    saved, _numpy_select.SELECT_MIN_N = _numpy_select.SELECT_MIN_N, 1
    try:
        yield
    finally:
        _numpy_select.SELECT_MIN_N = saved


def _numpy(method):
    def solve(losses, p, gamma, tau, mask=None):
        with _select_core(method):
            return (lmp_np.lmp_weights(losses, p, gamma, tau, mask=mask, method=method),
                    lmp_np.lmp_value(losses, p, gamma, tau, mask=mask, method=method))

    return solve


BACKENDS = {"numpy": _numpy("auto"), "numpy-select": _numpy("select")}

try:
    import torch

    import solvers.torch as lmp_torch

    def _torch(method):
        def solve(losses, p, gamma, tau, mask=None):
            x = torch.as_tensor(np.asarray(losses))
            m = None if mask is None else torch.as_tensor(np.asarray(mask))
            g = gamma if np.ndim(gamma) == 0 else torch.as_tensor(np.asarray(gamma), dtype=x.dtype)
            t = tau if np.ndim(tau) == 0 else torch.as_tensor(np.asarray(tau), dtype=x.dtype)
            with _select_core(method):
                w = lmp_torch.lmp_weights(x, p, g, t, mask=m, method=method)
                v = lmp_torch.lmp_value(x, p, g, t, mask=m, method=method)
            return w.numpy(), v.numpy()

        return solve

    BACKENDS["torch"] = _torch("auto")
    BACKENDS["torch-select"] = _torch("select")
except ImportError:  # pragma: no cover - the Torch backend is a required dependency
    pass
