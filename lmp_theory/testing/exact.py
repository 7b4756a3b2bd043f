r"""The closed form in high-precision arithmetic (mpmath): the conformance kit's independent path.

Every float64 input is converted to mpmath exactly, and the closed form of ``docs/spec.md``
is evaluated with 50 significant digits and an unbounded exponent range, so neither
``l^q`` near ``p = 1`` (``q ~ 1000``) nor subnormal or 1e300 losses need any scaling trick. It
shares no code with the fast solvers: the number of capped losses is found by a direct scan of
$h(y_j) = j + \sum_{i \ge j} (y_i / y_j)^q$ over suffix sums of $y^q$.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np

DIGITS = 50


def exact_solution(losses: np.ndarray, p: float, gamma: float, tau: float):
    """``(weights as float64, value as float, threshold as float)`` of one pool, to 50 digits."""
    with mp.workdps(DIGITS):
        l = [mp.mpf(float(v)) for v in np.asarray(losses, dtype=np.float64)]
        positive = sorted((v for v in l if v > 0), reverse=True)
        g = mp.mpf(gamma)
        t_cap = mp.inf if math.isinf(tau) else mp.mpf(tau)
        if not positive:
            return np.zeros(len(l)), 0.0, 0.0
        if math.isinf(p):
            weight = min(g, t_cap)
            w = [weight if v > 0 else mp.mpf(0) for v in l]
            threshold = 0.0 if gamma >= tau else math.inf
        elif p == 1.0:
            w, threshold = _p1(l, positive, g, t_cap)
        else:
            w, threshold = _holder(l, positive, mp.mpf(p), g, t_cap)
        value = mp.fsum(wi * li for wi, li in zip(w, l))
        return np.array([float(wi) for wi in w]), float(value), float(threshold)


def _p1(l, y, gamma, tau):
    m = mp.mpf(0) if tau == mp.inf else gamma / tau
    if len(y) <= m:
        return [tau if v > 0 else mp.mpf(0) for v in l], 0.0
    t = y[int(mp.floor(m))]
    above = sum(1 for v in y if v > t)
    tied = sum(1 for v in y if v == t)
    share = min(tau, (gamma - (tau * above if above else 0)) / tied)
    return [tau if v > t else (share if v == t else mp.mpf(0)) for v in l], float(t)


def _holder(l, y, p, gamma, tau):
    q = p / (p - 1)
    if tau == mp.inf:  # Hölder: w = gamma l^(q-1) / ||l||_q^(q-1)
        norm_q = mp.fsum(v**q for v in y) ** (1 / q)
        return [gamma * (v / norm_q) ** (q - 1) if v > 0 else mp.mpf(0) for v in l], math.inf
    m = (gamma / tau) ** p
    if len(y) <= m:
        return [tau if v > 0 else mp.mpf(0) for v in l], 0.0
    powers = [v**q for v in y]
    suffix = [mp.mpf(0)] * (len(y) + 1)
    for j in range(len(y) - 1, -1, -1):
        suffix[j] = suffix[j + 1] + powers[j]
    k = 0
    while k < len(y) and k + suffix[k] / powers[k] < m:  # h(y_k) < m: y_k is capped
        k += 1
    t = (suffix[k] / (m - k)) ** (1 / q)
    return [tau * min(mp.mpf(1), (v / t) ** (q - 1)) if v > 0 else mp.mpf(0) for v in l], t
