"""The results of the theory *as stated*: one function per formula, usable on sympy symbols and floats.

The claims registry checks these statements two ways: symbolically (sympy derives the result
independently and the difference must simplify to zero) and numerically (the formula, evaluated
in floating point, must agree with the solvers and the certificate). Only ``**``, ``*``, ``+``,
``-`` and ``/`` are used, so each function works unchanged on sympy expressions and on floats.
A wrong formula here (say, a wrong exponent) is caught by both checks; the tests prove it.

Notation (``docs/spec.md``, ``docs/theory.md``): with the losses sorted in decreasing order and
``k`` of them at the cap, ``S = S_k`` is the sum of the ``k`` largest and ``R = R_k`` the sum of
the ``q``-th powers of the rest; ``m = (gamma/tau)^p`` is the cap count.
"""

from __future__ import annotations


def conjugate_exponent(p):
    """``q = p / (p - 1)``."""
    return p / (p - 1)


def paper_gamma(n, p):
    """Paper (section 3.1): ``gamma = n^(1/p - 1)``."""
    return n ** (1 / p - 1)


def paper_tau(n, p, ratio):
    """Paper (section 3.1): ``tau = gamma (ratio n)^(-1/p)``."""
    return paper_gamma(n, p) * (ratio * n) ** (-1 / p)


def closed_form_coefficient(gamma, tau, k, p, R):
    """``c = ((gamma^p - k tau^p) / R)^(1/p)``: uncapped weights are ``c l^(q-1)``."""
    return ((gamma**p - k * tau**p) / R) ** (1 / p)


def value_formula(tau, S, gamma, k, p, R):
    """``L = tau S_k + (gamma^p - k tau^p)^(1/p) R_k^(1/q)``."""
    q = conjugate_exponent(p)
    return tau * S + (gamma**p - k * tau**p) ** (1 / p) * R ** (1 / q)


def threshold_formula(R, m, k, p):
    """``t* = (R_k / (m - k))^(1/q)``, the loss level at which weights reach the cap."""
    q = conjugate_exponent(p)
    return (R / (m - k)) ** (1 / q)


def dual_on_interval(t, tau, S, k, gamma, R, p):
    """``g(t) = tau (S_k - k t) + gamma (R_k + k t^q)^(1/q)`` for ``t`` between the k-th and (k+1)-th loss."""
    q = conjugate_exponent(p)
    return tau * (S - k * t) + gamma * (R + k * t**q) ** (1 / q)


def holder_value(gamma, norm_q):
    """With no cap: ``L = gamma ||l+||_q`` (Hölder's inequality is tight)."""
    return gamma * norm_q


def cvar(S, next_loss, k, m):
    """``p = 1``: the mean of the top ``m`` losses, ``m`` fractional: ``(S_k + (m - k) l_(k+1)) / m``."""
    return (S + (m - k) * next_loss) / m


def dvalue_dgamma(gamma, tau, k, p, R):
    """``dL/dgamma = gamma^(p-1) (gamma^p - k tau^p)^(1/p - 1) R^(1/q)`` (``= ||min(l+, t*)||_q``)."""
    q = conjugate_exponent(p)
    return gamma ** (p - 1) * (gamma**p - k * tau**p) ** (1 / p - 1) * R ** (1 / q)


def dvalue_dtau(S, k, threshold):
    """``dL/dtau = S_k - k t* = sum_i (l_i - t*)+`` (envelope theorem on the dual)."""
    return S - k * threshold
