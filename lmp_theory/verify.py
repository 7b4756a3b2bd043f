"""``lmp verify``: the built-in solvers, judged by the conformance kit on the corpus.

Every built-in solver (NumPy, and Torch where it imports; the default and the ``select`` method; float64
and float32) is one weight function that ``lmp_theory.testing.check_solver`` runs and judges like any
outside implementation: same verdicts, same tolerances (``verdict.TOLERANCES``), same ``Report``. The
oracle is named (``testing.oracle``): ``"reference"`` by default here, the cvxpy reference refined and
verified (pools above ``oracle.CVXPY_MAX_N`` = 5,000 losses: the duality certificate), or ``"golden"``
(the stored mpmath answers) or ``"certificate"``. With the reference as the oracle, ``reference_report``
adds its own row: the reference's certificate, and how far its raw conic answer was from its refinement.

Each built-in comes with the ``lmp verify --solver ...`` command that checks it alone, so every
failing case has a one-line reproducer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from solvers import numpy as lmp_np

from .corpus import Case
from .reference import GAP_TOLERANCE
from .testing.kit import TIME_LIMIT, check_solver, torch_solver
from .testing.oracle import ReferenceOracle, oracle_named
from .testing.report import CaseResult, Report

__all__ = ["Builtin", "builtin_solvers", "numpy_select", "torch_select", "reference_report", "verify_builtins"]


@dataclass(frozen=True)
class Builtin:
    """One built-in solver as the kit sees it: ``fn(losses, p, gamma, tau) -> weights`` in ``dtype``,
    and the ``lmp verify`` arguments that check it alone (``lmp verify --solver`` + ``flags``)."""

    name: str
    fn: Callable
    dtype: np.dtype
    flags: str


def numpy_select(losses, p, gamma, tau):
    """The NumPy solver's selection path (``method="select"``)."""
    return lmp_np.lmp_weights(losses, p, gamma, tau, method="select")


def torch_select(losses, p, gamma, tau):
    """The Torch solver's selection path (``method="select"``), on a tensor."""
    from solvers import torch as lmp_torch  # Torch is optional for lmp verify

    return lmp_torch.lmp_weights(losses, p, gamma, tau, method="select")


def builtin_solvers(torch_devices: bool = True) -> list[Builtin]:
    """The built-in solvers, NumPy first; Torch on CPU (and CUDA if available) when it imports."""
    out = []
    for label, fn, spec in [("numpy", lmp_np.lmp_weights, "solvers.numpy:lmp_weights"),
                            ("numpy select", numpy_select, "lmp_theory.verify:numpy_select")]:
        for dtype in ("float64", "float32"):
            out.append(Builtin(f"{label} {dtype}", fn, np.dtype(dtype), _flags(spec, dtype)))
    if torch_devices:
        out += _torch_solvers()
    return out


def _torch_solvers() -> list[Builtin]:
    try:
        import torch

        from solvers import torch as lmp_torch
    except ImportError:  # the Torch backend is optional for this command
        return []
    out = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for label, fn, spec in [("", lmp_torch.lmp_weights, "solvers.torch:lmp_weights"),
                                (" select", torch_select, "lmp_theory.verify:torch_select")]:
            for dtype in ("float64", "float32"):  # the tensors take the dtype of the losses the kit passes
                out.append(Builtin(f"torch {device}{label} {dtype}", torch_solver(fn, device=device),
                                   np.dtype(dtype), _flags(spec, dtype, f" --torch --device {device}")))
    return out


def _flags(spec: str, dtype: str, extra: str = "") -> str:
    return f"{spec}{extra}" + (f" --dtype {dtype}" if dtype != "float64" else "")


def reference_report(cases: list[Case], oracle: ReferenceOracle) -> Report:
    """The reference's own row: per case its certificate (gap, violation) and how far the raw conic
    answer was from the refined one, on the problem's scale (``gamma * max|l|`` for values,
    ``min(gamma, tau)`` for weights). A case passes when the reference verified itself (KKT and
    certificate within ``GAP_TOLERANCE``); one whose reference failed is ``raised``."""
    report = Report("cvxpy+refine", "float64", compares="raw vs refined")
    for case in cases:
        sol = oracle.solution(case)
        base = dict(name=case.name, family=case.family, n=case.n, p=case.p, ratio=case.ratio)
        if sol is None:
            if case.name in oracle.errors:
                report.results.append(CaseResult(**base, status="raised", message=oracle.errors[case.name]))
            continue  # above the reference's size limit
        value_scale = max(abs(sol.value), case.gamma * float(np.max(np.abs(case.losses))))
        weight_scale = max(float(np.max(sol.weights)), min(case.gamma, case.tau))
        report.results.append(CaseResult(
            **base, status="pass", value_error=abs(sol.raw_value - sol.value) / value_scale if value_scale else 0.0,
            weight_error=float(np.max(np.abs(sol.raw_weights - sol.weights))) / weight_scale,
            violation=sol.certificate.violation, gap=abs(sol.certificate.relative_gap), value_tol=GAP_TOLERANCE,
            weight_tol=math.nan, message="; ".join(sol.notes), seconds=sol.solve_seconds))
    return report


def verify_builtins(cases: list[Case], *, oracle: str = "reference", torch_devices: bool = True,
                    time_limit: float | None = TIME_LIMIT) -> list[Report]:
    """One kit report per built-in solver on ``cases``, judged against the named oracle; with the
    reference as the oracle, ``reference_report`` comes first."""
    answers = oracle_named(oracle)
    reports = [reference_report(cases, answers)] if isinstance(answers, ReferenceOracle) else []
    oracle_flag = "" if oracle == "golden" else f" --oracle {oracle}"
    for solver in builtin_solvers(torch_devices):
        selected = [c for c in cases if solver.dtype == np.float64 or c.float32]
        if selected:
            reports.append(check_solver(solver.fn, dtype=solver.dtype, cases=selected, name=solver.name,
                                        time_limit=time_limit, oracle=answers,
                                        command=f"lmp verify --solver {solver.flags}{oracle_flag}"))
            reports[-1].compares = oracle
    return reports
