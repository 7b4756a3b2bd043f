"""The solver backends under test, behind one NumPy-in, NumPy-out signature."""

import numpy as np

import solvers.numpy as lmp_np


def _numpy(losses, p, gamma, tau, mask=None):
    return lmp_np.lmp_weights(losses, p, gamma, tau, mask=mask), lmp_np.lmp_value(losses, p, gamma, tau, mask=mask)


BACKENDS = {"numpy": _numpy}

try:
    import torch

    import solvers.torch as lmp_torch

    def _torch(losses, p, gamma, tau, mask=None):
        x = torch.as_tensor(np.asarray(losses))
        m = None if mask is None else torch.as_tensor(np.asarray(mask))
        g = gamma if np.ndim(gamma) == 0 else torch.as_tensor(np.asarray(gamma), dtype=x.dtype)
        t = tau if np.ndim(tau) == 0 else torch.as_tensor(np.asarray(tau), dtype=x.dtype)
        w = lmp_torch.lmp_weights(x, p, g, t, mask=m)
        v = lmp_torch.lmp_value(x, p, g, t, mask=m)
        return w.numpy(), v.numpy()

    BACKENDS["torch"] = _torch
except ImportError:  # pragma: no cover - the Torch backend is a required dependency
    pass
