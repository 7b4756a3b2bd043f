r"""The closed form's formulas in NumPy, shared by the sort and selection paths of ``solvers.numpy``.

Once a path knows, for a pool, the number ``k`` of capped losses, the largest uncapped loss
``ref`` and ``tail_sum`` $= \sum_{\text{uncapped}} (l_i / \mathrm{ref})^q$, the answer is fixed:

* the budget left for the uncapped losses, $(\gamma^p - k \tau^p)^{1/p}$ (``holder_budget``), and the
  coefficient of their weights (``holder_coef``);
* the weights $\min(\tau, c\, (l/\mathrm{ref})^{q-1})$, ``tau`` above ``ref`` (``capped_power_weights``);
* the threshold $t^* = \mathrm{ref}\, (\mathrm{tail\_sum} / (m - k))^{1/q}$ (``holder_threshold``);
* at ``p = inf``, ``min(gamma, tau)`` on every positive loss (``pinf_pools``);
* at ``p = 1``, the cap count $\gamma/\tau$ (``p1_cap_count``) and the share of the budget left
  for the losses tied at the cut (``p1_share``).

Every function takes scalars (one pool) or arrays with one entry per pool. The Torch twins are in
``solvers._torch_closed_form``; ``tests/test_kernel_pairs.py`` runs each pair on the same inputs.
"""

from __future__ import annotations

import math

import numpy as np

from . import _numba_loops as numba_loops
from .problem import finite_in_pool, log_ratio, not_finite


def pinf_pools(flat: np.ndarray, mask, gamma, tau, value_wanted: bool = True, check_finite: bool = False):
    """p = inf: ``min(gamma, tau)`` on every positive loss in the pool (``mask``), for ``(pools, n)``
    losses: weights in their dtype, values (NaN unless ``value_wanted``: the sum is not taken), and
    thresholds (0 where every positive loss is capped, ``tau <= gamma``; inf otherwise).

    ``check_finite``: first raise ``not_finite`` for a NaN or infinite loss in the pool; without a mask and
    a value, the compiled loop checks in the pass that writes the weights (``solvers._numba_loops``)."""
    cap = np.minimum(gamma, tau)
    weights = np.empty_like(flat)
    thresholds = np.where(gamma >= tau, 0.0, np.inf)
    if mask is None and not value_wanted and numba_loops.fits(flat, weights):
        with np.errstate(over="ignore"):  # min(gamma, tau) beyond the dtype's range: inf, as the cast gives
            finite = numba_loops.positive_fill(flat, cap.astype(flat.dtype), weights)
        if check_finite and not finite:
            raise not_finite()
        return weights, np.full(cap.shape, math.nan), thresholds
    if check_finite and not finite_in_pool(flat, mask):
        raise not_finite()
    with np.errstate(over="ignore"):
        if mask is None and flat.size and flat.min() > 0:  # every loss positive: no mask, no masked sum
            weights[...] = cap.astype(flat.dtype)[:, None]
            if not value_wanted:
                return weights, np.full(cap.shape, math.nan), thresholds
            positive = None
            # float32 pairwise sums of positive terms are within 1e-6 relative; wider input keeps its dtype
            total = np.sum(flat, axis=1, dtype=np.promote_types(flat.dtype, np.float32)).astype(np.float64)
        else:
            positive = flat > 0
            if mask is not None:
                positive &= mask
            cap_w = cap.astype(flat.dtype)[:, None]  # inf where min(gamma, tau) is beyond the dtype's range
            if np.isfinite(cap_w).all():
                np.multiply(positive, cap_w, out=weights)  # no masked write: several times faster
            else:
                np.copyto(weights, np.where(positive, cap_w, flat.dtype.type(0)))
            if not value_wanted:
                return weights, np.full(cap.shape, math.nan), thresholds
            total = np.sum(flat, axis=1, where=positive, dtype=np.float64)
    beyond = np.isinf(total)
    if beyond.any():  # sums beyond float64's range (L need not be): again, divided by the pool's largest loss
        rows = flat[beyond].astype(np.float64)
        keep = rows > 0 if positive is None else positive[beyond]
        top = np.max(rows, axis=1, where=keep, initial=0.0)
        total[beyond] = np.sum(rows / top[:, None], axis=1, where=keep)
        cap[beyond] *= top  # value = (cap * top) * (sum / top): no step overflows unless L does
    return weights, cap * total, thresholds


