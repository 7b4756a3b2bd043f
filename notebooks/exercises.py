"""The course's answer checks: each accepts any right answer, says what is wrong with a wrong one, and waits for
an answer that is still the placeholder ``...``.

Every check prints one line and returns True (right), False (wrong) or None (not answered yet), so an
exercise cell runs before it is answered; the solution cells ``assert`` their own answers pass.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import sympy as sp

from lmp_theory.claims.registry import ClaimFailed, zero

__all__ = ["check_number", "check_numbers", "check_expression", "check_counterexample", "check_choice", "check_by"]


def _unanswered(answer) -> bool:
    return answer is Ellipsis or (isinstance(answer, (list, tuple)) and any(a is Ellipsis for a in answer))


def _verdict(answer, right: bool, message: str, hint: str) -> bool | None:
    if _unanswered(answer):
        print("Not answered yet: replace ... by your answer and run the cell again.")
        return None
    print(("Right: " if right else "Not yet: ") + message + ("" if right or not hint else f" Hint: {hint}"))
    return right


def check_number(answer, expected: float, *, rtol: float = 1e-6, hint: str = "") -> bool | None:
    """A number within ``rtol`` (relative) of ``expected``."""
    if _unanswered(answer):
        return _verdict(answer, False, "", hint)
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return _verdict(answer, False, f"expected a number, got {answer!r}.", hint)
    right = math.isclose(value, expected, rel_tol=rtol, abs_tol=rtol * 1e-12)
    return _verdict(answer, right, f"{value:.10g}" + ("." if right else f" is not the value (off by "
                                                      f"{value - expected:+.3g})."), hint)


def check_numbers(answer, expected, *, rtol: float = 1e-6, ordered: bool = True, hint: str = "") -> bool | None:
    """A sequence of numbers equal to ``expected`` entry by entry (``ordered=False``: in any order, each
    number as many times as in ``expected``)."""
    if _unanswered(answer):
        return _verdict(answer, False, "", hint)
    try:
        got = np.asarray(answer, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return _verdict(answer, False, f"expected numbers, got {answer!r}.", hint)
    want = np.asarray(expected, dtype=np.float64).reshape(-1)
    if not ordered:
        got, want = np.sort(got), np.sort(want)
    if got.shape != want.shape:
        return _verdict(answer, False, f"{got.size} numbers, but the answer has {want.size}.", hint)
    wrong = ~np.isclose(got, want, rtol=rtol, atol=rtol * 1e-12)
    where = ", ".join(str(i) for i in np.flatnonzero(wrong))
    return _verdict(answer, not wrong.any(), f"{np.array2string(got, precision=6)}"
                    + ("." if not wrong.any() else f": entries {where} are off."), hint)


def check_expression(answer, expected, *, hint: str = "") -> bool | None:
    """A sympy expression equal to ``expected``: their difference simplifies to 0 under the registry's rules
    (symbols positive, powers combined: ``lmp_theory.claims.registry.zero``)."""
    if _unanswered(answer):
        return _verdict(answer, False, "", hint)
    try:
        difference = sp.sympify(answer) - expected
    except (sp.SympifyError, TypeError) as exc:
        return _verdict(answer, False, f"not an expression sympy can read ({exc}).", hint)
    try:
        zero(difference, "not equal")
    except ClaimFailed:
        return _verdict(answer, False, f"{answer} differs by {sp.simplify(difference)}.", hint)
    return _verdict(answer, True, f"{answer} is equal.", hint)


def check_counterexample(answer, holds: Callable[[Any], bool], *, hint: str = "") -> bool | None:
    """A counterexample: an input on which the statement ``holds`` is false."""
    if _unanswered(answer):
        return _verdict(answer, False, "", hint)
    try:
        true_there = bool(holds(answer))
    except Exception as exc:  # noqa: BLE001  (a malformed answer is explained, not raised)
        return _verdict(answer, False, f"the statement cannot be evaluated on {answer!r} ({exc}).", hint)
    return _verdict(answer, not true_there, f"{answer!r}" + (" falsifies the statement." if not true_there
                                                             else " satisfies the statement."), hint)


def check_choice(answer, expected, *, hint: str = "") -> bool | None:
    """One of a few discrete answers (a count, a name, a set)."""
    if _unanswered(answer):
        return _verdict(answer, False, "", hint)
    right = answer == expected and isinstance(answer, (bool, np.bool_)) == isinstance(expected, (bool, np.bool_))
    return _verdict(answer, bool(right), f"{answer!r}" + ("." if right else " is not it."), hint)


def check_by(answer, judge: Callable[[Any], tuple[bool, str] | None], *, hint: str = "") -> bool | None:
    """Any answer that ``judge(answer) -> (right, what it found)`` accepts; ``judge`` returns None for an
    answer that is still the placeholder (a function whose body is ``return ...``)."""
    verdict = None if _unanswered(answer) else judge(answer)
    if verdict is None:
        return _verdict(Ellipsis, False, "", hint)
    right, message = verdict
    return _verdict(answer, right, message, hint)
