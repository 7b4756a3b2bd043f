"""The kit's expected answers (its oracles), and where the problem has more than one maximizer.

An *oracle* maps a corpus case to its ``Expected`` answer (the exact canonical weights and
value), or to None, which tells the judge to take the duality certificate's answer instead. Three
sources, each independent of the fast solvers, chosen by name with ``oracle_named``:

* ``"golden"``: the mpmath evaluation of the closed form stored in ``golden.npz`` (``golden``,
  ``stored_answer``), for the corpus; cases without a stored answer (the large pools) fall back
  to the certificate. The kit's default.
* ``"reference"``: the cvxpy reference, refined and verified (``lmp_theory.reference.solve``;
  ``ReferenceOracle``, ``reference_answer``), for pools of at most ``CVXPY_MAX_N`` losses; larger
  pools, the ``CERTIFICATE_FAMILIES`` and a case whose reference fails its own verification fall
  back to the certificate.
  ``lmp verify`` uses it for the built-in solvers.
* ``"certificate"``: the duality certificate (``lmp_theory.certificate.dual_minimum``) for
  every case: its minimum is the exact value and its threshold ``t*`` fixes the canonical weights,
  ``w_i = tau min(1, l_i / t*)^(q-1)`` for positive losses (``certificate_answer``,
  ``canonical_weights``). This works for any pool size, so the fuzzer uses it too.

``free_entries`` says where other maximizers may differ from the canonical one; anywhere else
the maximizer is unique, and weights that differ there are wrong however good their value looks.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable

import numpy as np

from solvers.extras import import_extra
from solvers.problem import cap_count, check_choice, conjugate, log_ratio

from ..certificate import dual_minimum
from ..corpus import Case
from ..reference import Solution, solve
from . import golden
from .golden import ULPS, Expected

__all__ = ["ORACLES", "CVXPY_MAX_N", "CERTIFICATE_FAMILIES", "Oracle", "ReferenceOracle", "oracle_named", "stored_answer", "certificate_only",
           "reference_answer", "certificate_answer", "canonical_weights", "free_entries", "scale_exponent"]

ORACLES = ("golden", "reference", "certificate")
CVXPY_MAX_N = 5000  # larger pools are beyond cvxpy's reach in reasonable time: the certificate judges them
CERTIFICATE_FAMILIES = ("sizes", "large")  # judged by the certificate whatever the oracle (no golden, no cvxpy)
Oracle = Callable[[Case], "Expected | None"]

_GOLDEN_CACHE: dict | None = None


def _golden() -> dict:
    global _GOLDEN_CACHE
    if _GOLDEN_CACHE is None:
        _GOLDEN_CACHE = golden.load()
    return _GOLDEN_CACHE


def stored_answer(case: Case) -> Expected | None:
    """The stored mpmath answer of a corpus case, or None if none serves it (large pools)."""
    stored = _golden().get(case.name)
    return stored if stored is not None and stored.serves(case) else None


def certificate_only(case: Case) -> None:
    """The certificate oracle: no stored answer for any case, so the judge uses the certificate's."""
    return None


def reference_answer(case: Case, solution: Solution) -> Expected:
    """The reference's refined ``Solution`` of ``case`` as an expected answer (no conditioning slack).

    Only ``free_entries`` reads the threshold, and only at ``p = 1`` with a cap: there it is the
    cut, a function of the losses and ``m`` alone; NaN elsewhere.
    """
    cut = _p1_cut(np.asarray(case.losses, dtype=np.float64), case.gamma / case.tau) \
        if case.p == 1.0 and math.isfinite(case.tau) else math.nan
    return Expected(np.asarray(solution.weights, dtype=np.float64), float(solution.value), cut, 0.0, 0.0, "",
                    case.gamma, case.tau)