def p1_cap_count(gamma, tau):
    """p = 1: the cap count $m = \\gamma / \\tau$ exactly (one division; 0 for ``tau = inf``)."""
    with np.errstate(over="ignore"):  # gamma / tau beyond float64: inf, room for every loss at the cap
        return np.where(np.isinf(tau), 0.0, np.divide(gamma, tau))


def p1_share(gamma, tau, above, tied):
    """p = 1: the weight of each of the ``tied`` losses at the cut, ``above`` losses being capped:
    what is left of ``gamma`` shared equally, at most ``tau`` (``tau = inf`` caps nothing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        spent = np.where(np.asarray(above) > 0, tau * np.asarray(above), 0.0)
        return np.minimum(tau, (gamma - spent) / np.maximum(tied, 1))


def holder_budget(gamma, p: float, m, k):
    """$(\\gamma^p - k \\tau^p)^{1/p}$ as $\\gamma (1 - k/m)^{1/p}$ with $m = (\\gamma/\\tau)^p$ (no powers
    of ``gamma`` or ``tau``, which over- or underflow for large ``p``); ``gamma`` where ``k = 0``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(np.asarray(k) > 0, k / np.where(np.asarray(m) > 0, m, 1.0), 0.0)
        return gamma * np.exp(np.log1p(-np.minimum(frac, 1.0)) / p)


def holder_coef(gamma, p: float, m, k, tail_sum):
    """The uncapped weights' coefficient $c$ in $c\\,(l/\\mathrm{ref})^{q-1}$: the remaining budget over
    $\\mathrm{tail\\_sum}^{1/p}$ (so that their $p$-norm is exactly that budget)."""
    return holder_budget(gamma, p, m, k) / tail_sum ** (1.0 / p)


