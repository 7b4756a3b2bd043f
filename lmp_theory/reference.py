r"""The exact reference: loss max-pooling stated in cvxpy, solved with Clarabel, then refined.

The problem is stated as in the paper (Rota Bulò et al., CVPR 2017, eq. 3):

.. math::

    \max_w\ \langle w, l \rangle \quad \text{s.t.} \quad w \ge 0,\ \|w\|_p \le \gamma,\ w \le \tau,

with ``cp.pnorm(w, p, approx=False)`` (exact power cones) for ``1 < p < inf``, an LP for
``p = 1`` and a box for ``p = inf``. Losses are divided by their largest magnitude and weights
by ``gamma`` before the conic solve (both leave the maximizer unchanged up to that scaling), and
the cap is left out when ``tau >= gamma`` because $w_i \le \|w\|_p \le \gamma$ already.

A conic solution is accurate only to the solver's tolerance (about 1e-6 of ``tau`` in the
weights), so it is *refined*: the number of capped losses is read off the conic weights, the
exact weights are recomputed on that active set, the active set is corrected by a monotone
search if the KKT conditions are violated, and the result is verified two ways: the KKT
conditions with the multipliers written out, and the duality certificate of
``lmp_theory.certificate``. If verification fails, ``VerificationError`` is raised
instead of returning a doubtful answer. The result is the canonical (least-norm) maximizer:
zero weight on non-positive losses and equal weights on equal losses.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from solvers.extras import import_extra
from solvers.problem import (
    cap_count,
    check_single_pool,
    conjugate,
    log_ratio,
)

from .certificate import Certificate, certify, scaled_norm

__all__ = ["solve", "Solution", "VerificationError", "KKT_TOLERANCE", "GAP_TOLERANCE"]

KKT_TOLERANCE = 1e-9
GAP_TOLERANCE = 1e-9


class VerificationError(RuntimeError):
    """The refined reference solution failed its KKT or certificate check."""


@dataclass(frozen=True)
class Solution:
    """Exact, refined solution of one LMP problem.

    ``weights`` is the canonical maximizer and ``value`` its objective; ``status`` and
    ``raw_weights`` / ``raw_value`` are cvxpy's; ``capped`` is the number of losses at the cap;
    ``moved`` how many losses the refinement moved into or out of the capped set read off
    the conic solution; ``kkt_residual`` the largest relative KKT violation; ``certificate``
    the duality certificate of ``weights``.
    """

    weights: np.ndarray
    value: float
    status: str
    raw_weights: np.ndarray
    raw_value: float
    capped: int
    moved: int
    kkt_residual: float
    certificate: Certificate
    solve_seconds: float
    notes: list = field(default_factory=list)


def solve(losses, p, gamma, tau, *, verify: bool = True, solver_options: dict | None = None) -> Solution:
    """Solve one LMP problem exactly (cvxpy + Clarabel, refined and verified).

    Parameters
    ----------
    losses : array_like, shape (n,)
        Finite losses of one pool.
    p : float
        ``1``, any float ``> 1``, or ``inf``.
    gamma : float
        Norm budget, finite and ``> 0``.
    tau : float
        Cap ``> 0``; ``inf`` for none.
    verify : bool
        Raise ``VerificationError`` if the KKT residual or the certificate's relative gap
        exceeds 1e-9 or the weights are infeasible by more than 1e-12 (default True).
    solver_options : dict, optional
        Extra keyword arguments for Clarabel (defaults: tolerances 1e-10, 500 iterations).
    """
    cp = import_extra("cvxpy", "lmp_theory.reference.solve")  # here: cvxpy takes seconds to import
    import_extra("clarabel", "lmp_theory.reference.solve")  # the conic solver it uses

    l, p, gamma, tau = check_single_pool(losses, p, gamma, tau)
    n = l.size
    started = time.perf_counter()
    if n == 0:
        empty = np.zeros(0)
        cert = certify(empty, empty, p, gamma, tau)
        return Solution(empty, 0.0, "empty", empty, 0.0, 0, 0, 0.0, cert, 0.0)

    scale = float(np.max(np.abs(l)))
    scaled = l / scale if scale > 0 else l
    options = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500}
    options.update(solver_options or {})
    notes = []
    # Attempts: as stated (exact power cones); then with losses below 1e-20 of the largest set
    # to 0 (they move the value by less than 1e-20 relative); then below 1e-8, with zero-loss
    # entries (weight 0 at an optimum) left out; then cvxpy's SOC approximation of the p-norm,
    # which Clarabel solves where the power-cone form fails (seen at p = 1.05, n = 500). The
    # conic answer only suggests the active set: refinement and verification use the true losses.
    attempts = [(options, 0.0, False, False), (options, 1e-20, False, False),
                (options, 1e-8, True, False), ({}, 0.0, False, True), ({}, 1e-8, True, True)]
    for attempt, (opts, floor, drop, approx) in enumerate(attempts):
        conic_losses = np.where(np.abs(scaled) < floor, 0.0, scaled)
        kept = conic_losses > 0 if drop else np.ones(n, dtype=bool)
        v = np.zeros(n)
        if not np.any(kept):
            status = "optimal"
            break
        v_kept, status = _conic_solve(cp, conic_losses[kept], p, gamma, tau, opts, approx)
        if v_kept is not None:
            v[kept] = v_kept
            break
        notes.append(f"attempt {attempt + 1}: Clarabel status {status}")
    else:
        raise VerificationError(
            f"Clarabel found no solution for n={n}, p={p}, gamma={gamma}, tau={tau}: " + "; ".join(notes)
        )
    if attempt:
        notes.append(
            f"solved at attempt {attempt + 1}: losses below {floor:g} x max zeroed"
            + (", zero losses left out" if drop else "") + (", SOC-approximated p-norm" if approx else "")
        )
    raw = np.clip(v, 0.0, None) * gamma
    raw_value = float(scale * np.dot(raw, scaled)) if scale > 0 else 0.0

    weights, capped, moved, kkt = _refine(l, raw, p, gamma, tau)
    cert = certify(l, weights, p, gamma, tau)
    seconds = time.perf_counter() - started
    solution = Solution(weights, cert.value, status, raw, raw_value, capped, moved, kkt, cert, seconds, notes)
    if verify:
        problems = []
        if not kkt <= KKT_TOLERANCE:
            problems.append(f"KKT residual {kkt:.3g} > {KKT_TOLERANCE:g}")
        if not abs(cert.relative_gap) <= GAP_TOLERANCE:
            problems.append(f"certificate relative gap {cert.relative_gap:.3g} > {GAP_TOLERANCE:g}")
        if not cert.violation <= 1e-12:
            problems.append(f"infeasibility {cert.violation:.3g} > 1e-12")
        if problems:
            raise VerificationError(
                f"reference solution for n={n}, p={p}, gamma={gamma}, tau={tau} failed verification: "
                + "; ".join(problems)
            )
    return solution


def _conic_solve(cp, scaled, p, gamma, tau, options, approx=False):
    """Solve the scaled problem (weights divided by gamma); ``(weights or None, status)``."""
    v = cp.Variable(scaled.size, nonneg=True)
    if p == 1.0:
        constraints = [cp.sum(v) <= 1.0]
    elif math.isinf(p):
        constraints = [v <= 1.0]
    else:
        constraints = [cp.pnorm(v, p, approx=approx) <= 1.0]
    if tau < gamma:
        constraints.append(v <= tau / gamma)
    problem = cp.Problem(cp.Maximize(scaled @ v), constraints)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "inaccurate": refinement decides
            problem.solve(solver=cp.CLARABEL, **options)
    except cp.error.SolverError as exc:
        return None, f"error ({exc})"
    if v.value is None or problem.status not in ("optimal", "optimal_inaccurate"):
        return None, str(problem.status)
    return np.asarray(v.value, dtype=np.float64), problem.status



def _refine(l, raw, p, gamma, tau):
    """Exact canonical weights on the active set suggested by the conic solution ``raw``."""
    positive = l > 0
    y = -np.sort(-l[positive])
    n_pos = y.size
    if n_pos == 0:
        return np.zeros_like(l), 0, 0, 0.0
    if math.isinf(p):
        cap = min(gamma, tau)
        return np.where(positive, cap, 0.0), (n_pos if tau <= gamma else 0), 0, 0.0
    near_cap = positive & (raw >= tau * (1.0 - 1e-4)) if math.isfinite(tau) else np.zeros_like(positive)
    guess = int(np.count_nonzero(near_cap))
    if p == 1.0:
        oracle, build, kkt = _p1_active_set(y, gamma, tau)
    else:
        oracle, build, kkt = _holder_active_set(y, p, gamma, tau)
    k = _monotone_search(oracle, guess, n_pos)
    weights = build(k, l)
    return weights, k, abs(k - guess), kkt(k, l, weights)


def _monotone_search(oracle, start: int, n: int) -> int:
    """Smallest-step search for ``k`` in ``[0, n]`` with ``oracle(k) == 0``.

    ``oracle(k)`` is ``+1`` if more losses must be capped, ``-1`` if fewer, ``0`` if the
    active set ``k`` satisfies the KKT conditions; it is monotone in ``k``. Starting at the
    conic solution's guess, the step doubles (galloping) and the bracket is then bisected.
    """
    k = min(max(start, 0), n)
    direction = oracle(k)
    if direction == 0:
        return k
    step, lo, hi = 1, k, k
    while True:
        nxt = min(max(k + direction * step, 0), n)
        verdict = oracle(nxt)
        if verdict == 0:
            return nxt
        if verdict != direction or nxt in (0, n):
            lo, hi = sorted((k, nxt))
            break
        k, step = nxt, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        verdict = oracle(mid)
        if verdict == 0:
            return mid
        lo, hi = (mid, hi) if verdict > 0 else (lo, mid)
    for cand in (lo, hi):
        if oracle(cand) == 0:
            return cand
    raise VerificationError("no active set satisfies the KKT conditions (refinement search failed)")


def _p1_active_set(y, gamma, tau):
    """p = 1: ``k`` = cut index; tau above ``y[k]``, the remainder shared by the ties at ``y[k]``."""
    n_pos = y.size

    def shares(k):
        t = y[k]
        above = int(np.count_nonzero(y > t))
        at = int(np.count_nonzero(y == t))
        spent = tau * above if above else 0.0
        return t, (gamma - spent) / at

    def oracle(k):
        if k == n_pos:  # every positive loss at the cap: needs n_pos * tau <= gamma
            return 0 if n_pos * tau <= gamma else -1
        t, share = shares(k)
        if share > tau * (1 + 1e-15):
            return +1
        if share < 0:
            return -1
        return 0

    def build(k, l):
        if k == n_pos:
            return np.where(l > 0, tau, 0.0)
        t, share = shares(k)
        return np.where(l > t, tau, np.where((l == t) & (l > 0), min(share, tau), 0.0))

    def kkt(k, l, w):
        # LP duality: multiplier t on sum(w) <= gamma; w = tau above t, 0 below, in [0, tau] at t.
        t = 0.0 if k == n_pos else y[k]
        budget = 0.0 if t == 0 else abs(w.sum() - gamma) / gamma
        wrong_above = np.any((l > t) & (l > 0) & (w != tau))
        wrong_below = np.any((l < t) & (w != 0))
        return max(budget, float(wrong_above or wrong_below))

    return oracle, build, kkt


def _holder_active_set(y, p, gamma, tau):
    """1 < p < inf: ``k`` capped losses, the rest $c\\,l_i^{q-1}$ with the remaining budget."""
    n_pos = y.size
    q = conjugate(p)
    m = float(cap_count(p, gamma, tau))

    def tail_sum(k):
        return float(np.sum((y[k:] / y[k]) ** q))  # sum_{i >= k} (y_i / y_k)^q, at least 1

    def oracle(k):
        # With k capped, the threshold is t = y_k (tail / (m - k))^(1/q). It is compared with
        # y_k and y_(k-1) in log space, never formed: for subnormal losses t would be rounded.
        if k == n_pos:
            return 0 if n_pos <= m else -1
        if m <= k:
            return 0 if k == 0 else -1  # m = 0: no cap, nothing may be capped
        log_excess = math.log(tail_sum(k)) - math.log(m - k)  # q log(t / y_k)
        if log_excess < -1e-15:
            return +1  # the largest uncapped loss would get more than tau
        if k > 0 and log_excess > q * float(log_ratio(y[k - 1], y[k])) + 1e-15:
            return -1  # the smallest capped loss is below the threshold
        return 0

    def build(k, l):
        if k == n_pos:
            return np.where(l > 0, tau, 0.0)
        ref, tail = y[k], tail_sum(k)
        budget = gamma * math.exp(math.log1p(-k / m) / p) if k else gamma
        with np.errstate(divide="ignore", under="ignore", over="ignore"):
            log_w = math.log(budget) - math.log(tail) / p + (q - 1.0) * log_ratio(np.where(l > 0, l, 1.0), ref)
            w = np.where((l > ref) | (log_w >= math.log(tau)), tau, np.exp(log_w))
        return np.where(l > 0, w, 0.0)

    def kkt(k, l, w):
        """Stationarity l_i = lambda (w_i/gamma)^(p-1) + mu_i - nu_i, written in weight space.

        Weights below 1e-280 (underflowed powers of tiny losses) are left out of the check.
        """
        interior = (l > 0) & (w < tau) & (w > 1e-280)
        residual = 0.0
        if np.any(interior):
            r = int(np.argmax(np.where(interior, l, -np.inf)))
            # the same multiplier lambda = l_r (gamma / w_r)^(p-1) for every interior loss
            predicted = w[r] * np.exp((q - 1.0) * log_ratio(np.where(interior, l, l[r]), l[r]))
            residual = float(np.max(np.abs(np.where(interior, w - predicted, 0.0))) / w.max())
            # complementary slackness of the norm constraint (lambda > 0)
            residual = max(residual, abs(scaled_norm(w, p) / gamma - 1.0))
            # mu_i >= 0 for capped losses: l_i >= t, the level where the interior formula hits tau
            at_cap = (l > 0) & (w >= tau)
            if np.any(at_cap):
                log_t = math.log(l[r]) + (p - 1.0) * math.log(tau / w[r])  # (q-1)(p-1) = 1
                shortfall = -np.expm1(np.minimum(np.log(l[at_cap]) - log_t, 0.0))
                residual = max(residual, float(np.max(shortfall)))
        nu_violation = np.any((l <= 0) & (w != 0))
        return max(residual, float(nu_violation))

    return oracle, build, kkt

