"""Fuzzing beyond the fixed corpus: problems drawn by hypothesis, failures shrunk.

``fuzz_solver(fn)`` draws problems from ``lmp_theory.testing.strategies.instances`` (every
adversarial family, pools from 1 to thousands of losses, ``p`` from 1 to 1e6 and infinity, the
paper's and raw parameters), judges ``fn``'s weights against the duality certificate and the
canonical weights from its threshold (``oracle.certificate_answer``, which works at any
size), and on the first failure lets hypothesis shrink the problem to the smallest one that still
fails. The size is then shrunk as a dimension of its own (``smallest_size``): the length of the
failing pool is bisected, shorter lengths are tried from 1 up (a bug at some sizes only, such as
``n % 5 == 2``, is found at its smallest), and the remaining losses are simplified one by one. The
report's ``counterexample`` is that ``lmp_theory.instance.Instance`` and its ``code`` a Python
snippet that reproduces the verdict. Same seed, same examples.

Pools are drawn from 1 to ``max_size`` losses (default ``MAX_SIZE`` = 2^17, past the 2^16 where
kernels change strategy; sizes log-uniform above 300, so about one draw in 36 is above 2^16). Where the
drawn problems show no failure, the pools of ``size_ladder`` (the neighbours of every power of two from
2^10 to ``max_size``) are tried in order, so a bug above some size is found whatever hypothesis draws.
``isolate=True`` runs the code in a worker process, as ``lmp verify --solver --fuzz`` does.

Problems whose positive losses span more than 1e300 are not drawn: the certificate scales the
largest loss to about 1 and float64 cannot hold the rest. The corpus covers such spans (1e-300 to
1e300, subnormals) with its mpmath answers.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np

from solvers.parameters import paper_parameters

from ..instance import Instance
from .invoke import import_path
from .kit import TIME_LIMIT, run_and_judge
from .report import CaseResult, Report
from .verdict import TOLERANCES
from .worker import Worker

__all__ = ["MAX_SIZE", "check_instance", "fuzz_solver", "size_ladder", "smallest_size"]

MAX_SIZE = 2**17
SCAN = 200  # shorter lengths tried one by one, from 1 up, after the bisection


def check_instance(fn: Callable | Worker, instance: Instance, *, dtype=np.float64,
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


def fuzz_solver(fn: Callable | Worker, *, examples: int = 200, seed: int = 0, dtype=np.float64,
                canonical: bool = True, max_size: int = MAX_SIZE, time_limit: float | None = TIME_LIMIT,
                name: str | None = None, command: str = "", isolate: bool = False) -> Report:
    """Fuzz ``fn(losses, p, gamma, tau) -> weights`` (or a ``Worker``) with ``examples`` drawn problems.

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
        The largest pool drawn (module docs; ``lmp verify --fuzz N --max-n``).
    time_limit : float or None
        Seconds per call before it is reported as ``timeout`` (None: no limit).
    name : str, optional
        The report's name (default: ``fn``'s qualified name).
    command : str
        The command that reruns this check, for the reproducer.
    isolate : bool
        Run a function ``fn`` in a worker process forked from this one (as ``check_solver``).

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
    from hypothesis import reject  # here, not at the top: only a fuzz run pays for importing hypothesis

    from .strategies import instances, loss_vectors, shrunk_failure

    problems = instances(losses=loss_vectors(max_size=min(8, max_size), bulk=max_size))
    if dtype == np.float32:
        problems = problems.map(_in_float32).filter(lambda inst: inst is not None)
    allowed = {"pass"} if canonical else {"pass", "optimal-not-canonical"}
    calls = 0
    label = name or (fn.label if isinstance(fn, Worker) else getattr(fn, "__qualname__", repr(fn)))
    report = Report(label, str(dtype), canonical, command=command)
    with Worker.for_function(fn) if isolate and not isinstance(fn, Worker) else contextlib.nullcontext(fn) as solver:

        def verdict(instance: Instance) -> bool | None:
            """Whether ``instance`` fails; None if the oracle cannot judge it."""
            nonlocal calls
            if _span(instance.losses) > MAX_SPAN:
                return None
            calls += 1
            try:  # the code under test cannot raise from here (calls are recorded); the oracle can
                result = run_and_judge(solver, instance.losses, instance.p, instance.gamma, instance.tau, None,
                                       dtype=dtype, time_limit=time_limit)
            except (ArithmeticError, ValueError):  # a problem the oracle cannot judge is not drawn
                calls -= 1
                return None
            return result.status not in allowed

        def fails(instance: Instance) -> bool:
            failed = verdict(instance)
            if failed is None:
                reject()
            return failed

        found = shrunk_failure(problems, fails, budget=examples, seed=seed)
        if found is None:  # hypothesis' draws are random: the top of the size range is also tried in order
            found = next((inst for inst in size_ladder(max_size, seed) if verdict(inst)), None)
        if found is not None:
            found = smallest_size(found, lambda inst: bool(verdict(inst)))
            report.counterexample = found
            report.results = [check_instance(solver, found, dtype=dtype, time_limit=time_limit)]
            report.code = _reproducer(fn, found, dtype)
    report.examples = calls
    return report


