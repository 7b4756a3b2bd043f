"""``lmp verify``: the built-in solvers against the exact reference on the corpus.

For every case of ``lmp_theory.corpus`` the cvxpy reference (``lmp_theory.reference.solve``,
refined and verified) gives the canonical weights and the value; pools too large for cvxpy are
checked by their duality certificate alone. Each solver is then measured on every case: value
error (relative), weight error (relative to the largest reference weight), the certificate's
relative gap and the relative infeasibility of its weights, against the tolerances of
``docs/spec.md`` ("Accuracy") (1e-10 in float64, 1e-5 in float32).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .certificate import certify
from .corpus import Case

__all__ = ["Row", "TOLERANCE", "builtin_solvers", "compute_references", "measure", "format_table"]

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
CVXPY_MAX_N = 5000


@dataclass
class Row:
    """One line of the verification table: the worst figures of one solver over the corpus."""

    solver: str
    tolerance: float
    cases: int = 0
    value_error: float = 0.0
    weight_error: float = 0.0
    gap: float = 0.0
    violation: float = 0.0
    seconds: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def builtin_solvers(torch_devices: bool = True) -> dict[str, tuple[Callable, np.dtype]]:
    """Name -> (``fn(losses, p, gamma, tau) -> weights``, dtype) for the built-in solvers."""
    from solvers import numpy as lmp_np

    def select(losses, p, gamma, tau):
        return lmp_np.lmp_weights(losses, p, gamma, tau, method="select")

    out = {
        "numpy float64": (lmp_np.lmp_weights, np.dtype(np.float64)),
        "numpy float32": (lmp_np.lmp_weights, np.dtype(np.float32)),
        "numpy select float64": (select, np.dtype(np.float64)),
        "numpy select float32": (select, np.dtype(np.float32)),
    }
    if torch_devices:
        out.update(_torch_solvers())
    return out


def _torch_solvers():
    try:
        import torch

        from solvers import torch as lmp_torch
    except ImportError:  # the Torch backend is optional for this command
        return {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = {}
    for device in devices:
        for method in ("auto", "select"):
            for dtype, np_dtype in [(torch.float64, np.float64), (torch.float32, np.float32)]:
                def fn(losses, p, gamma, tau, _device=device, _dtype=dtype, _method=method):
                    x = torch.as_tensor(losses, dtype=_dtype, device=_device)
                    return lmp_torch.lmp_weights(x, p, gamma, tau, method=_method).cpu().numpy()

                label = "" if method == "auto" else " select"
                out[f"torch {device}{label} {str(dtype).split('.')[-1]}"] = (fn, np.dtype(np_dtype))
    return out


def compute_references(cases: list[Case], progress: Callable[[str], None] | None = None):
    """Case name -> reference ``lmp_theory.reference.Solution`` (None above CVXPY_MAX_N)."""
    from .reference import solve

    refs = {}
    for case in cases:
        refs[case.name] = solve(case.losses, case.p, case.gamma, case.tau) if case.n <= CVXPY_MAX_N else None
        if progress:
            progress(case.name)
    return refs


def reference_row(cases: list[Case], refs: dict, seconds: float) -> Row:
    """The reference's own figures: its certificate, and how far the raw conic answer was."""
    row = Row("cvxpy+refine", 1e-9, seconds=seconds)
    for case in cases:
        sol = refs.get(case.name)
        if sol is None:
            continue
        row.cases += 1
        row.gap = max(row.gap, abs(sol.certificate.relative_gap))
        row.violation = max(row.violation, sol.certificate.violation)
        # the raw conic answer is only accurate to the solver's tolerance: measure it on the
        # problem's own scale (gamma * max|l| for values, min(gamma, tau) for weights)
        value_scale = max(abs(sol.value), case.gamma * float(np.max(np.abs(case.losses))))
        row.value_error = max(row.value_error, abs(sol.raw_value - sol.value) / value_scale if value_scale else 0.0)
        weight_scale = max(float(np.max(sol.weights)), min(case.gamma, case.tau))
        row.weight_error = max(row.weight_error, float(np.max(np.abs(sol.raw_weights - sol.weights))) / weight_scale)
    return row


def _relative(value: float, exact: float) -> float:
    if exact == 0.0:
        return 0.0 if value == 0.0 else math.inf
    return abs(value - exact) / abs(exact)


def _weight_error(w: np.ndarray, exact: np.ndarray) -> float:
    if w.size == 0:
        return 0.0
    top = float(np.max(np.abs(exact)))
    diff = float(np.max(np.abs(w - exact)))
    return diff / top if top > 0 else (0.0 if diff == 0 else math.inf)


def measure(name: str, fn: Callable, dtype: np.dtype, cases: list[Case], refs: dict) -> Row:
    """Run one solver on every case it supports (float32 solvers skip float64-only cases)."""
    tol = TOLERANCE[np.dtype(dtype)]
    row = Row(name, tol)
    for case in cases:
        if np.dtype(dtype) == np.float32 and not case.float32:
            continue
        losses = case.losses.astype(dtype)
        started = time.perf_counter()
        try:
            w = np.asarray(fn(losses, case.p, case.gamma, case.tau))
        except Exception as exc:  # a solver that raises is a failure, reported by name
            row.failures.append(f"{case.name}: raised {type(exc).__name__}: {exc}")
            continue
        row.seconds += time.perf_counter() - started
        row.cases += 1
        if w.shape != losses.shape or not np.all(np.isfinite(w)):
            row.failures.append(f"{case.name}: wrong shape or non-finite weights")
            continue
        w = w.astype(np.float64)
        cert = certify(case.losses, w, case.p, case.gamma, case.tau)
        ref = refs.get(case.name)
        figures = {
            "gap": abs(cert.relative_gap),
            "violation": cert.violation,
            "value_error": _relative(cert.value, ref.value) if ref is not None else abs(cert.relative_gap),
            "weight_error": _weight_error(w, ref.weights) if ref is not None else 0.0,
        }
        for key, figure in figures.items():
            setattr(row, key, max(getattr(row, key), figure))
        bad = [f"{key} {figure:.2e}" for key, figure in figures.items() if not figure <= tol]
        if bad:
            row.failures.append(f"{case.name}: " + ", ".join(bad))
    return row


def format_table(rows: list[Row]) -> str:
    """A fixed-width table of the rows, one line per solver."""
    head = ("solver", "cases", "value err", "weight err", "cert gap", "violation", "tol", "time s", "result")
    lines = [head]
    for r in rows:
        lines.append((
            r.solver, str(r.cases), f"{r.value_error:.1e}", f"{r.weight_error:.1e}", f"{r.gap:.1e}",
            f"{r.violation:.1e}", f"{r.tolerance:.0e}", f"{r.seconds:.2f}",
            "pass" if r.passed else f"FAIL ({len(r.failures)})",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]

    def fmt(line):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))

    rule = "-" * len(fmt(head))
    return "\n".join([fmt(lines[0]), rule] + [fmt(line) for line in lines[1:]])
