"""The conformance kit: regression-test any LMP implementation against the exact answers.

``check_solver(fn)`` runs ``fn(losses, p, gamma, tau) -> weights`` on the corpus and classifies
every case:

================================  ==================================================================
``pass``                          feasible, optimal and canonical, to the dtype's tolerance
``optimal-not-canonical``         the value is optimal but the weights are another maximizer; a
                                  failure only when ``canonical=True`` (needed for gradients)
``suboptimal``                    feasible but the value is below the optimum
``infeasible``                    weights negative, above ``tau`` or over the norm budget
``non-finite``                    NaN or infinite weights
``wrong-shape``                   weights not of the losses' shape
``raised``                        ``fn`` raised an exception
================================  ==================================================================

Expected answers come from paths independent of the solvers: the mpmath evaluation of the closed
form stored in ``golden.npz`` for the small cases, and the duality certificate (an exact dual
bound and the threshold that fixes the canonical weights) for the large pools. Tolerances follow
the dtype (``../shared/SPEC.md`` section 7): 1e-10 in float64, 1e-5 in float32, plus the case's
conditioning slack (see ``lmp_theory.testing.golden``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..certificate import certify
from ..corpus import Case, cases
from . import golden

STATUSES = ("pass", "optimal-not-canonical", "suboptimal", "infeasible", "non-finite", "wrong-shape", "raised")
TOLERANCES = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
EXACT_MAX_N = 5000  # larger pools are checked against the certificate, not an mpmath evaluation


@dataclass(frozen=True)
class CaseResult:
    """The verdict on one case, with the measured errors (relative; NaN where not measured)."""

    name: str
    family: str
    n: int
    p: float
    status: str
    value_error: float = math.nan
    weight_error: float = math.nan
    violation: float = math.nan
    message: str = ""


@dataclass
class Report:
    """All case verdicts of one solver; ``passed`` is False on any failing status."""

    solver: str
    dtype: np.dtype
    canonical: bool
    results: list[CaseResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in STATUSES if any(r.status == s for r in self.results)}

    def failing(self) -> list[CaseResult]:
        allowed = {"pass"} if self.canonical else {"pass", "optimal-not-canonical"}
        return [r for r in self.results if r.status not in allowed]

    @property
    def passed(self) -> bool:
        return not self.failing()

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        verdict = "CONFORMS" if self.passed else "DOES NOT CONFORM"
        demand = "canonical weights demanded" if self.canonical else "any optimal weights accepted"
        return f"{self.solver} [{self.dtype}, {demand}]: {len(self.results)} cases: {counts} -> {verdict}"

    def table(self, only_failing: bool = True, limit: int = 40) -> str:
        rows = self.failing() if only_failing else self.results
        head = f"{'case':58} {'status':22} {'value err':>9} {'weight err':>10} {'violation':>9}"
        lines = [head, "-" * len(head)]
        for r in rows[:limit]:
            lines.append(f"{r.name[:58]:58} {r.status:22} {r.value_error:9.1e} {r.weight_error:10.1e} {r.violation:9.1e}"
                         + (f"  {r.message[:60]}" if r.message else ""))
        if len(rows) > limit:
            lines.append(f"... and {len(rows) - limit} more")
        return "\n".join(lines)


def conformance_cases(*, large: bool = False) -> list[Case]:
    """The kit's cases: the full corpus (about 1,100, golden answers) and optionally large pools."""
    out = golden.golden_cases()
    if large:
        out += [c for c in cases(large=True) if c.family == "large"]
    return out


def _canonical_from_threshold(l: np.ndarray, p: float, gamma: float, tau: float, t: float) -> np.ndarray:
    """Canonical weights from the certificate's threshold t* (used for pools without golden answers)."""
    lp = np.maximum(l, 0.0)
    if math.isinf(p):
        return np.where(lp > 0, min(gamma, tau), 0.0)
    if p == 1.0:
        above, tied = np.count_nonzero(lp > t), np.count_nonzero((lp == t) & (lp > 0))
        share = min(tau, (gamma - (tau * above if above else 0.0)) / max(tied, 1))
        return np.where(lp > t, tau, np.where((lp == t) & (lp > 0), share, 0.0))
    q = p / (p - 1.0)
    if math.isinf(t):  # no cap: Hölder's weighting
        top = lp.max()
        shape = (lp / top) ** (q - 1.0)
        return gamma * shape / np.sum((lp / top) ** q) ** (1.0 / p)
    with np.errstate(divide="ignore"):
        return np.where(lp > 0, tau * np.minimum(1.0, lp / t) ** (q - 1.0), 0.0) if t > 0 else np.where(lp > 0, tau, 0.0)


_GOLDEN_CACHE: dict | None = None


def _golden() -> dict:
    global _GOLDEN_CACHE
    if _GOLDEN_CACHE is None:
        _GOLDEN_CACHE = golden.load()
    return _GOLDEN_CACHE