def holder_threshold(ref, tail_sum, m, k, q: float):
    """$t^*$ solving $k + \\mathrm{tail\\_sum} / (t/\\mathrm{ref})^q = m$: at most the largest loss,
    ``inf`` without a cap (``m = 0``)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return ref * np.exp((np.log(tail_sum) - np.log(m - k)) / q)


EXP_FAST = -700.0  # NumPy's float64 exp takes a scalar path per entry below about -708: 20-200x slower


def power(r: np.ndarray, exponent: float, out: np.ndarray, floor: float | None = None) -> np.ndarray:
    """``r ** exponent`` for ``r >= 0`` into ``out`` (``exponent > 0``; ``r`` may be ``out``).

    float64 goes through ``exp(exponent * log(r))``: NumPy's float64 ``power`` is scalar libm code,
    100 times slower for exponents in the hundreds (``p`` near 1), while ``log`` and ``exp`` are
    vectorised; the result's relative error is about ``2 |exponent log r|`` ulps, at most about 1500 before
    it underflows, and 0 and 1 stay exact. float32 keeps ``power`` (vectorised, one rounding).

    ``floor`` (float64) is the caller's word that results below ``exp(floor)`` do not matter to it: they
    come back as some value in ``[0, exp(floor)]``, the others as without ``floor``. Results under
    ``exp(EXP_FAST)`` (about 1e-304: subnormals and underflows) are what makes exp slow; a floor above
    that is a clamp, one below it masks them out and recomputes those at or above the floor one by one.
    """
    if out.dtype != np.float64:
        return np.power(r, out.dtype.type(exponent), out=out)
    with np.errstate(divide="ignore", under="ignore"):
        np.log(r, out=out)
        np.multiply(out, exponent, out=out)
        if floor is not None and floor >= EXP_FAST:
            np.maximum(out, floor, out=out)
        elif floor is not None and out.size and out.min() < EXP_FAST:
            slow = out < EXP_FAST
            band = slow & (out >= floor)
            band_args = out[band]
            np.maximum(out, EXP_FAST, out=out)
            np.exp(out, out=out)
            np.multiply(out, ~slow, out=out)
            out[band] = np.exp(band_args)
            return out
        return np.exp(out, out=out)


def scale_weights(w: np.ndarray, coef) -> None:
    """``w *= coef`` for ``w >= 0`` and ``coef >= 0`` (float64, scalar or broadcastable), rounded once to ``w``'s
    dtype. A ``coef`` beyond that dtype's range (gamma above float32's largest, say) is applied in float64,
    so that only products beyond the range become inf, and a ``coef`` of inf keeps 0 at 0 (not NaN)."""
    coef = np.asarray(coef, dtype=np.float64)
    largest = float(coef) if coef.ndim == 0 else float(coef.max(initial=0.0))  # a scalar: no reductions
    with np.errstate(over="ignore", invalid="ignore"):
        if w.dtype != np.float64 and largest > np.finfo(w.dtype).max:
            np.multiply(w, coef, out=w, dtype=np.float64, casting="unsafe")
        else:
            np.multiply(w, coef.astype(w.dtype), out=w)
    if largest == math.inf:
        np.nan_to_num(w, copy=False, nan=0.0, posinf=np.inf)


def negligible_log(coef, dtype) -> float:
    """A ``floor`` for ``power`` whose results are multiplied by ``coef`` (>= 0) and stored in ``dtype``:
    a result below ``exp(floor)`` gives a product under half the smallest subnormal, which rounds to 0."""
    largest = float(np.max(coef)) if np.size(coef) else 0.0
    if not largest > 0:
        return math.inf
    smallest = float(np.finfo(dtype).smallest_subnormal)
    return math.log(smallest) - math.log(2.0) - math.log(largest) - 1.0


def capped_power_weights(x: np.ndarray, ref, coef, q: float, tau, out: np.ndarray | None = None,
                         stored=None) -> np.ndarray:
    """``min(tau, coef (x/ref)^(q-1))`` with ``tau`` above ``ref``, for ``x >= 0``, in ``x``'s dtype, into ``out``.

    ``ref``, ``coef`` and ``tau`` are scalars or arrays broadcastable against ``x`` (one per
    pool); ``out`` must not be ``x``. ``stored``: the dtype the caller keeps the weights in (``x``'s by
    default); weights that round to 0 in it may be 0 before the rounding, which spares ``power``'s slow
    underflows. A power of the ratio is one correctly rounded operation, so
    the relative error of a weight stays a few ulps even for ``q - 1 = 1000``; ratios that
    underflow go through logs, because ``(x/ref)^(q-1)`` can still matter for ``q`` near 1.
    No masked writes (slow on unordered data): the cap is a minimum and, where ``tau`` is finite,
    a maximum with ``tau`` times ``x > ref`` (pools without a cap have nothing above ``ref``).
    """
    dtype = x.dtype
    coef = np.asarray(coef, dtype=np.float64)  # float64, as it may exceed dtype's range (scale_weights)
    ref, tau = (np.asarray(v, dtype=np.float64).astype(dtype) for v in (ref, tau))
    w = np.empty_like(x) if out is None else out
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        np.divide(x, ref, out=w)
        tiny = None
        if w.size and w.min() < np.finfo(dtype).tiny:  # zeros, or ratios that underflow
            tiny = (w < np.finfo(dtype).tiny) & (x > 0)
        power(w, q - 1.0, out=w, floor=negligible_log(coef, dtype if stored is None else stored))
        scale_weights(w, coef)
        if tiny is not None and tiny.any():  # only the tiny ratios go through logs
            x_tiny, ref_tiny = x[tiny], np.broadcast_to(ref, x.shape)[tiny]
            tiny_weights = np.exp((q - 1.0) * log_ratio(x_tiny, ref_tiny)).astype(dtype)
            scale_weights(tiny_weights, np.broadcast_to(coef, x.shape)[tiny])
            w[tiny] = tiny_weights
        np.minimum(w, tau, out=w)
        np.maximum(w, np.multiply(x > ref, np.where(np.isinf(tau), 0, tau).astype(dtype)), out=w)
    return w
