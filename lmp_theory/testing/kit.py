"""The conformance kit: regression-test any LMP implementation against the exact answers.

``check_solver(fn)`` runs ``fn(losses, p, gamma, tau) -> weights`` on the corpus and gives every
case one status (``verdict`` has the full list and the tolerances): ``pass``,
``optimal-not-canonical`` (a failure only when canonical weights are demanded, as gradients need),
``wrong-weights``, ``suboptimal``, ``infeasible``, ``non-finite``, ``wrong-shape``, ``wrong-type``,
``mutates-input`` (the code changed the losses it was given), ``timeout`` (the case ran past the
time limit), ``crashed`` (the worker process exited, was killed or broke the protocol) or
``raised`` (an exception, ``sys.exit`` included). What the implementation prints is captured (a
bounded amount), not mixed into the report (``Report.table(verbose=True)`` shows it).

By default ``fn`` runs in the judge's process (``invoke``: for debuggers and GPU tensors; its docs
say what that mode cannot protect against). ``isolate=True`` runs it in a worker process of its own
(``worker``), as ``lmp verify --solver`` always does; ``check_solver`` also takes a ``Worker``
itself (``Worker.for_spec``, ``Worker.for_command`` for a program in any language).

Expected answers come from an oracle independent of the solvers (``oracle``), chosen with
``oracle=``: by default the mpmath evaluation of the closed form stored in ``golden.npz`` for the
corpus and the duality certificate (an exact dual bound and the threshold that fixes the canonical
weights) for the large pools; ``oracle_named("reference")`` (the cvxpy reference) or
``certificate_only`` instead. ``lmp verify`` judges the built-in solvers with the same functions.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
from dataclasses import replace
from typing import Callable, Iterable

import numpy as np

from solvers.extras import import_extra

from ..corpus import Case, cases, size_cases
from . import golden
from .golden import Expected
from .invoke import call, import_path, mutation
from .oracle import Oracle, certificate_answer, stored_answer
from .report import CaseResult, Report
from .verdict import TOLERANCES, judge
from .worker import Worker

STATUSES = ("pass", "optimal-not-canonical", "wrong-weights", "suboptimal", "infeasible", "non-finite",
            "wrong-shape", "wrong-type", "mutates-input", "timeout", "crashed", "raised")
TIME_LIMIT = 10.0  # seconds per case


def conformance_cases(*, large: bool = False, sizes: bool = False, names: Iterable[str] | None = None,
                      families: Iterable[str] | None = None, p: Iterable[float] | None = None) -> list[Case]:
    """The kit's cases: the full corpus (about 1,100, golden answers), optionally the ``sizes`` family
    (72 pools of 1 to 2^20 + 1 losses) and the large pools, both judged by the certificate.

    ``check_solver``'s default is ``conformance_cases(sizes=True)``. ``names``, ``families`` and
    ``p`` keep only the cases with those names, families or exponents; naming (or asking for the
    family of) a sizes case or a large pool selects it without ``sizes=True`` or ``large=True``.
    """
    names = None if names is None else set(names)
    families = None if families is None else set(families)
    out = golden.golden_cases()
    wanted = (names or set()) | (families or set())
    if sizes or "sizes" in wanted or any(name.startswith("sizes-") for name in wanted):
        out += size_cases()
    if large or "large" in wanted or (names is not None and not names <= {c.name for c in out}):
        out += [c for c in cases(large=True) if c.family == "large"]
    return select_cases(out, names=names, families=families, p=p)


def select_cases(corpus: Iterable[Case], *, names: Iterable[str] | None = None,
                 families: Iterable[str] | None = None, p: Iterable[float] | None = None) -> list[Case]:
    """The cases of ``corpus`` with those names, families and exponents (None: any)."""
    out = list(corpus)
    if names is not None:
        wanted = set(names)  # once: an iterator would be spent by the first case
        out = [c for c in out if c.name in wanted]
    if families is not None:
        wanted = set(families)
        out = [c for c in out if c.family in wanted]
    if p is not None:
        wanted = {float(x) for x in p}
        out = [c for c in out if c.p in wanted]
    return out


def check_case(fn: Callable | Worker, case: Case, *, dtype=np.float64, time_limit: float | None = TIME_LIMIT,
               oracle: Oracle = stored_answer) -> CaseResult:
    """Run ``fn`` (a function, or a ``Worker``) on one case and classify the result against
    ``oracle(case)`` (see the module docs)."""
    return run_and_judge(fn, case.losses, case.p, case.gamma, case.tau, oracle(case), dtype=dtype,
                         time_limit=time_limit, name=case.name, family=case.family, ratio=case.ratio)


def run_and_judge(fn: Callable | Worker, losses: np.ndarray, p: float, gamma: float, tau: float,
                  expected: Expected | None, *, dtype=np.float64, time_limit: float | None = TIME_LIMIT,
                  name: str = "", family: str = "", ratio: float | None = None) -> CaseResult:
    """Call ``fn`` (in this process, or the ``Worker``'s) on ``losses`` in ``dtype`` (exactly
    representable there) and judge its answer.

    ``expected=None``: the certificate's answer, its conditioning slack computed only for an
    answer that fails without it.
    """
    dtype = np.dtype(dtype)
    base = dict(name=name, family=family, n=int(losses.size), p=p, ratio=ratio)
    with np.errstate(over="ignore"):
        cast = losses.astype(dtype)
    if isinstance(fn, Worker):
        outcome = fn.call(cast, p, gamma, tau, time_limit=time_limit)
    else:
        given = cast.copy()
        outcome = call(fn, cast, p, gamma, tau, time_limit=time_limit)
        changed = mutation(given, cast)
        if changed:
            outcome = replace(outcome, value=None, status="mutates-input", error=changed)
    if not outcome.returned:
        message = outcome.error or f"no answer within the time limit of {time_limit:g} s"
        return CaseResult(**base, status=outcome.status, message=message, output=outcome.output,
                          seconds=outcome.seconds)
    if expected is None:
        verdict = judge(outcome.value, losses, p, gamma, tau, _certified(losses, p, gamma, tau), TOLERANCES[dtype])
        if verdict.status != "pass":
            expected = certificate_answer(losses, p, gamma, tau)
    if expected is not None:
        verdict = judge(outcome.value, losses, p, gamma, tau, expected, TOLERANCES[dtype])
    return CaseResult(**base, status=verdict.status, value_error=verdict.value_error,
                      weight_error=verdict.weight_error, violation=verdict.violation, message=verdict.message,
                      value_tol=verdict.value_tol, weight_tol=verdict.weight_tol, output=outcome.output,
                      gap=verdict.gap, seconds=outcome.seconds)


_CERTIFIED: collections.OrderedDict = collections.OrderedDict()  # the latest certificate answers, by problem
CERTIFIED_BYTES = 96 * 2**20  # at most this much of their weights kept (the whole sizes family: 52 MB)


def _certified(losses: np.ndarray, p: float, gamma: float, tau: float) -> Expected:
    """``certificate_answer`` without slack, remembered: several solvers judged on one problem (``lmp
    verify``'s eight built-ins on the sizes family) need it computed once."""
    digest = hashlib.sha1(np.ascontiguousarray(losses, dtype=np.float64).tobytes())
    digest.update(np.array([p, gamma, tau], dtype=np.float64).tobytes())
    key = digest.hexdigest()
    if key in _CERTIFIED:
        _CERTIFIED.move_to_end(key)
        return _CERTIFIED[key]
    answer = _CERTIFIED[key] = certificate_answer(losses, p, gamma, tau, slack=False)
    while sum(a.weights.nbytes for a in _CERTIFIED.values()) > CERTIFIED_BYTES and len(_CERTIFIED) > 1:
        _CERTIFIED.popitem(last=False)
    return answer


def check_solver(fn: Callable | Worker, *, dtype=np.float64, cases: list[Case] | None = None,
                 canonical: bool = True, name: str | None = None, time_limit: float | None = TIME_LIMIT,
                 command: str | None = None, oracle: Oracle = stored_answer, isolate: bool = False) -> Report:
    """Check ``fn(losses, p, gamma, tau) -> weights`` (1-D NumPy in, array-like out) on the corpus.

    Parameters
    ----------
    fn : callable or Worker
        The implementation under test; see ``batched`` and ``torch_solver`` for adapters. A
        ``Worker`` (``worker.Worker.for_spec``, ``for_command``) runs it in a process of its own.
    dtype : numpy dtype
        float64 (tolerance 1e-10) or float32 (1e-5); losses are passed in this dtype and cases
        whose losses are not representable in float32 are left out for float32.
    cases : list of Case, optional
        Defaults to ``conformance_cases(sizes=True)`` (the full corpus with golden answers and
        one pool of every size from 1 to 2^20 + 1). Must not be empty: a check of nothing proves
        nothing.
    canonical : bool
        Demand the canonical (least-norm) maximizer, as back-propagation through LMP needs.
        With False, ``optimal-not-canonical`` is reported but not counted as a failure.
    name : str, optional
        The report's name (default: ``fn``'s qualified name).
    time_limit : float or None
        Seconds per case before it is reported as ``timeout`` (None: no limit).
    command : str, optional
        The ``lmp verify`` command that runs this check, for the reproducers; by default built
        from ``fn``'s module and name when it can be imported.
    oracle : callable, optional
        ``case -> Expected | None`` (None: the certificate's answer). Default: the golden answers,
        the certificate for the sizes family and the large pools; see ``oracle.oracle_named``.
    isolate : bool
        Run a function ``fn`` in a worker process forked from this one (``Worker.for_function``):
        exits, crashes, hangs, forks, signals, threads, file-descriptor output and changes to the
        kit's state stay in the worker. False (the default): in this process (``invoke.call``).
    """
    dtype = np.dtype(dtype)
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    if not isinstance(isolate, bool):
        raise TypeError(f"isolate must be True or False, got {isolate!r}")
    selected = conformance_cases(sizes=True) if cases is None else list(cases)
    runnable = [c for c in selected if dtype == np.float64 or c.float32]
    if not runnable:
        raise ValueError(f"cases must hold at least one case{' representable in float32' if selected else ''}; "
                         f"got {len(selected)} case(s) and nothing to check")
    if command is None:
        command = "" if isinstance(fn, Worker) else _command_for(fn, dtype, canonical)
    label = fn.label if isinstance(fn, Worker) else getattr(fn, "__qualname__", repr(fn))
    report = Report(name or label, str(dtype), canonical, command=command)
    with Worker.for_function(fn) if isolate and not isinstance(fn, Worker) else _as_is(fn) as solver:
        report.results = [check_case(solver, case, dtype=dtype, time_limit=time_limit, oracle=oracle)
                          for case in runnable]
    return report


@contextlib.contextmanager
def _as_is(fn):
    yield fn


def _command_for(fn: Callable, dtype: np.dtype, canonical: bool) -> str:
    path = import_path(fn)
    if path is None:
        return ""
    flags = ("" if dtype == np.float64 else f" --dtype {dtype}") + ("" if canonical else " --any-maximizer")
    return f"lmp verify --solver {path[0]}:{path[1]}{flags}"


def assert_conforms(fn: Callable, **kwargs) -> Report:
    """``check_solver``, raising ``AssertionError`` with the breakdown and the worst failures."""
    report = check_solver(fn, **kwargs)
    if not report.passed:
        raise AssertionError(f"{report.summary()}\n{report.breakdown_table()}\n\n{report.table()}")
    return report


def batched(fn: Callable) -> Callable:
    """Adapt ``fn(losses (..., n), p, gamma, tau) -> weights (..., n)`` to the kit's 1-D calls."""
    def one_pool(losses, p, gamma, tau):
        return fn(losses[None, :], p, gamma, tau)[0]

    one_pool.__qualname__ = f"batched({getattr(fn, '__qualname__', fn)})"
    return one_pool


def torch_solver(fn: Callable, *, device="cpu", dtype=None) -> Callable:
    """Adapt a Torch ``fn(losses tensor, p, gamma, tau) -> weights tensor``; losses go to ``device``
    in ``dtype`` (default: the NumPy dtype the kit passes); the kit reads the returned tensor."""
    torch = import_extra("torch", "torch_solver")

    def on_device(losses, p, gamma, tau):
        x = torch.as_tensor(losses, device=device, dtype=dtype)
        return fn(x, p, gamma, tau)  # the kit converts tensors itself (and rejects complex ones)

    on_device.__qualname__ = f"torch({getattr(fn, '__qualname__', fn)}, {device})"
    return on_device