class ReferenceOracle:
    """The cvxpy reference as the oracle: each case solved once, on first demand, and remembered.

    ``solutions`` and ``errors`` (the reference's own failure, ``"Type: message"``) are keyed by
    case name. Pools above ``max_n`` losses, and cases whose reference failed, get None (the
    certificate's answer).
    """

    def __init__(self, max_n: int = CVXPY_MAX_N):
        import_extra("cvxpy", "the reference oracle (the golden and certificate oracles need no extra)")
        self.max_n = max_n
        self.solutions: dict[str, Solution] = {}
        self.errors: dict[str, str] = {}
        self._inputs: dict[str, str] = {}

    def __call__(self, case: Case) -> Expected | None:
        solution = self.solution(case)
        return None if solution is None else reference_answer(case, solution)

    def solution(self, case: Case) -> Solution | None:
        """The reference's ``Solution`` of ``case`` (None above ``max_n``, for ``CERTIFICATE_FAMILIES``,
        or if it failed)."""
        if case.n > self.max_n or case.family in CERTIFICATE_FAMILIES:
            return None
        digest = hashlib.sha256(np.ascontiguousarray(case.losses, dtype=np.float64).tobytes())
        digest.update(np.array([case.p, case.gamma, case.tau], dtype=np.float64).tobytes())
        if self._inputs.get(case.name) != digest.hexdigest():  # unseen, or another case of that name
            self._inputs[case.name] = digest.hexdigest()
            self.solutions.pop(case.name, None)
            self.errors.pop(case.name, None)
            try:
                self.solutions[case.name] = solve(case.losses, case.p, case.gamma, case.tau)
            except Exception as exc:  # noqa: BLE001  (VerificationError, a conic solver's failure)
                self.errors[case.name] = f"{type(exc).__name__}: {exc}"
        return self.solutions.get(case.name)


def oracle_named(name: str) -> Oracle:
    """A fresh oracle by name: ``"golden"``, ``"reference"`` or ``"certificate"`` (module docs)."""
    check_choice(name, "oracle", ORACLES)
    if name == "golden":
        return stored_answer
    return ReferenceOracle() if name == "reference" else certificate_only


def certificate_answer(losses: np.ndarray, p: float, gamma: float, tau: float, *, slack: bool = True) -> Expected:
    """The exact answer from the duality certificate, with (``slack=True``) the same conditioning
    slack as the golden answers: how far the answer moves when ``gamma`` or ``tau`` moves by
    ``ULPS`` ulps (four more certificates; without it the slack is 0).

    The certificate runs on the losses scaled by a power of two to a largest loss in [0.5, 1)
    (the maximizer does not change), so a threshold among subnormal losses keeps full precision.
    """
    l = np.asarray(losses, dtype=np.float64)
    e = scale_exponent(l)
    scaled = np.ldexp(l, -e)

    def answer(g, t):
        value, threshold = dual_minimum(scaled, p, g, t)
        if p == 1.0 and math.isfinite(t):  # the cut is a loss: taken unscaled (scaling may flush it to 0)
            cut = _p1_cut(l, g / t)
            return float(np.ldexp(value, e)), cut, canonical_weights(l, p, g, t, cut)
        with np.errstate(over="ignore"):
            original = float(np.ldexp(threshold, e))
        return float(np.ldexp(value, e)), original, canonical_weights(l, p, g, t, threshold, exponent=e)

    value, threshold, weights = answer(gamma, tau)
    eps = ULPS * np.finfo(np.float64).eps
    weight_slack = value_slack = 0.0
    for g, t in [] if not slack else [(gamma * (1 + eps), tau), (gamma * (1 - eps), tau), (gamma, tau * (1 + eps)), (gamma, tau * (1 - eps))]:
        v2, _, w2 = answer(g, t)
        weight_slack = max(weight_slack, float(np.max(np.abs(w2 - weights), initial=0.0)))
        value_slack = max(value_slack, abs(v2 - value))
    return Expected(weights, value, threshold, weight_slack, value_slack, "", gamma, tau, certified=True)


def _p1_cut(losses: np.ndarray, m: float) -> float:
    """The ``p = 1`` threshold: the ``floor(m)``-th largest positive loss (0 if at most ``m`` are positive)."""
    y = -np.sort(-losses[losses > 0])
    return 0.0 if y.size <= m else float(y[int(math.floor(m))])


