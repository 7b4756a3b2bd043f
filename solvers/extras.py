"""Optional dependencies: import one, or fail with an error that names the extra installing it.

The core install (NumPy solvers, certificate, conformance kit) needs numpy, mpmath and hypothesis
only. Everything else is an extra of the ``lmp-theory`` distribution:

* ``torch``: the Torch solvers and loss layer (``solvers.torch``);
* ``exact``: the cvxpy reference (``lmp_theory.reference``), with Clarabel;
* ``symbolic``: the claims registry's sympy proofs (``lmp_theory.claims``);
* ``all``: the three; ``dev``: all, plus the test, notebook and documentation tools;
* ``fast``: numba, which compiles the few loops of ``solvers._numba_loops`` (used where installed,
  never required: without it the same answers come from NumPy).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRA_OF", "MissingExtra", "import_extra"]

EXTRA_OF = {"torch": "torch", "cvxpy": "exact", "clarabel": "exact", "sympy": "symbolic"}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def import_extra(module: str, needed_by: str) -> ModuleType:
    """``module``, imported; if it is not installed, ``MissingExtra`` (an ``ImportError``) saying which extra
    installs it. An installed module that fails to import (a broken dependency of its own) raises as it is."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != top:  # the module is there but fails to import something else: not a missing extra
            raise
        extra = EXTRA_OF[top]
        raise MissingExtra(f"{needed_by} needs {module}, which the '{extra}' extra installs: "
                          f"pip install 'lmp-theory[{extra}]'") from exc
