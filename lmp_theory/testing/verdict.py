"""The verdict on one proposed weighting: what is wrong with it, by how much, and where.

``judge`` takes whatever an implementation returned and the exact answer
(``lmp_theory.testing.golden.Expected``) and gives one status, in this order of checks:

================================  ==================================================================
``wrong-type``                    not a real numeric array (complex, object, strings, ``None``,
                                  integers too large for float64...)
``wrong-shape``                   not of the losses' shape
``non-finite``                    NaN or infinite weights
``infeasible``                    a constraint is violated, read literally: ``w >= 0``, ``w <= tau``,
                                  ``||w||_p <= gamma`` (negative entries count in the norm) (the
                                  message says which, where, by how much)
``suboptimal``                    feasible, value below the optimum (the message gives the gap and
                                  says when every weight is zero)
``wrong-weights``                 feasible with an optimal value to tolerance, but not a maximizer
                                  (a larger loss has a smaller weight) or weights differ from the
                                  answer where the maximizer is unique
``optimal-not-canonical``         an optimal weighting that differs from the canonical one only
                                  where the problem has several maximizers
``pass``                          the canonical weights, to tolerance
================================  ==================================================================

(``lmp_theory.testing.kit`` adds the statuses of the call itself: ``mutates-input``, ``timeout``,
``crashed``, ``raised``.)

Tolerances are relative to scales that always exist: weights to the largest exact weight, or to
``min(gamma, tau)`` (the largest any weight may be) when every exact weight is 0; values to the
exact value, or to ``min(gamma, tau) * max|l|`` when it is 0. Feasibility, the value and the
order of the weights are judged at the dtype's tolerance (``TOLERANCES``: 1e-10 in float64, 1e-5
in float32) and nothing else (an inversion of two weights is one by more than twice it: the most
two weights within the tolerance of the canonical ones can be). Only the comparison with the canonical
weights is widened, by the
case's conditioning allowance (how far the exact weights move when ``gamma`` or ``tau`` moves by
a few ulps), and never by more than ``ALLOWANCE_CAP``: ``Verdict.weight_tol`` is what was in force.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..certificate import certify, scaled_norm
from .golden import Expected
from .oracle import free_entries, scale_exponent

__all__ = ["ALLOWANCE_CAP", "Verdict", "TOLERANCES", "judge", "as_weights"]

TOLERANCES = MappingProxyType({np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5})  # read-only
# The most the conditioning allowance may add to the weight tolerance (relative). The corpus's
# largest allowance is 5.05e-2 (range-1e-300-1e300-n100/p=10/ratio=0.01, where 4 ulps of gamma move
# the exact weights that much); what keeps a non-maximizer out is not this cap but the checks at
# the nominal tolerance before it: feasibility, the value, and the order of the weights.
ALLOWANCE_CAP = 0.1


@dataclass(frozen=True)
class Verdict:
    """A status with its measurements: errors and the tolerances in force, both relative to the
    scales of the module docs, the certificate's relative duality gap ``gap`` (it needs no expected
    answer; NaN where not measured), and a message that pinpoints the problem."""

    status: str
    value_error: float = math.nan
    weight_error: float = math.nan
    violation: float = math.nan
    value_tol: float = math.nan
    weight_tol: float = math.nan
    message: str = ""
    gap: float = math.nan


def as_weights(obj) -> tuple[np.ndarray | None, str]:
    """``(float64 array, "")`` for a real numeric result (NumPy, Torch, lists), else ``(None, why)``."""
    if obj is None:
        return None, "returned None instead of weights (does not convert to an array)"
    try:
        if hasattr(obj, "detach") and hasattr(obj, "is_complex"):  # a Torch tensor (bfloat16 included)
            if obj.is_complex():
                return None, f"complex weights (dtype {obj.dtype}); weights must be real"
            obj = obj.detach().cpu()
            obj = obj.double() if obj.is_floating_point() else obj
            obj = obj.numpy()
        arr = np.asarray(obj)
    except Exception as exc:  # noqa: BLE001
        return None, f"weights are not an array ({type(exc).__name__}: {exc})"
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64), ""
    if arr.dtype.kind == "c":
        return None, f"complex weights (dtype {arr.dtype}); weights must be real"
    if arr.dtype.kind == "O":
        odd = next((x for x in arr.ravel() if isinstance(x, bool) or not isinstance(x, numbers.Real)), None)
        if odd is not None:
            return None, f"weights do not convert to float64 (an element is {type(odd).__name__})"
        try:  # element by element: NumPy turns ints beyond float64 into inf or NaN without a word
            return np.array([float(x) for x in arr.ravel()], dtype=np.float64).reshape(arr.shape), ""
        except Exception as exc:  # noqa: BLE001  (huge Python ints...)
            return None, f"weights do not convert to float64 ({type(exc).__name__}: {exc})"
    return None, f"weights of dtype {arr.dtype} ({type(obj).__name__}); expected real numbers"


def judge(result, losses: np.ndarray, p: float, gamma: float, tau: float, expected: Expected,
          tol: float) -> Verdict:
    """The verdict on ``result`` as the weights of the 1-D float64 ``losses`` (see the module docs)."""
    w, why = as_weights(result)
    if w is None:
        return Verdict("wrong-type", message=why)
    if w.shape != losses.shape:
        return Verdict("wrong-shape", message=f"got shape {w.shape}, expected {losses.shape}")
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        return Verdict("non-finite", message=f"{bad.size} non-finite weights, first w[{bad[0]}] = {w[bad[0]]}")
    with np.errstate(all="ignore"):  # whatever NumPy error state the code under test left
        return _judge(w, losses, p, gamma, tau, expected, tol)


def _judge(w, losses, p, gamma, tau, expected: Expected, tol: float) -> Verdict:
    # values are compared on the losses scaled by a power of two (the maximizer does not change),
    # so that an optimum among subnormal losses keeps its precision
    e = scale_exponent(np.abs(losses))
    scaled = np.ldexp(losses, -e)
    exact_value = float(np.ldexp(expected.value, -e))
    if 0 < abs(expected.value) < np.finfo(np.float64).tiny:  # a subnormal optimum: from the exact weights
        exact_value = math.fsum(expected.weights * scaled)
    weight_scale = float(np.max(expected.weights, initial=0.0)) or min(gamma, tau)
    value_scale = abs(exact_value) or weight_scale * float(np.max(np.abs(scaled), initial=0.0))
    value, gap = _value_and_gap(scaled, w, p, gamma, tau, exact_value if expected.certified else None)
    diff = np.abs(w - expected.weights)
    allowance = min(2 * expected.weight_slack / weight_scale, ALLOWANCE_CAP)
    weight_tol = tol + allowance
    shortfall = exact_value - value
    violation = literal_violation(w, p, gamma, tau)
    measured = dict(value_error=abs(shortfall) / value_scale if value_scale else abs(shortfall),
                    weight_error=float(np.max(diff, initial=0.0)) / weight_scale, violation=violation,
                    value_tol=tol, weight_tol=weight_tol, gap=abs(gap))

    if violation > tol:
        return Verdict("infeasible", message=_infeasibility(w, p, gamma, tau, tol), **measured)
    if shortfall > tol * value_scale:
        zero = "; all weights zero" if not np.any(w) else ""
        return Verdict("suboptimal", message=f"value {np.ldexp(value, e):.6g} below the optimum "
                                             f"{expected.value:.6g} by {shortfall / value_scale:.2e} (relative){zero}",
                       **measured)
    # within tol of the (monotone) canonical weights, no two weights are inverted by more than 2 tol:
    # only weights that differ by more, as the allowance and other maximizers let them, need the sort
    inversion = _inversion(losses, w, 2 * tol * weight_scale) if np.any(diff > tol * weight_scale) else ""
    if inversion:
        return Verdict("wrong-weights", message=inversion, **measured)
    off = diff > weight_tol * weight_scale
    if not np.any(off):
        return Verdict("pass", **measured)
    unique_off = off & ~free_entries(losses, p, gamma, tau, expected.threshold)
    if np.any(unique_off):
        i = int(np.argmax(np.where(unique_off, diff, -1.0)))
        return Verdict("wrong-weights", message=(
            f"value optimal to tolerance, but {np.count_nonzero(unique_off)} weights differ where the maximizer "
            f"is unique; worst w[{i}] = {w[i]:.6g}, canonical {expected.weights[i]:.6g} (loss {losses[i]:.6g})"),
            **measured)
    return Verdict("optimal-not-canonical", message=(
        f"another maximizer: {np.count_nonzero(off)} weights differ, all on "
        f"{'ties at the cut' if np.any(losses[off] > 0) else 'zero losses with budget left'}"), **measured)


def _value_and_gap(scaled: np.ndarray, w: np.ndarray, p, gamma, tau, bound: float | None) -> tuple[float, float]:
    """``<w, l>`` on the scaled losses and the certificate's relative duality gap; ``bound``: the dual
    minimum when the expected answer is the certificate's own (not computed twice)."""
    if bound is None:
        cert = certify(scaled, w, p, gamma, tau)
        return cert.value, cert.relative_gap
    value = float(np.sum(w * scaled))  # the losses are scaled to a largest |l| in [0.5, 1): no overflow
    denom = max(abs(bound), abs(value))
    return value, (bound - value) / denom if denom > 0 else 0.0