def scale_exponent(losses: np.ndarray) -> int:
    """``e`` with ``max(losses) * 2^-e`` in [0.5, 1) (0 without a positive loss)."""
    top = float(np.max(losses, initial=0.0))
    return int(np.frexp(top)[1]) if top > 0 else 0


def canonical_weights(losses: np.ndarray, p: float, gamma: float, tau: float, threshold: float, *,
                      exponent: int = 0) -> np.ndarray:
    """The canonical maximizer from the certificate's threshold ``t* = threshold * 2^exponent``.

    For ``1 < p < inf`` the threshold only decides which losses are capped; the uncapped weights
    ``tau (l_i / t*)^(q-1)`` are then evaluated in logs relative to the largest uncapped loss, with
    ``t*`` from ``sum_uncapped (l_i / t*)^q = m - k`` (so neither ``q`` in the thousands nor losses
    spanning more than float64's range lose precision).
    """
    l = np.asarray(losses, dtype=np.float64)
    pos = l > 0
    w = np.zeros_like(l)
    if not np.any(pos):
        return w
    if math.isinf(p):
        w[pos] = min(gamma, tau)
        return w
    if p == 1.0:
        if math.isinf(tau):  # max-pooling: the largest losses share gamma
            top = l == l.max()
            w[top] = gamma / np.count_nonzero(top)
            return w
        if threshold <= 0:
            w[pos] = tau
            return w
        above, tied = l > threshold, pos & (l == threshold)
        w[above] = tau
        if np.any(tied):
            w[tied] = min(tau, max(0.0, gamma - tau * np.count_nonzero(above)) / np.count_nonzero(tied))
        return w
    q = conjugate(p)
    y = l[pos]
    if math.isinf(threshold):  # no cap reached: Hölder's weighting gamma (l / ||l+||_q)^(q-1)
        top = float(y.max())
        log_norm = math.log(float(np.sum(np.exp(q * log_ratio(y, top))))) / q  # log(||y||_q / top)
        w[pos] = gamma * np.exp((q - 1.0) * (log_ratio(y, top) - log_norm))
    elif threshold <= 0:
        w[pos] = tau
    else:
        capped = np.ldexp(y, -exponent) > threshold
        free = y[~capped]
        room = float(cap_count(p, gamma, tau)) - np.count_nonzero(capped)
        if free.size == 0 or room <= 0:
            w[pos] = tau
            return w
        ref = float(free.max())
        log_t = (math.log(float(np.sum(np.exp(q * log_ratio(free, ref))))) - math.log(room)) / q  # log(t*/ref)
        w[pos] = np.where(capped, tau, tau * np.exp((q - 1.0) * np.minimum(0.0, log_ratio(y, ref) - log_t)))
    return w


def free_entries(losses: np.ndarray, p: float, gamma: float, tau: float, threshold: float) -> np.ndarray:
    """Where some maximizer differs from the canonical one (bool mask); elsewhere it is unique.

    * zero losses while the budget is not spent (no positive loss, every positive loss capped
      with room to spare, or ``p = inf``, whose admissible set is a box);
    * at ``p = 1``: losses tied at the cut that share a positive remainder, or, without a cap,
      losses tied at the maximum.

    For ``1 < p < inf`` the positive losses always have a unique maximizer (the norm ball is
    strictly convex), and negative losses always get weight 0.
    """
    l = np.asarray(losses, dtype=np.float64)
    pos = l > 0
    n_pos = int(np.count_nonzero(pos))
    zero = l == 0
    if math.isinf(p):
        return zero
    capped_room = 0.0 if math.isinf(tau) else (gamma / tau if p == 1.0 else float(cap_count(p, gamma, tau)))
    free = zero & (n_pos == 0 or n_pos < capped_room)
    if p == 1.0 and n_pos > 0:
        if math.isinf(tau):
            tied = pos & (l == l.max())
        else:
            tied = pos & (l == threshold) if n_pos > capped_room else np.zeros_like(pos)
            remainder = gamma - tau * np.count_nonzero(l > threshold)
            tied = tied if remainder > 0 else np.zeros_like(pos)
        if np.count_nonzero(tied) > 1:
            free = free | tied
    return free