def size_ladder(max_size: int, seed: int = 0):
    """Pools at the neighbours of every power of two from 2^10 up, and at ``max_size``: exponential
    losses with ties and zeros, the paper's parameters at p = 1.7 and ratio 0.25 (hypothesis draws
    about one pool in 36 from the top octave, so a bug above some size could go unseen)."""
    rng = np.random.default_rng(seed)
    sizes = {n + d for n in (2**k for k in range(10, max_size.bit_length())) for d in (-1, 0, 1)}
    for n in sorted(n for n in sizes | {max_size} if 1 <= n <= max_size):
        losses = rng.exponential(size=n)
        losses[::7], losses[1::5] = 0.0, 1.0
        yield Instance(losses, 1.7, *paper_parameters(n, 1.7, 0.25), 0.25)


def smallest_size(instance: Instance, fails: Callable[[Instance], bool], *, scan: int = SCAN) -> Instance:
    """The shortest failing prefix of ``instance``'s losses, then its losses simplified.

    The length is bisected (exact for a bug above some size), then the lengths from 1 up to
    ``scan`` below the bisection's are tried in order (for bugs at some sizes only); a prefix keeps
    ``paper_parameters`` of its own size when the instance has a ratio. Last, each loss is replaced
    by 0, 1 or itself rounded where the instance still fails.
    """
    def prefix(n: int) -> Instance:
        if instance.ratio is None:
            return Instance(instance.losses[:n].copy(), instance.p, instance.gamma, instance.tau, None)
        gamma, tau = paper_parameters(n, instance.p, instance.ratio)
        return Instance(instance.losses[:n].copy(), instance.p, gamma, tau, instance.ratio)

    lo, hi = 1, instance.n  # the prefix of length hi fails
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(prefix(mid)):
            hi = mid
        else:
            lo = mid + 1
    best = next((prefix(n) for n in range(1, min(hi, scan + 1)) if fails(prefix(n))), prefix(hi))
    if best.n == instance.n:
        best = instance  # nothing shorter fails: keep the parameters hypothesis found
    losses = best.losses.copy()
    for i in range(losses.size if losses.size <= scan else 0):
        for simpler in (0.0, 1.0, float(np.round(losses[i]))):
            if simpler == losses[i]:
                break
            trial = losses.copy()
            trial[i] = simpler
            if fails(Instance(trial, best.p, best.gamma, best.tau, best.ratio)):
                losses = trial
                break
    return Instance(losses, best.p, best.gamma, best.tau, best.ratio)


def _reproducer(fn: Callable | Worker, instance: Instance, dtype: np.dtype) -> str:
    if isinstance(fn, Worker):
        path = tuple(fn.spec.split(":", 1)) if fn.spec else None
        qualname = path[1] if path else "fn"
    else:
        path, qualname = import_path(fn), getattr(fn, "__qualname__", "fn")
    lines = ["import math", "import numpy as np", "from lmp_theory.instance import Instance",
             "from lmp_theory.testing import check_instance"]
    lines.append(f"from {path[0]} import {qualname.split('.')[0]}" if path else f"# fn = <your function {qualname}>")
    call = qualname if path else "fn"
    flag = "" if dtype == np.float64 else ", dtype=np.float32"
    lines.append(f"print(check_instance({call}, {instance!r}{flag}))")
    return "\n".join(lines)