def literal_violation(w: np.ndarray, p: float, gamma: float, tau: float) -> float:
    """The largest relative violation of ``w >= 0``, ``||w||_p <= gamma`` (of ``|w|``: negative entries
    count) and ``w <= tau``: negativity relative to ``min(gamma, tau)``, the others to their bound."""
    if not w.size:
        return 0.0
    negative = max(0.0, -float(w.min())) / min(gamma, tau)
    over_norm = max(0.0, scaled_norm(np.abs(w), p) / gamma - 1.0)
    over_cap = max(0.0, float(w.max()) / tau - 1.0) if math.isfinite(tau) else 0.0
    return max(negative, over_norm, over_cap)


def _inversion(losses: np.ndarray, w: np.ndarray, slack: float) -> str:
    """Why ``w`` is not a maximizer because a larger loss has a smaller weight (by more than ``slack``):
    swapping the two would raise the value. "" if the weights follow the order of the losses."""
    order = np.argsort(losses, kind="stable")
    l, v = losses[order], w[order]
    starts = np.flatnonzero(np.r_[True, l[1:] != l[:-1]])  # groups of equal losses
    lowest = np.minimum.reduceat(v, starts)
    highest_below = np.maximum.accumulate(np.maximum.reduceat(v, starts))
    bad = np.flatnonzero(lowest[1:] < highest_below[:-1] - slack)
    if not bad.size:
        return ""
    g = int(bad[0]) + 1
    i = int(order[starts[g] + np.argmin(v[starts[g]:starts[g + 1] if g + 1 < starts.size else None])])
    j = int(order[np.argmax(v[:starts[g]])])
    return (f"not a maximizer: loss {losses[i]:.6g} > {losses[j]:.6g} but w[{i}] = {w[i]:.6g} < w[{j}] = {w[j]:.6g} "
            "(swapping them raises the value)")


def _infeasibility(w: np.ndarray, p: float, gamma: float, tau: float, tol: float) -> str:
    """Which constraints ``w`` violates beyond ``tol`` (relative), worst first, with index and amount."""
    found = []
    i, j = int(np.argmin(w)), int(np.argmax(w))
    if w[i] < 0:
        found.append((-w[i] / min(gamma, tau), f"negativity: w[{i}] = {w[i]:.3g}"))
    if math.isfinite(tau) and w[j] > tau:
        found.append((w[j] / tau - 1, f"cap: w[{j}] = {w[j]:.6g} > tau = {tau:.6g} (+{w[j] / tau - 1:.1e})"))
    norm = scaled_norm(np.abs(w), p)
    if norm > gamma:
        found.append((norm / gamma - 1, f"norm: ||w||_p = {norm:.6g} > gamma = {gamma:.6g} (+{norm / gamma - 1:.1e})"))
    found.sort(key=lambda item: -item[0])
    return "; ".join(text for excess, text in found if excess > tol) or "; ".join(text for _, text in found)
