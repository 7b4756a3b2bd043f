r"""Closed-form loss max-pooling in NumPy: the public front end.

Solves, independently for every pool ``losses[..., :]``,

.. math::

    L(l) = \max \{ \langle w, l \rangle : w \ge 0,\ \|w\|_p \le \gamma,\ w_i \le \tau \}

and returns the canonical (least Euclidean norm) maximizer (``docs/theory.md``, "The closed
form"). With $q = p/(p-1)$ and the cap count $m = (\gamma/\tau)^p$, the maximizer is

.. math::

    w_i = \tau \min\left(1, (l_i / t^*)^{q-1}\right) \ \text{for}\ l_i > 0, \qquad
    \sum_i \min\left(1, (l_i^+ / t^*)^q\right) = m,

that is, the ``k`` largest losses sit at the cap and the rest follow Hölder's weighting
$c\, l_i^{q-1}$ with what is left of the norm budget. ``p = 1`` is the top-``m`` mean
(the CVaR, fractional ``m`` exact, ties at the cut sharing equally) and ``p = inf`` gives
$\min(\gamma, \tau)$ to every positive loss.

Two paths find ``k`` and $t^*$ (``method``): sorting, vectorised over chunks of pools
(``solvers._numpy_sort``, $O(n \log n)$), and selection from a sampled bracket, pool
by pool (``solvers._numpy_select``, expected $O(n)$: two passes over blocks of the pool). Both compute
their powers in float32 where ``p`` allows (``solvers._policy``). Where numba is installed (the ``fast``
extra), a few passes run as compiled loops (``solvers._numba_loops``): the same weights at ``p = 1``
and ``p = inf``, the same to a sum's rounding at ``1 < p < inf``. ``p`` may be as close to 1 as
``1 + 1e-15`` and as large as ``1e6``, the losses may span ``1e-300`` to ``1e300``; weights come back in
the input's floating dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._numpy_closed_form import pinf_pools
from ._numpy_select import select_pools
from ._numpy_sort import sort_pools
from ._policy import AUTO_SELECT_MIN_N, check_method
from .problem import beyond_range, check_gamma, check_losses, check_p, check_pool_parameter, check_tau

__all__ = ["lmp_weights", "lmp_value", "lmp_solve", "LMPResult"]


class LMPResult(NamedTuple):
    """Weights (shape of ``losses``), values and thresholds (shape ``losses.shape[:-1]``)."""

    weights: np.ndarray
    value: np.ndarray
    threshold: np.ndarray


def lmp_weights(losses, p, gamma, tau, *, mask=None, method: str = "auto") -> np.ndarray:
    r"""Canonical maximizer $w^*$ of $\langle w, l \rangle$ over the LMP set.

    Parameters
    ----------
    losses : array_like, shape (..., n)
        Every leading index is an independent pool over the last axis. Must be finite in the pool.
        A ``np.ma.MaskedArray``'s masked entries are out of the pool (combined with ``mask``).
    p : float
        Norm exponent: ``1``, any float ``> 1``, or ``inf``.
    gamma : float or array_like
        Norm budget ``> 0`` (finite), scalar or broadcastable to ``losses.shape[:-1]``.
    tau : float or array_like
        Per-weight cap ``> 0``; ``inf`` means no cap. Scalar or broadcastable like ``gamma``.
    mask : bool ndarray of shape ``losses.shape``, optional
        True = in the pool. Entries outside get weight 0 and are not inspected.
    method : {"auto", "sort", "select"}
        ``"sort"``: vectorised over chunks of pools, $O(n \log n)$; ``"select"``: pool by pool,
        expected $O(n)$ (sampled bracket, then exact; pools below 4,096 losses take the sort
        path); ``"auto"``: select for pools of at least 16,384 losses, sort otherwise. All give
        the same canonical answer.

    Returns
    -------
    ndarray
        Weights with the shape and floating dtype of ``losses`` (float64 for integer input).
    """
    return _solve(losses, p, gamma, tau, mask, method, value_wanted=False).weights


def lmp_value(losses, p, gamma, tau, *, mask=None, method: str = "auto"):
    r"""The pooled loss $L(l) = \langle w^*, l \rangle$, one value per pool.

    Same arguments as ``lmp_weights``; returns an array of shape ``losses.shape[:-1]``
    (a scalar for 1-D losses). An empty pool has value 0. A value beyond the range of the
    losses' dtype (float16 losses whose L exceeds 65504, say) raises ``ValueError``.
    """
    return lmp_solve(losses, p, gamma, tau, mask=mask, method=method).value


def lmp_solve(losses, p, gamma, tau, *, mask=None, method: str = "auto") -> LMPResult:
    r"""Weights, values and thresholds $t^*$ of every pool.

    $t^*$ is the root of $\sum_i \min(1, (l_i^+/t)^q) = m$, the loss level at which
    weights reach the cap ($w_i = \tau \min(1, (l_i/t^*)^{q-1})$); it minimises the dual
    function $g(t) = \tau \sum_i (l_i - t)^+ + \gamma \|\min(l^+, t)\|_q$ (claim ``dual``).
    It is 0 when every positive loss is capped and ``inf`` when there is no cap.
    Same arguments as ``lmp_weights``; a value beyond its dtype's range raises, as in ``lmp_value``.
    """
    return _solve(losses, p, gamma, tau, mask, method, value_wanted=True)


def _solve(losses, p, gamma, tau, mask, method, *, value_wanted: bool) -> LMPResult:
    """``lmp_solve``; ``value_wanted=False`` (``lmp_weights``) skips the check of the value's range."""
    p = check_p(p)
    check_method(method)
    gamma = check_gamma(gamma)
    tau = check_tau(tau)
    arr, mask = check_losses(losses, mask, finite=False)  # each path below checks, where it can while reading
    batch_shape, n = arr.shape[:-1], arr.shape[-1]
    gamma = check_pool_parameter(gamma, "gamma", batch_shape).reshape(-1)
    tau = check_pool_parameter(tau, "tau", batch_shape).reshape(-1)
    out_dtype = arr.dtype

    pools = math.prod(batch_shape)
    flat_mask = None if mask is None else mask.reshape(pools, n)
    if n == 0 or pools == 0:
        weights, value, threshold = np.zeros((pools, n)), np.zeros(pools), np.zeros(pools)
    elif math.isinf(p):  # one vectorised pass, no copies
        weights, value, threshold = pinf_pools(arr.reshape(pools, n), flat_mask, gamma, tau, value_wanted,
                                                 check_finite=True)
    elif method == "sort" or (method == "auto" and n < AUTO_SELECT_MIN_N):
        weights, value, threshold = sort_pools(arr.reshape(pools, n), flat_mask, p, gamma, tau,
                                               value_wanted=value_wanted, check_finite=True)
    else:
        weights, value, threshold = select_pools(arr.reshape(pools, n), flat_mask, p, gamma, tau, value_wanted,
                                                 check_finite=True)
    weights = weights.reshape(arr.shape).astype(out_dtype, copy=False)
    if value_wanted:
        too_large = ~(np.abs(value) <= np.finfo(out_dtype).max)
        if too_large.any():
            raise beyond_range(float(value[too_large][0]), out_dtype)
    with np.errstate(over="ignore"):  # only lmp_weights gets here with such a value, and drops it
        value = value.reshape(batch_shape).astype(out_dtype, copy=False)[()]
    threshold = threshold.reshape(batch_shape)[()]
    return LMPResult(weights, value, threshold)
