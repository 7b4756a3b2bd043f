r"""Duality certificates: prove how close any proposed weighting is to optimal, with no solver.

For the LMP problem (``docs/theory.md``, "The dual and the certificate") the variational (dual)
formula is

.. math::

    L(l) = \min_{t \ge 0}\ g(t), \qquad
    g(t) = \tau \sum_i (l_i - t)^+ + \gamma\, \|\min(l^+, t)\|_q .

Every ``t`` gives an upper bound $g(t) \ge L$ and every feasible ``w`` a lower bound
$\langle w, l \rangle \le L$, so the *gap* $\min_t g(t) - \langle w, l\rangle$ bounds
the suboptimality of ``w`` from above. For ``p = 1`` this is the Rockafellar–Uryasev formula of
the CVaR of $l^+$ (``t >= 0``); for ``tau = inf`` it is Hölder's inequality (``t`` at the
largest loss).

$g$ is not convex (it bends down at the losses beyond the minimiser) but it is quasi-convex
(claim ``dual-quasiconvex``): away from the losses
$g'(t) = \#\{l_i > t\}\,(\gamma\, h(t)^{-1/p} - \tau)$, where
$h(t) = \sum_i \min(1, (l_i^+/t)^q)$ does not increase with ``t``, so $g$ falls until
$h(t) = m = (\gamma/\tau)^p$ and rises after. That root is the minimiser; it is found here
exactly, by bisection over the sorted losses (which breakpoint interval holds the root; the sign
of $h - m$ at the breakpoints is monotone) followed by the closed-form root inside that
interval. The path to the bound shares no algorithm with the fast solvers (no sort path, no selection,
none of their kernels); what it shares is ``solvers.problem``: the argument checks and the scalar
formulas ``conjugate``, ``cap_count`` and ``exp_or_inf``, which the conformance kit's mpmath answers
check independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from solvers.problem import (
    beyond_float64,
    cap_count,
    check_losses,
    check_mask_shape,
    check_single_pool,
    conjugate,
    exp_or_inf,
)

__all__ = ["Certificate", "certify", "dual_function", "dual_minimum"]


@dataclass(frozen=True)
class Certificate:
    """Duality certificate of a proposed weighting ``w`` for losses ``l``.

    Attributes
    ----------
    value : float
        $\\langle w, l\\rangle$, the objective of the proposed weighting.
    upper_bound : float
        $\\min_t g(t) = L(l)$, evaluated at ``threshold``.
    gap : float
        ``upper_bound - value``: for a feasible ``w``, how far it is from optimal at most.
    relative_gap : float
        ``gap / max(|upper_bound|, |value|)`` (0 when both are 0).
    violation : float
        Relative infeasibility of ``w``: the largest of ``max(0, -min w) / min(gamma, tau)``,
        ``(||w||_p - gamma)+ / gamma`` and ``(max w - tau)+ / tau``.
    threshold : float
        $t^*$, the root of $h(t) = m$: a minimiser of ``g`` and the loss level at
        which the optimal weights reach the cap (0 if every positive loss is capped, ``inf``
        if there is no cap).
    """

    value: float
    upper_bound: float
    gap: float
    relative_gap: float
    violation: float
    threshold: float

    def proves_optimal(self, rtol: float = 1e-10) -> bool:
        """True if ``w`` is feasible and within ``rtol`` of optimal (both relative)."""
        return self.violation <= rtol and abs(self.relative_gap) <= rtol


def scaled_norm(v: np.ndarray, r: float) -> float:
    """``||v||_r`` for non-negative ``v`` and ``r`` in ``[1, inf]``, scaled so no power overflows."""
    top = float(v.max()) if v.size else 0.0
    if top == 0.0:
        return 0.0
    if math.isinf(r):
        return top
    return top * float(np.sum((v / top) ** r)) ** (1.0 / r)


def dual_function(losses, t: float, p: float, gamma: float, tau: float) -> float:
    r"""$g(t) = \tau \sum_i (l_i - t)^+ + \gamma \|\min(l^+, t)\|_q$ for 1-D ``losses``.

    Every ``t >= 0`` gives an upper bound on $L(l)$. With ``tau = inf``, ``g(t) = inf``
    unless ``t`` is at least the largest loss.
    """
    lp = np.maximum(np.asarray(losses, dtype=np.float64), 0.0)
    excess = lp[lp > t] - t
    if excess.size:  # summed as excess / max(excess) so that n losses near 1e308 do not overflow
        top = float(excess.max())
        cap_term = tau * top * float(np.sum(excess / top))
    else:
        cap_term = 0.0
    return cap_term + gamma * scaled_norm(np.minimum(lp, t), conjugate(p))


def dual_minimum(losses, p: float, gamma: float, tau: float) -> tuple[float, float]:
    """``(min_t g(t), t*)`` for 1-D losses, with $g$ the dual function (``dual_function``).

    Away from the losses $g'(t) = \\#\\{l_i > t\\}\\,(\\gamma\\, h(t)^{-1/p} - \\tau)$ with
    $h(t) = \\sum_i \\min(1, (l_i^+/t)^q)$ non-increasing, so $g$ is quasi-convex and its minimiser
    ``t*`` is the root of $h(t) = m = (\\gamma/\\tau)^p$: found by bisection over the sorted losses
    (which interval holds the root), then the closed-form root inside that interval.
    The weights reach the cap at ``t*``: $w_i = \\tau \\min(1, (l_i/t^*)^{q-1})$.
    It is 0 when every positive loss is capped and ``inf`` when there is no cap; when nothing is
    capped it exceeds the largest loss (``g`` is flat there).
    """
    l = np.asarray(losses, dtype=np.float64)
    y = -np.sort(-l[l > 0])
    if y.size == 0:
        return 0.0, 0.0
    # Work on l * 2^-e with max(l) * 2^-e in [0.5, 1): exact (no rounding) unless the losses
    # span more than float64's range, and subnormal losses become normal so t keeps full precision.
    e = int(np.frexp(y[0])[1])
    scaled = np.ldexp(y, -e)
    scaled = scaled[scaled > 0]  # losses more than 1e308 below the largest: no measurable effect
    t = _threshold(scaled, p, gamma, tau)
    with np.errstate(over="ignore"):  # a threshold beyond 1e308 (nothing capped) is inf
        return float(np.ldexp(dual_function(scaled, t, p, gamma, tau), e)), float(np.ldexp(t, e))


def _threshold(y: np.ndarray, p: float, gamma: float, tau: float) -> float:
    """The root ``t*`` of ``h(t) = m`` for positive losses ``y`` sorted in decreasing order.

    ``0`` when every positive loss is capped (``m >= n``), ``inf`` when none can be (no cap).
    """
    n = y.size
    if math.isinf(p):
        return 0.0 if gamma >= tau else math.inf
    if math.isinf(tau):
        return math.inf
    if p == 1.0:
        m = gamma / tau
        return 0.0 if n <= m else float(y[int(math.floor(m))])
    q = conjugate(p)
    m = float(cap_count(p, gamma, tau))
    if n <= m:
        return 0.0

    def h_at(j: int) -> float:  # h(y_j) = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q
        below = y[y < y[j]]
        return float(np.count_nonzero(y >= y[j])) + float(np.sum((below / y[j]) ** q))

    # k = number of j with h(y_j) <= m; h(y_j) is non-decreasing in j.
    lo, hi = 0, n  # invariant: h(y_j) <= m for j < lo, > m for j >= hi
    while lo < hi:
        mid = (lo + hi) // 2
        if h_at(mid) <= m:
            lo = mid + 1
        else:
            hi = mid
    k = lo
    if k == n:
        return 0.0
    ref = float(y[k])
    upper = float(y[k - 1]) if k > 0 else math.inf  # with nothing capped, t* may exceed max(l)
    if m <= k:
        return upper
    tail = float(np.sum((y[k:] / ref) ** q))
    log_t_over_ref = (math.log(tail) - math.log(m - k)) / q  # t = ref (tail / (m - k))^(1/q)
    if log_t_over_ref <= 0.0:
        return ref
    if log_t_over_ref >= math.log(upper / ref):
        return upper
    return exp_or_inf(math.log(ref) + log_t_over_ref)  # m underflowing to ~0 puts t* beyond float range


def certify(losses, weights, p, gamma, tau) -> Certificate:
    r"""Certificate of optimality for a proposed weighting of 1-D ``losses``.

    Parameters
    ----------
    losses, weights : array_like, shape (n,)
        The losses and the weighting to certify (finite).
    p, gamma, tau : float
        The problem's parameters (``p`` in ``[1, inf]``, ``gamma`` in ``(0, inf)``,
        ``tau`` in ``(0, inf]``).

    Returns
    -------
    Certificate
        ``value`` $=\langle w, l\rangle$, ``upper_bound`` $=\min_t g(t)$, ``gap``,
        ``relative_gap``, ``violation`` and ``threshold``. ``w`` is proven optimal to ``rtol``
        when ``violation <= rtol`` and ``relative_gap <= rtol``.

    Raises
    ------
    ValueError
        For bad arguments, and when ``<w, l>`` or ``L`` is beyond float64's range (scale the
        losses down: the certificate of ``c l`` is that of ``l`` with ``value``, ``upper_bound`` and
        ``gap`` times ``c``).
    """
    l, p, gamma, tau = check_single_pool(losses, p, gamma, tau)
    w, _ = check_losses(weights, name="weights", masked_arrays=False)
    check_mask_shape(w.shape, l.shape, "weights")
    w = w.astype(np.float64)

    scale = float(np.max(np.abs(l))) if l.size else 0.0
    value = scale * float(np.sum(w * (l / scale))) if scale > 0 else 0.0
    upper, threshold = dual_minimum(l, p, gamma, tau)
    for name, number in (("the value <w, l>", value), ("the upper bound min_t g(t)", upper)):
        if not math.isfinite(number):
            raise beyond_float64(name)
    gap = upper - value
    denom = max(abs(upper), abs(value))
    relative_gap = gap / denom if denom > 0 else 0.0

    negative = max(0.0, -float(w.min())) / min(gamma, tau) if w.size else 0.0
    wp = np.maximum(w, 0.0)
    over_norm = max(0.0, scaled_norm(wp, p) / gamma - 1.0)
    over_cap = max(0.0, float(w.max()) / tau - 1.0) if w.size and math.isfinite(tau) else 0.0
    violation = max(negative, over_norm, over_cap)
    return Certificate(value, upper, gap, relative_gap, violation, threshold)

