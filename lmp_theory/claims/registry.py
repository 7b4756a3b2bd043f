"""The claims registry: each result of the theory as data, with a symbolic and a numeric check.

A claim has an ``id``, a plain-text and a LaTeX statement, its ``hypotheses`` (the instances the
statement is about), a source (the paper, a textbook result, or derived here), a *symbolic* check
with sympy that can genuinely fail (an identity that must simplify to zero, a sign that sympy must
establish from the assumptions, a limit that must evaluate to the stated value) and a *numeric*
check: a ``Search`` of the claim's hypotheses for a counterexample to the statement as written
(``lmp_theory.claims.find_counterexample``). Where sympy proves a piece (one interval, one
symbolic ``k``), the symbolic detail says which piece and the statement says how the rest follows.
A symbolic check returns a short detail string when it passes and raises ``ClaimFailed``
(or any exception) when it does not; a search fails with the shrunk counterexample.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import mpmath as mp
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from .search import find_counterexample

__all__ = ["Claim", "ClaimFailed", "Outcome", "ClaimResult", "REGISTRY", "Search", "claim", "require", "zero",
           "run_claims"]

DEFAULT_BUDGET = 300
# mpmath precision of the searches' exact side: gamma^p - k tau^p can cancel the 16 digits of a float, and the
# 35-digit comparisons of the claims must still hold with room to spare
WORKING_DIGITS = 80


class ClaimFailed(AssertionError):
    """A check found the claim false (or could not establish it)."""


@dataclass(frozen=True)
class Search:
    """A claim's numeric check: no instance of ``instances()`` may falsify ``prop``.

    ``prop(x) -> bool`` is the statement as written, True where it holds, evaluated on what the
    strategy draws (an ``lmp_theory.claims.Instance``, or a tuple holding one where the
    statement needs more, such as class labels); ``instances`` builds the hypothesis strategy of
    the claim's hypotheses; ``budget`` instances are tried.
    """

    prop: Callable[[Any], bool]
    instances: Callable[[], st.SearchStrategy]
    budget: int = DEFAULT_BUDGET


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    statement: str
    hypotheses: str
    latex: str
    source: str
    symbolic: Callable[[], str] | None
    numeric: Search | None
    na_reason: str = ""


@dataclass(frozen=True)
class Outcome:
    status: str  # "pass", "fail" or "n/a"
    detail: str
    seconds: float
    searched: int = 0  # instances tried by a search (0 for a symbolic check)


@dataclass(frozen=True)
class ClaimResult:
    id: str
    title: str
    statement: str
    hypotheses: str
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
        out["searched"] = self.numeric.searched
        return out


REGISTRY: dict[str, Claim] = {}


def claim(id: str, title: str, statement: str, hypotheses: str, latex: str, source: str,
          numeric: Search | None = None, na_reason: str = ""):
    """Decorator registering a claim whose symbolic check is the decorated function."""

    def register(symbolic):
        if id in REGISTRY:
            raise ValueError(f"duplicate claim id {id!r}")
        symbolic.__doc__ = f"Claim {id!r}: {title}.\n\nHypotheses: {hypotheses}.\n\n{statement}\n\nSource: {source}."
        REGISTRY[id] = Claim(id, title, statement, hypotheses, latex, source, symbolic, numeric, na_reason)
        return symbolic

    return register


def require(condition, message: str) -> None:
    """Raise ``ClaimFailed`` unless ``condition`` holds.

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


def _run_symbolic(check: Callable[[], str] | None, na_reason: str) -> Outcome:
    if check is None:
        return Outcome("n/a", na_reason or "no check of this kind applies", 0.0)
    started = time.perf_counter()
    try:
        detail = check()
        status = "pass"
    except Exception as exc:  # a check that errors has not established the claim
        detail, status = f"{type(exc).__name__}: {exc}", "fail"
    return Outcome(status, detail, time.perf_counter() - started)


def _run_search(search: Search | None, na_reason: str, budget: int | None, seed: int) -> Outcome:
    if search is None:
        return Outcome("n/a", na_reason or "no check of this kind applies", 0.0)
    started = time.perf_counter()
    tried = 0

    def prop(instance) -> bool:
        nonlocal tried
        tried += 1
        with mp.workdps(WORKING_DIGITS):
            return bool(search.prop(instance))

    try:
        found = find_counterexample(prop, budget=budget or search.budget, seed=seed, instances=search.instances())
    except Exception as exc:  # a search that cannot run has not established the claim
        return Outcome("fail", f"{type(exc).__name__}: {exc}", time.perf_counter() - started, tried)
    if found is None:
        status, detail = "pass", f"no counterexample in {tried} instances"
    else:
        status, detail = "fail", f"counterexample (shrunk, after {tried} instances): {found!r}"
    return Outcome(status, detail, time.perf_counter() - started, tried)


def run_claims(ids: list[str] | None = None, *, budget: int | None = None, seed: int = 0) -> list[ClaimResult]:
    """Run the symbolic check and the counterexample search of the given claims (all by default).

    ``budget`` overrides every claim's search size; ``seed`` fixes the searches (deterministic).
    """
    selected = list(REGISTRY) if ids is None else ids
    unknown = [i for i in selected if i not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown claim id(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    results = []
    for cid in selected:
        c = REGISTRY[cid]
        results.append(ClaimResult(c.id, c.title, c.statement, c.hypotheses, c.latex, c.source,
                                   _run_symbolic(c.symbolic, c.na_reason),
                                   _run_search(c.numeric, c.na_reason, budget, seed)))
    return results
