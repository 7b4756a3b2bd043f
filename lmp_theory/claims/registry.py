"""The claims registry: each result of the theory as data, with a symbolic and a numeric check.

A claim has an ``id``, a plain-text and a LaTeX statement, a source (the paper, a textbook
result, or derived here), a *symbolic* check with sympy that can genuinely fail (an identity
that must simplify to zero, a sign that sympy must establish from the assumptions, a limit that
must evaluate to the stated value) and a *numeric* check against the solvers on random and
adversarial instances. A check returns a short detail string when it passes and raises
:class:`ClaimFailed` (or any exception) when it does not.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import sympy as sp

__all__ = ["Claim", "ClaimFailed", "Outcome", "ClaimResult", "REGISTRY", "claim", "require", "zero", "run_claims"]


class ClaimFailed(AssertionError):
    """A check found the claim false (or could not establish it)."""


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    statement: str
    latex: str
    source: str
    symbolic: Callable[[], str] | None
    numeric: Callable[[], str] | None
    na_reason: str = ""


@dataclass(frozen=True)
class Outcome:
    status: str  # "pass", "fail" or "n/a"
    detail: str
    seconds: float


@dataclass(frozen=True)
class ClaimResult:
    id: str
    title: str
    statement: str
    latex: str
    source: str
    symbolic: Outcome
    numeric: Outcome

    @property
    def passed(self) -> bool:
        return "fail" not in (self.symbolic.status, self.numeric.status)

    def as_json(self) -> dict:
        out = asdict(self)
        for key in ("symbolic", "numeric"):
            out[f"{key}_detail"] = out[key]["detail"]
            out[f"{key}_seconds"] = out[key]["seconds"]
            out[key] = out[key]["status"]
        return out


REGISTRY: dict[str, Claim] = {}


def claim(id: str, title: str, statement: str, latex: str, source: str, numeric=None, na_reason: str = ""):
    """Decorator registering a claim whose symbolic check is the decorated function."""

    def register(symbolic):
        if id in REGISTRY:
            raise ValueError(f"duplicate claim id {id!r}")
        symbolic.__doc__ = f"Claim {id!r}: {title}.\n\n{statement}\n\nSource: {source}."
        REGISTRY[id] = Claim(id, title, statement, latex, source, symbolic, numeric, na_reason)
        return symbolic

    return register


def require(condition, message: str) -> None:
    """Raise :class:`ClaimFailed` unless ``condition`` holds.

    Python and NumPy booleans count as they are; a sympy query (``expr.is_positive``) must be
    exactly ``True``: its ``None`` ("cannot tell") fails the check.
    """
    if isinstance(condition, (bool, np.bool_)):
        ok = bool(condition)
    else:
        ok = condition is True
    if not ok:
        raise ClaimFailed(message)


def _normal_forms(expr):
    """Rewritings under which an identity between positive quantities becomes 0."""
    yield sp.powsimp(sp.expand_power_base(expr, force=True), force=True)
    factored = expr.replace(lambda z: z.is_Add, sp.factor_terms)  # pull common powers out of sums
    yield sp.powdenest(sp.expand_power_base(factored, force=True), force=True)
    yield sp.expand(sp.powdenest(sp.expand_power_base(expr, force=True), force=True))
    expanded = sp.expand_power_base(expr, force=True).replace(lambda z: z.is_Add, sp.factor_terms)
    yield sp.powdenest(sp.expand_power_base(expanded, force=True), force=True)
    x = expr
    for _ in range(2):  # factor sums, split powers of products, denest, recombine, tidy the exponents
        x = x.replace(lambda z: z.is_Add, sp.factor_terms)
        x = sp.powsimp(sp.powdenest(sp.expand_power_base(x, force=True), force=True), force=True)
        x = x.replace(lambda z: z.is_Pow, lambda z: z.base ** sp.simplify(z.exp))
        yield x


def zero(expr, message: str) -> None:
    """Require that ``expr`` simplifies to 0 (symbols are positive, so powers may be combined)."""
    expr = sp.sympify(expr)
    for form in _normal_forms(expr):
        if sp.simplify(form) == 0:
            return
    raise ClaimFailed(f"{message}: residual {sp.simplify(expr)} is not 0")


def _run(check: Callable[[], str] | None, na_reason: str) -> Outcome:
    if check is None:
        return Outcome("n/a", na_reason or "no check of this kind applies", 0.0)
    started = time.perf_counter()
    try:
        detail = check()
        status = "pass"
    except Exception as exc:  # a check that errors has not established the claim
        detail, status = f"{type(exc).__name__}: {exc}", "fail"
    return Outcome(status, detail, time.perf_counter() - started)


def run_claims(ids: list[str] | None = None) -> list[ClaimResult]:
    """Run the symbolic and numeric checks of the given claims (all by default), in order."""
    from . import closed_form, duality, imbalance  # noqa: F401  (registers the claims)

    selected = list(REGISTRY) if ids is None else ids
    unknown = [i for i in selected if i not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown claim id(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    results = []
    for cid in selected:
        c = REGISTRY[cid]
        results.append(ClaimResult(c.id, c.title, c.statement, c.latex, c.source,
                                   _run(c.symbolic, c.na_reason), _run(c.numeric, c.na_reason)))
    return results
