"""The conformance kit: regression-test any LMP implementation against the exact answers.

``check_solver(fn)`` runs ``fn(losses, p, gamma, tau) -> weights`` on the corpus and gives every
case one status (``verdict`` has the full list and the tolerances): ``pass``,
``optimal-not-canonical`` (a failure only when canonical weights are demanded, as gradients need),
``wrong-weights``, ``suboptimal``, ``infeasible``, ``non-finite``, ``wrong-shape``, ``wrong-type``,
``timeout`` (the case ran past the time limit) or ``raised`` (an exception, ``sys.exit`` included).
What the implementation prints is captured, not mixed into the report (``Report.table(verbose=True)``
shows it).

Expected answers come from an oracle independent of the solvers (``oracle``), chosen with
``oracle=``: by default the mpmath evaluation of the closed form stored in ``golden.npz`` for the
corpus and the duality certificate (an exact dual bound and the threshold that fixes the canonical
weights) for the large pools; ``oracle_named("reference")`` (the cvxpy reference) or
``certificate_only`` instead. ``lmp verify`` judges the built-in solvers with the same functions.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from solvers.extras import import_extra

from ..corpus import Case, cases
from . import golden
from .golden import Expected
from .invoke import call, import_path
from .oracle import Oracle, certificate_answer, stored_answer
from .report import CaseResult, Report
from .verdict import TOLERANCES, judge

STATUSES = ("pass", "optimal-not-canonical", "wrong-weights", "suboptimal", "infeasible", "non-finite",
            "wrong-shape", "wrong-type", "timeout", "raised")
TIME_LIMIT = 10.0  # seconds per case


def conformance_cases(*, large: bool = False, names: Iterable[str] | None = None,
                      families: Iterable[str] | None = None, p: Iterable[float] | None = None) -> list[Case]:
    """The kit's cases: the full corpus (about 1,100, golden answers), optionally the large pools.

    ``names``, ``families`` and ``p`` keep only the cases with those names, families or exponents;
    naming a large pool selects it without ``large=True``.
    """
    names = None if names is None else set(names)
    out = golden.golden_cases()
    if large or (names is not None and not names <= {c.name for c in out}):
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


def check_case(fn: Callable, case: Case, *, dtype=np.float64, time_limit: float | None = TIME_LIMIT,
               oracle: Oracle = stored_answer) -> CaseResult:
    """Run ``fn`` on one case and classify the result against ``oracle(case)`` (see the module docs)."""
    return run_and_judge(fn, case.losses, case.p, case.gamma, case.tau, oracle(case), dtype=dtype,
                         time_limit=time_limit, name=case.name, family=case.family, ratio=case.ratio)


def run_and_judge(fn: Callable, losses: np.ndarray, p: float, gamma: float, tau: float, expected: Expected | None,
                  *, dtype=np.float64, time_limit: float | None = TIME_LIMIT, name: str = "", family: str = "",
                  ratio: float | None = None) -> CaseResult:
    """Call ``fn`` on ``losses`` in ``dtype`` (exactly representable there) and judge its answer.

    ``expected=None``: the certificate's answer, its conditioning slack computed only for an
    answer that fails without it.
    """
    dtype = np.dtype(dtype)
    base = dict(name=name, family=family, n=int(losses.size), p=p, ratio=ratio)
    with np.errstate(over="ignore"):
        cast = losses.astype(dtype)
    outcome = call(fn, cast, p, gamma, tau, time_limit=time_limit)
    if outcome.timed_out:
        return CaseResult(**base, status="timeout", output=outcome.output, seconds=outcome.seconds,
                          message=f"no answer within the time limit of {time_limit:g} s")
    if outcome.error:
        return CaseResult(**base, status="raised", message=outcome.error, output=outcome.output,
                          seconds=outcome.seconds)
    if expected is None:
        verdict = judge(outcome.value, losses, p, gamma, tau, certificate_answer(losses, p, gamma, tau, slack=False),
                        TOLERANCES[dtype])
        if verdict.status != "pass":
            expected = certificate_answer(losses, p, gamma, tau)
    if expected is not None:
        verdict = judge(outcome.value, losses, p, gamma, tau, expected, TOLERANCES[dtype])
    return CaseResult(**base, status=verdict.status, value_error=verdict.value_error,
                      weight_error=verdict.weight_error, violation=verdict.violation, message=verdict.message,
                      value_tol=verdict.value_tol, weight_tol=verdict.weight_tol, output=outcome.output,
                      gap=verdict.gap, seconds=outcome.seconds)


def check_solver(fn: Callable, *, dtype=np.float64, cases: list[Case] | None = None, canonical: bool = True,
                 name: str | None = None, time_limit: float | None = TIME_LIMIT, command: str | None = None,
                 oracle: Oracle = stored_answer) -> Report:
    """Check ``fn(losses, p, gamma, tau) -> weights`` (1-D NumPy in, array-like out) on the corpus.

    Parameters
    ----------
    fn : callable
        The implementation under test; see ``batched`` and ``torch_solver`` for adapters.
    dtype : numpy dtype
        float64 (tolerance 1e-10) or float32 (1e-5); losses are passed in this dtype and cases
        whose losses are not representable in float32 are left out for float32.
    cases : list of Case, optional
        Defaults to ``conformance_cases`` (the full corpus with golden answers). Must not be
        empty: a check of nothing proves nothing.
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
        the certificate for the large pools; see ``oracle.oracle_named`` for the others.
    """
    dtype = np.dtype(dtype)
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    selected = conformance_cases() if cases is None else list(cases)
    runnable = [c for c in selected if dtype == np.float64 or c.float32]
    if not runnable:
        raise ValueError(f"cases must hold at least one case{' representable in float32' if selected else ''}; "
                         f"got {len(selected)} case(s) and nothing to check")
    if command is None:
        command = _command_for(fn, dtype, canonical)
    report = Report(name or getattr(fn, "__qualname__", repr(fn)), str(dtype), canonical, command=command)
    report.results = [check_case(fn, case, dtype=dtype, time_limit=time_limit, oracle=oracle) for case in runnable]
    return report


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
