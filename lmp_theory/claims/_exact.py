"""The stated formulas evaluated exactly (mpmath) on one pool, for the claims' searches.

Each claim's property compares what the solvers (or the certificate) return with the formula as
the claim states it, evaluated here with the formulas of ``formulas`` in mpmath (the registry
runs every property at 80 digits) with an unbounded exponent range: ``l^q`` for ``q ~ 1000`` and
subnormal or 1e300 losses need no tricks. The number of capped losses comes from the ``k-rule``
as stated (the smallest ``k < m`` with ``c_k l_(k+1)^(q-1) <= tau``); nothing here is shared with
the solvers. Losses are lists of mpmath numbers, so a loss can be moved by less than a float's ulp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath as mp
import numpy as np

from ..instance import Instance
from ..testing.golden import compute as exact_with_slack
from . import formulas as f


def difference_digits(losses: list) -> int:
    """Working digits for a central difference of ``L`` to resolve a step of 1e-25 of the smallest loss."""
    sizes = [abs(v) for v in losses if v != 0]
    span = 0 if not sizes else int(mp.ceil(mp.log10(max(sizes) / min(sizes))))
    return mp.mp.dps + 25 + span


def mpf_list(losses) -> list:
    """Float64 losses converted exactly to mpmath numbers."""
    return [mp.mpf(float(v)) for v in np.asarray(losses, dtype=np.float64).reshape(-1)]


def parameters(instance: Instance):
    """``(p, q, gamma, tau, m)`` as mpmath numbers (``q = inf`` at ``p = 1``; ``tau``, ``m`` may be inf)."""
    p = mp.inf if math.isinf(instance.p) else mp.mpf(instance.p)
    q = mp.inf if p == 1 else (mp.mpf(1) if p == mp.inf else p / (p - 1))
    gamma = mp.mpf(instance.gamma)
    tau = mp.inf if math.isinf(instance.tau) else mp.mpf(instance.tau)
    if tau == mp.inf:
        m = mp.inf
    elif p == mp.inf:
        m = mp.inf if gamma >= tau else mp.mpf(0)
    else:
        m = (gamma / tau) ** p
    return p, q, gamma, tau, m


@dataclass(frozen=True)
class Split:
    """The closed form of a ``1 < p < inf`` pool with ``k`` of its positive losses capped."""

    y: list            # positive losses, decreasing
    k: int             # capped count
    S: mp.mpf          # sum of the k largest
    R: mp.mpf          # sum of the q-th powers of the rest
    threshold: mp.mpf  # t_k* = (R_k / (m - k))^(1/q); 0 when every positive loss is capped; inf without a cap
    c: mp.mpf          # uncapped weights are c l^(q-1)


def positives(losses: list) -> list:
    return sorted((v for v in losses if v > 0), reverse=True)


RULE_SLACK = mp.mpf(10) ** -35  # a comparison with tau closer than this resolves either way: the weights agree


def k_rule(y: list, p, gamma, tau) -> int:
    """The smallest ``k < m`` with ``c_k y_(k+1)^(q-1) <= tau``; ``len(y)`` when ``len(y) <= m``."""
    if tau == mp.inf:
        return 0
    q = p / (p - 1)
    m = (gamma / tau) ** p
    if len(y) <= m:
        return len(y)
    for k in range(len(y)):
        if k >= m:
            break
        suffix = mp.fsum(v**q for v in y[k:])  # summed afresh: a running difference would cancel
        if f.closed_form_coefficient(gamma, tau, k, p, suffix) * y[k] ** (q - 1) <= tau * (1 + RULE_SLACK):
            return k
    raise AssertionError("the k-rule found no k < m on this pool")


def split(losses: list, instance: Instance, k: int | None = None) -> Split:
    """The closed form for ``k`` capped losses (default: the k-rule's), ``1 < p < inf``."""
    p, q, gamma, tau, m = parameters(instance)
    y = positives(losses)
    if k is None:
        k = k_rule(y, p, gamma, tau)
    S, R = mp.fsum(y[:k]), mp.fsum(v**q for v in y[k:])
    if k >= len(y):
        return Split(y, k, S, R, mp.mpf(0), mp.mpf(0))
    if tau == mp.inf:
        return Split(y, k, S, R, mp.inf, gamma / R ** (1 / p))
    return Split(y, k, S, R, f.threshold_formula(R, m, k, p), f.closed_form_coefficient(gamma, tau, k, p, R))


def weights(losses: list, instance: Instance, s: Split) -> list:
    """``tau`` on the ``k`` largest positive losses, ``c l^(q-1)`` on the other positive ones, 0 elsewhere.

    A group of tied losses split by the cut sits exactly at ``t*``, where both give ``tau``.
    """
    _, q, _, tau, _ = parameters(instance)
    first_uncapped = s.y[s.k] if s.k < len(s.y) else mp.mpf(0)
    return [mp.mpf(0) if v <= 0 else (tau if v > first_uncapped else s.c * v ** (q - 1)) for v in losses]


def value(losses: list, instance: Instance) -> mp.mpf:
    """``L`` from the stated formulas: top-m mean (p = 1), ``min(gamma, tau) sum l+`` (p = inf), else
    the value formula with the k-rule's ``k``."""
    p, q, gamma, tau, m = parameters(instance)
    y = positives(losses)
    if not y:
        return mp.mpf(0)
    if p == mp.inf:
        return min(gamma, tau) * mp.fsum(y)
    if p == 1:
        if tau == mp.inf:
            return gamma * y[0]
        if m >= len(y):
            return tau * mp.fsum(y)
        k = int(mp.floor(m))
        return tau * f.cvar(mp.fsum(y[:k]), y[k], k, m) * m
    s = split(losses, instance)
    if s.k >= len(y):
        return tau * s.S
    if tau == mp.inf:
        return f.holder_value(gamma, s.R ** (1 / q))
    return f.value_formula(tau, s.S, gamma, s.k, p, s.R)


def kinked(losses: list, instance: Instance) -> bool:
    """Whether ``L`` is not differentiable at ``losses``: the set that claim ``gradient`` states.

    (a) a zero loss where the budget is slack: ``p = inf``, or ``#{l_j > 0} tau^p < gamma^p``
    (with ``tau = inf``: no positive loss); (b) at ``p = 1`` only, a positive level ``t`` held by two or
    more losses that split what the losses above it leave: ``0 < gamma - tau #{l_j > t} < tau #{l_j = t}``
    (with ``tau = inf``: ``t`` the largest loss).
    """
    p, _, gamma, tau, _ = parameters(instance)
    y = positives(losses)
    if any(v == 0 for v in losses):
        if p == mp.inf or not y:
            return True
        if tau < mp.inf and len(y) * tau**p < gamma**p:
            return True
    if p != 1:
        return False
    for t in set(y):
        tied, above = y.count(t), sum(v > t for v in y)
        if tied < 2:
            continue
        if tau == mp.inf:
            if above == 0:
                return True
        elif 0 < gamma - tau * above < tau * tied:
            return True
    return False


def dual(losses: list, instance: Instance, t) -> mp.mpf:
    """``g(t) = tau sum (l_i - t)+ + gamma ||min(l+, t)||_q`` (``1 < p < inf``, finite ``tau``)."""
    _, q, gamma, tau, _ = parameters(instance)
    y = positives(losses)
    return tau * mp.fsum(v - t for v in y if v > t) + gamma * mp.fsum(min(v, t) ** q for v in y) ** (1 / q)


SUBNORMAL_SPACING = mp.mpf(2) ** -1074


def close(a, b, rtol, scale=None) -> bool:
    """``|a - b| <= rtol * scale``, or within 4 subnormal spacings (a float result cannot do better there).

    ``scale`` defaults to ``max(|a|, |b|)``.
    """
    a, b = mp.mpf(a), mp.mpf(b)
    scale = max(abs(a), abs(b)) if scale is None else mp.mpf(scale)
    return abs(a - b) <= max(rtol * scale, 4 * SUBNORMAL_SPACING)


def weights_close(got, expected: list, rtol: float) -> bool:
    """Every weight within ``rtol`` of the largest expected weight (all zero expected: exactly zero)."""
    top = max((abs(v) for v in expected), default=mp.mpf(0))
    return all(abs(mp.mpf(float(g)) - e) <= rtol * top for g, e in zip(np.asarray(got).reshape(-1), expected))


def weights_agree(got, expected: list, instance: Instance, rtol: float) -> bool:
    """``weights_close``, allowing also the problem's conditioning.

    Where ``m`` lies within rounding of an integer, the exact weights for the given float ``gamma``
    and ``tau`` move by much more than ``rtol`` when either moves by a few ulps; no float evaluation
    of ``m`` can do better. The allowance is the spread of the exact weights over 4-ulp changes of
    ``gamma`` and ``tau`` (the conformance kit's conditioning slack).
    """
    if weights_close(got, expected, rtol):
        return True
    top = max((abs(v) for v in expected), default=mp.mpf(0))
    slack = exact_with_slack(instance).weight_slack
    return all(abs(mp.mpf(float(g)) - e) <= rtol * top + slack
               for g, e in zip(np.asarray(got).reshape(-1), expected))