def check_case(fn: Callable, case: Case, *, dtype=np.float64) -> CaseResult:
    """Run ``fn`` on one case and classify the result (see the module docs)."""
    dtype = np.dtype(dtype)
    tol = TOLERANCES[dtype]
    losses = case.losses.astype(dtype)
    base = dict(name=case.name, family=case.family, n=case.n, p=case.p)
    try:
        w = fn(losses, case.p, case.gamma, case.tau)
        w = np.asarray(w.detach().cpu() if hasattr(w, "detach") else w)
    except Exception as exc:  # the kit reports what any implementation does, crashes included
        return CaseResult(**base, status="raised", message=f"{type(exc).__name__}: {exc}")
    if w.shape != losses.shape:
        return CaseResult(**base, status="wrong-shape", message=f"got shape {w.shape}, expected {losses.shape}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        return CaseResult(**base, status="non-finite", message=f"{np.count_nonzero(~np.isfinite(w))} non-finite weights")
    cert = certify(case.losses, w, case.p, case.gamma, case.tau)
    expected = _golden().get(case.name)
    if (expected is None or expected.fingerprint != golden.fingerprint(case)) and case.n <= EXACT_MAX_N:
        expected = golden.compute(case)  # not stored (or stored for other inputs): evaluate it now
    if expected is not None:
        exact_w, exact_v = expected.weights, expected.value
        w_slack, v_slack = expected.weight_slack, expected.value_slack
    else:  # large pools: the certificate is the reference
        exact_v = cert.upper_bound
        exact_w = _canonical_from_threshold(case.losses, case.p, case.gamma, case.tau, cert.threshold)
        w_slack = v_slack = 0.0
    top = float(np.max(exact_w, initial=0.0))
    weight_error = float(np.max(np.abs(w - exact_w), initial=0.0)) / top if top > 0 else float(np.max(np.abs(w), initial=0.0))
    value_error = abs(cert.value - exact_v) / abs(exact_v) if exact_v != 0 else abs(cert.value)
    measured = dict(value_error=value_error, weight_error=weight_error, violation=cert.violation)
    if cert.violation > tol:
        return CaseResult(**base, status="infeasible", **measured)
    if exact_v - cert.value > tol * abs(exact_v) + v_slack or (exact_v == 0 and cert.value < 0):
        return CaseResult(**base, status="suboptimal", **measured)
    if weight_error * top > tol * top + 2 * w_slack:
        return CaseResult(**base, status="optimal-not-canonical", **measured)
    return CaseResult(**base, status="pass", **measured)


def check_solver(fn: Callable, *, dtype=np.float64, cases: list[Case] | None = None, canonical: bool = True,
                 name: str | None = None) -> Report:
    """Check ``fn(losses, p, gamma, tau) -> weights`` (1-D NumPy in, array-like out) on the corpus.

    Parameters
    ----------
    fn : callable
        The implementation under test; see ``batched`` and ``torch_solver`` for adapters.
    dtype : numpy dtype
        float64 (tolerance 1e-10) or float32 (1e-5); losses are passed in this dtype and cases
        whose losses are not representable in float32 are left out for float32.
    cases : list of Case, optional
        Defaults to ``conformance_cases`` (the full corpus with golden answers).
    canonical : bool
        Demand the canonical (least-norm) maximizer, as back-propagation through LMP needs.
        With False, ``optimal-not-canonical`` is reported but not counted as a failure.
    """
    dtype = np.dtype(dtype)
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    selected = conformance_cases() if cases is None else cases
    report = Report(name or getattr(fn, "__qualname__", repr(fn)), dtype, canonical)
    for case in selected:
        if dtype == np.float32 and not case.float32:
            continue
        report.results.append(check_case(fn, case, dtype=dtype))
    return report


def assert_conforms(fn: Callable, **kwargs) -> Report:
    """``check_solver``, raising ``AssertionError`` with a table of the failing cases."""
    report = check_solver(fn, **kwargs)
    if not report.passed:
        raise AssertionError(f"{report.summary()}\n{report.table()}")
    return report


def batched(fn: Callable) -> Callable:
    """Adapt ``fn(losses (..., n), p, gamma, tau) -> weights (..., n)`` to the kit's 1-D calls."""
    def one_pool(losses, p, gamma, tau):
        return np.asarray(fn(losses[None, :], p, gamma, tau))[0]

    one_pool.__qualname__ = f"batched({getattr(fn, '__qualname__', fn)})"
    return one_pool


def torch_solver(fn: Callable, *, device="cpu", dtype=None) -> Callable:
    """Adapt a Torch ``fn(losses tensor, p, gamma, tau) -> weights tensor``; losses go to ``device``
    in ``dtype`` (default: the NumPy dtype the kit passes), weights come back as NumPy."""
    import torch

    def on_device(losses, p, gamma, tau):
        x = torch.as_tensor(losses, device=device, dtype=dtype)
        return fn(x, p, gamma, tau).detach().cpu().to(torch.float64).numpy()

    on_device.__qualname__ = f"torch({getattr(fn, '__qualname__', fn)}, {device})"
    return on_device
