"""Fuzzing beyond the fixed corpus: problems drawn by hypothesis, failures shrunk.

``fuzz_solver(fn)`` draws problems from ``lmp_theory.testing.strategies.instances`` (every
adversarial family, pools from 1 to thousands of losses, ``p`` from 1 to 1e6 and infinity, the
paper's and raw parameters), judges ``fn``'s weights against the duality certificate and the
canonical weights from its threshold (``oracle.certificate_answer``, which works at any
size), and on the first failure lets hypothesis shrink the problem to the smallest one that still
fails. The report's ``counterexample`` is that ``lmp_theory.instance.Instance`` and its
``code`` a Python snippet that reproduces the verdict. Same seed, same examples.

Problems whose positive losses span more than 1e300 are not drawn: the certificate scales the
largest loss to about 1 and float64 cannot hold the rest. The corpus covers such spans (1e-300 to
1e300, subnormals) with its mpmath answers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import reject

from ..instance import Instance
from .invoke import import_path
from .kit import TIME_LIMIT, run_and_judge
from .report import CaseResult, Report
from .strategies import instances, loss_vectors, shrunk_failure
from .verdict import TOLERANCES

__all__ = ["check_instance", "fuzz_solver"]


def check_instance(fn: Callable, instance: Instance, *, dtype=np.float64,
                   time_limit: float | None = TIME_LIMIT) -> CaseResult:
    """Run ``fn`` on one ``lmp_theory.instance.Instance`` and judge it against the certificate."""
    return run_and_judge(fn, instance.losses, instance.p, instance.gamma, instance.tau, None, dtype=dtype,
                         time_limit=time_limit, name=f"fuzz n={instance.n} p={instance.p:g}", family="fuzz",
                         ratio=instance.ratio)


MAX_SPAN = 1e300  # the certificate works in float64 after scaling the largest loss to ~1


def _span(losses: np.ndarray) -> float:
    """Largest over smallest positive loss (1 without positive losses)."""
    positive = losses[losses > 0]
    if positive.size == 0:
        return 1.0
    with np.errstate(over="ignore"):
        return float(positive.max() / positive.min())


def _in_float32(instance: Instance) -> Instance | None:
    with np.errstate(over="ignore"):
        losses = instance.losses.astype(np.float32).astype(np.float64)
    if not np.all(np.isfinite(losses)):
        return None
    return Instance(losses, instance.p, instance.gamma, instance.tau, instance.ratio)


def fuzz_solver(fn: Callable, *, examples: int = 200, seed: int = 0, dtype=np.float64, canonical: bool = True,
                max_size: int = 3000, time_limit: float | None = TIME_LIMIT, name: str | None = None,
                command: str = "") -> Report:
    """Fuzz ``fn(losses, p, gamma, tau) -> weights`` with ``examples`` drawn problems.

    Parameters
    ----------
    fn : callable
        The implementation under test, as for ``check_solver``.
    examples : int
        How many problems to try (shrinking a failure costs extra calls).
    seed : int
        The examples are the same for the same seed.
    dtype : numpy dtype
        float64 or float32 (then the drawn losses are first rounded to float32).
    canonical : bool
        Demand the canonical maximizer (``optimal-not-canonical`` fails); False accepts any optimum.
    max_size : int
        The largest pool drawn (sizes are log-uniform above 8, so a few hundred is typical).
    time_limit : float or None
        Seconds per call before it is reported as ``timeout`` (None: no limit).
    name : str, optional
        The report's name (default: ``fn``'s qualified name).
    command : str
        The command that reruns this check, for the reproducer.

    Returns
    -------
    Report
        ``passed``; ``counterexample`` (the shrunk ``lmp_theory.instance.Instance``, or
        None) with its verdict in ``results`` and a reproducer in ``code``; ``examples`` is the
        number of calls made.
    """
    dtype = np.dtype(dtype)
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be an int >= 1, got {examples!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f"max_size must be an int >= 1, got {max_size!r}")
    problems = instances(losses=loss_vectors(max_size=min(8, max_size), bulk=max_size))
    if dtype == np.float32:
        problems = problems.map(_in_float32).filter(lambda inst: inst is not None)
    allowed = {"pass"} if canonical else {"pass", "optimal-not-canonical"}
    calls = 0

    def fails(instance: Instance) -> bool:
        nonlocal calls
        if _span(instance.losses) > MAX_SPAN:
            reject()
        calls += 1
        try:  # the code under test cannot raise from here (calls are recorded); the oracle can
            result = run_and_judge(fn, instance.losses, instance.p, instance.gamma, instance.tau, None,
                                   dtype=dtype, time_limit=time_limit)
        except (ArithmeticError, ValueError):  # a problem the oracle cannot judge is not drawn
            calls -= 1
            reject()
        return result.status not in allowed

    label = name or getattr(fn, "__qualname__", repr(fn))
    report = Report(label, str(dtype), canonical, command=command)
    found = shrunk_failure(problems, fails, budget=examples, seed=seed)
    report.examples = calls
    if found is not None:
        report.counterexample = found
        report.results = [check_instance(fn, found, dtype=dtype, time_limit=time_limit)]
        report.code = _reproducer(fn, found, dtype)
    return report


def _reproducer(fn: Callable, instance: Instance, dtype: np.dtype) -> str:
    path = import_path(fn)
    qualname = getattr(fn, "__qualname__", "fn")
    lines = ["import math", "import numpy as np", "from lmp_theory.instance import Instance",
             "from lmp_theory.testing import check_instance"]
    lines.append(f"from {path[0]} import {qualname.split('.')[0]}" if path else f"# fn = <your function {qualname}>")
    call = qualname if path else "fn"
    flag = "" if dtype == np.float64 else ", dtype=np.float32"
    lines.append(f"print(check_instance({call}, {instance!r}{flag}))")
    return "\n".join(lines)
