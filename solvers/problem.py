r"""The loss max-pooling problem: its parameters, their validation and derived quantities.

Given losses $l \in \mathbb{R}^n$, $p \in [1, \infty]$, $\gamma > 0$ and
$\tau \in (0, \infty]$, loss max-pooling (Rota Bulò, Neuhold, Kontschieder, CVPR 2017,
arXiv 1704.02966, eq. 3) is

.. math::

    L(l) = \max \{ \langle w, l \rangle : w \ge 0,\ \|w\|_p \le \gamma,\ w_i \le \tau \}.

This module is the single place that knows what a valid ``p``, ``gamma``, ``tau``, ``ratio``,
pool size, loss array, mask and option are, and the one place their error messages are written:
both backends, the certificate and the reference call it, so that every public entry point
rejects bad input with the same message (``docs/spec.md``, "Bad input"). The Torch front end
checks tensors itself (no host round trip) and raises the errors made here.

Two derived quantities recur everywhere:

* the conjugate exponent $q = p / (p - 1)$ (``conjugate``), and
* the *cap count* $m = (\gamma / \tau)^p$ (``cap_count``): the (real) number of
  weights that can sit at the cap $\tau$ before the $p$-norm budget is spent.
  With the paper's parameters it is exactly ``ratio * n``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "check_p",
    "check_gamma",
    "check_tau",
    "check_ratio",
    "check_counts",
    "check_losses",
    "check_mask",
    "check_pool_parameter",
    "check_scalar_parameter",
    "check_single_pool",
    "check_single_pool_scalar",
    "parameter_ok",
    "check_flag",
    "check_choice",
    "check_dimensions",
    "check_mask_shape",
    "not_broadcastable",
    "not_finite",
    "not_a_tensor",
    "not_real",
    "beyond_float64",
    "not_sizes",
    "mismatched_call",
    "not_member",
    "SMALLEST_PARAMETER",
    "conjugate",
    "p_is_inf",
    "cap_count",
    "log_ratio",
    "exp_or_inf",
]


# gamma and tau below the smallest normal float64 are rejected: their ratio and powers, and the
# weights themselves, would be subnormal and lose digits without a word.
SMALLEST_PARAMETER = float(np.finfo(np.float64).tiny)


def _real_scalar(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
            return float(value)
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond float64
        raise ValueError(f"{name} must fit in a float64 (pass float('inf') for infinity), "
                         f"got an integer of {len(str(abs(value)))} digits") from None


def check_flag(value, name: str) -> bool:
    """Validate an on/off switch: ``True`` or ``False`` only (a string such as ``"no"`` is not one)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    """Validate a string option (``method``, ``pool``, ``reduction``): one of ``choices``."""
    if not (isinstance(value, str) and value in choices):
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return value


def check_dimensions(ndim: int, name: str = "losses") -> None:
    """Losses need a last axis to pool over."""
    if ndim < 1:
        raise ValueError(f"{name} must have at least one dimension (shape (..., n)), got a scalar")


def check_mask_shape(mask_shape: tuple, shape: tuple, name: str = "mask", of: str = "losses") -> None:
    """A mask (or per-entry weights) must have exactly the losses' shape."""
    if tuple(mask_shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape of {of} {tuple(shape)}, got {tuple(mask_shape)}")


def not_finite(name: str = "losses", detail: str = "") -> ValueError:
    """The error for NaN or infinite entries in the pool (raised by the caller, which found them)."""
    return ValueError(f"{name} must be finite (NaN and +-inf are not allowed in the pool){detail}")


def beyond_range(value: float, dtype) -> ValueError:
    """The error for a pooled loss ``L`` (computed in float64) that the output dtype cannot hold."""
    kind = str(dtype).removeprefix("torch.")
    return ValueError(f"losses: the pooled loss L = {value:.6g} is beyond the range of {kind} (the losses' "
                      f"dtype); pass the losses in a wider dtype")


def not_a_tensor(name: str, value) -> TypeError:
    """The error for something other than a ``torch.Tensor`` where the Torch front end needs one."""
    return TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def not_real(name: str, dtype, what: str = "array") -> TypeError:
    """The error for a complex, boolean or object dtype where real numbers are expected."""
    return TypeError(f"{name} must be a real {what}, got dtype {dtype}")


def not_sizes(name: str, what: str, values) -> ValueError:
    """The error for per-pixel sizes or class weights that are not finite and ``>= 0``."""
    return ValueError(f"{name} must hold finite {what} >= 0 (the range [0, inf)), got {values}")


def mismatched_call(fields: list[str], this_call: str) -> ValueError:
    """The error of ``pool="global"`` when the processes of the group were not called alike."""
    return ValueError(f"pool='global' needs the same call on every process of the group, but {', '.join(fields)} "
                      f"differ between processes (this process: {this_call}); every process must call it with "
                      f"the same p, ratio, losses' dtype, reduction, size_weight use and check_finite, "
                      f"and the same number of times")


def not_member() -> ValueError:
    """The error of ``pool="global"`` with a ``group`` that this process is not a member of."""
    return ValueError("group must contain this process: this process is not a member of group "
                      "(pool='global' pools over the processes of group; call it on the group's members only)")


def beyond_float64(quantity: str) -> ValueError:
    """The error for a result too large for a float64 (rather than returning inf, or NaN after inf - inf)."""
    return ValueError(f"{quantity} is beyond float64's range (about 1.8e308): scale the losses down by a power of 2 "
                      f"(L(c l) = c L(l) for c > 0, and the gap scales alike)")


def not_broadcastable(name: str, batch_shape: tuple, shape: tuple) -> ValueError:
    """The error for a per-pool ``gamma``/``tau`` that does not broadcast to ``losses.shape[:-1]``."""
    return ValueError(f"{name} must be a scalar or broadcastable to losses.shape[:-1] = {tuple(batch_shape)}, "
                      f"got shape {tuple(shape)}")


def check_p(p) -> float:
    """Validate the norm exponent: a real number in ``[1, inf]`` (``inf`` allowed, NaN not)."""
    value = _real_scalar(p, "p")
    if not value >= 1.0:  # also NaN (a comparison, not math.isnan: p may be a symbolic float under torch.compile)
        raise ValueError(f"p must be a real number in [1, inf], got {p!r}")
    return value


def check_ratio(ratio) -> float:
    """Validate the paper's ratio ``rho``: a real number in ``[0, 1]``."""
    value = _real_scalar(ratio, "ratio")
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"ratio must be a real number in [0, 1], got {ratio!r}")
    return value


def _real_array(value, name: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be real, got bool")
    if isinstance(value, numbers.Integral):
        value = _real_scalar(value, name)
    try:
        arr = np.asarray(value)
    except Exception as exc:  # e.g. ragged sequences
        raise TypeError(f"{name} must be a real number or array of real numbers") from exc
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or array of real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


_PARAMETER_RANGE = {
    "gamma": "gamma must be finite and > 0 (the range [2.2e-308, inf): normal float64)",
    "tau": "tau must be > 0 (the range [2.2e-308, inf], normal float64, inf = no cap)",
}


def parameter_ok(x, name: str):
    """The rule for ``gamma`` (finite, normal, > 0) or ``tau`` (normal, > 0, inf allowed), elementwise
    on a float, an ndarray or a tensor (comparisons only: no host synchronisation for tensors)."""
    ok = x >= SMALLEST_PARAMETER  # also rejects NaN
    return ok & (x < math.inf) if name == "gamma" else ok


def _check_parameter(value, name: str) -> np.ndarray:
    arr = _real_array(value, name)
    ok = parameter_ok(arr, name)
    if not np.all(ok):
        raise ValueError(f"{_PARAMETER_RANGE[name]}, got {_show(arr[~ok] if arr.ndim else arr)}")
    return arr


def check_gamma(gamma) -> np.ndarray:
    """Validate the norm budget: finite and ``> 0`` (scalar or array), not subnormal. Returns float64."""
    return _check_parameter(gamma, "gamma")


def check_tau(tau) -> np.ndarray:
    """Validate the per-weight cap: ``> 0``, not subnormal; ``inf`` means no cap (scalar or array)."""
    return _check_parameter(tau, "tau")


def check_scalar_parameter(value, name: str) -> float:
    """Validate a scalar ``gamma`` or ``tau`` with plain floats.

    The same rule and message as ``check_gamma`` / ``check_tau``, without NumPy, for
    code that is traced (``torch.compile``).
    """
    x = _real_scalar(value, name)
    if not parameter_ok(x, name):
        raise ValueError(f"{_PARAMETER_RANGE[name]}, got {value!r}")
    return x


def check_single_pool_scalar(arr: np.ndarray, name: str) -> float:
    """A validated ``gamma``/``tau`` array that must be a scalar (one pool), as a float."""
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar for a single pool, got shape {arr.shape}")
    return float(arr)


def check_single_pool(losses, p, gamma, tau) -> tuple[np.ndarray, float, float, float]:
    """Validate one pool's problem (the certificate and the reference take one at a time): 1-D losses,
    ``p`` and scalar ``gamma``, ``tau``. Returns float64 losses and the three floats."""
    p = check_p(p)
    gamma = check_single_pool_scalar(check_gamma(gamma), "gamma")
    tau = check_single_pool_scalar(check_tau(tau), "tau")
    l, _ = check_losses(losses, masked_arrays=False)
    if l.ndim != 1:
        raise ValueError(f"losses must be 1-D (one pool), got shape {l.shape}")
    return l.astype(np.float64), p, gamma, tau


def check_counts(n) -> np.ndarray:
    """Validate pool sizes: integers ``>= 1`` (scalar or array). Returns float64."""
    arr = _real_array(n, "n")
    if not np.all(np.isfinite(arr) & (arr >= 1)):
        raise ValueError(f"n must be an integer count >= 1, got {_show(arr)}")
    if not np.all(arr == np.floor(arr)):
        raise ValueError(f"n must be an integer count >= 1, got non-integer {_show(arr)}")
    return arr


def _show(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(arr.item())
    bad = arr.ravel()
    return f"array with values such as {bad[:4].tolist()}"


def check_losses(losses, mask=None, name: str = "losses", *,
                 masked_arrays: bool = True, finite: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a loss array (``(..., n)``, real, finite where in the pool) and its mask.

    Returns the losses as an ndarray of their own floating dtype (integers become float64)
    and the mask as a bool ndarray or ``None``. Entries outside the mask are not inspected.
    A ``np.ma.MaskedArray``'s masked entries are out of the pool (combined with ``mask``);
    with ``masked_arrays=False`` (functions that take one whole pool) it is rejected instead.
    ``finite=False`` leaves the finiteness check to the caller: a solver path that checks while it reads
    the losses, or ``finite_in_pool`` where it cannot.
    """
    if isinstance(losses, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real array, got bool")
    if isinstance(losses, np.ma.MaskedArray):
        if not masked_arrays:
            raise TypeError(f"{name} must not be a np.ma.MaskedArray here (one whole pool is expected): "
                            f"pass the entries in the pool, e.g. {name}.compressed()")
        excluded = np.ma.getmaskarray(losses)
        losses = np.ma.getdata(losses)
        mask = check_mask(mask, losses.shape)
        mask = ~excluded if mask is None else mask & ~excluded
    try:
        arr = np.asarray(losses)
    except Exception as exc:
        raise TypeError(f"{name} must be a real array (shape (..., n))") from exc
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise not_real(name, arr.dtype)
    check_dimensions(arr.ndim, name)
    mask = check_mask(mask, arr.shape)
    if finite and not finite_in_pool(arr, mask):
        raise not_finite(name)
    return arr, mask


def finite_in_pool(arr: np.ndarray, mask: np.ndarray | None) -> bool:
    """Whether every entry in the pool is finite. A sum over the whole array is finite only if every
    entry is, and takes one pass with no temporary (0.4-0.6 ms on 2^21 float32, against 0.5-1.0 ms for
    ``np.isfinite`` and ``np.all``); where it is not finite (it overflowed, or entries outside the pool
    are not), the pool's entries are checked one by one."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr)):
            return True
    in_pool = arr if mask is None else arr[mask]
    return bool(np.all(np.isfinite(in_pool)))


def check_mask(mask, shape: tuple) -> np.ndarray | None:
    """Validate a pool mask: a bool array of exactly ``shape`` (True = in the pool)."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise TypeError(f"mask must be a bool array, got dtype {arr.dtype}")
    check_mask_shape(arr.shape, shape)
    return arr


def check_pool_parameter(value: np.ndarray, name: str, batch_shape: tuple) -> np.ndarray:
    """Broadcast a validated ``gamma`` or ``tau`` to the batch shape ``losses.shape[:-1]``."""
    try:
        return np.broadcast_to(value, batch_shape)
    except ValueError:
        raise not_broadcastable(name, batch_shape, value.shape) from None


def p_is_inf(p: float) -> bool:
    """``p = inf``, for a validated ``p``, written so that ``torch.compile`` can trace it.

    Under ``torch.compile`` ``p`` may be a symbolic float (a module attribute that changed between
    compilations): ``math.isinf`` cannot be traced, and Dynamo (torch 2.13) records no guard for
    an equality with ``inf``, so a graph built for a finite ``p`` would be reused for ``p = inf``.
    A comparison with the largest float is guarded.
    """
    return p > _LARGEST_FLOAT


_LARGEST_FLOAT = float(np.finfo(np.float64).max)


def conjugate(p: float) -> float:
    """Conjugate exponent ``q = p / (p - 1)``: ``inf`` for ``p = 1`` and ``1`` for ``p = inf``."""
    if p == 1.0:
        return math.inf
    if p_is_inf(p):
        return 1.0
    return p / (p - 1.0)


def cap_count(p: float, gamma, tau):
    r"""The cap count $m = (\gamma/\tau)^p$, evaluated without avoidable rounding.

    ``m`` is how many weights can sit at the cap before the norm budget is exhausted:
    if at most ``m`` losses are positive, every positive loss gets ``tau``. With the paper's
    parameters ``m = ratio * n``. For large ``p`` the ratio ``gamma/tau`` is close to 1 and
    ``(gamma/tau)**p`` would amplify its rounding error ``p``-fold, so the logarithm is taken
    as ``log1p((gamma - tau) / tau)`` there (the difference is exact when the two are within
    a factor of 2). ``tau = inf`` gives ``m = 0`` (no cap). ``p = inf`` is not handled here.
    """
    gamma = np.asarray(gamma, dtype=np.float64)
    tau = np.asarray(tau, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = gamma / tau
        near = (ratio > 0.5) & (ratio < 2.0)
        log_ratio = np.where(near, np.log1p((gamma - tau) / np.where(near, tau, 1.0)), np.log(ratio))
        m = np.exp(p * log_ratio)
    return np.where(np.isinf(tau), 0.0, m)


_TINY, _HUGE = float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).max)


def log_ratio(a, b):
    """``log(a / b)`` for positive arrays, exact to rounding even where ``a / b`` under- or overflows.

    The quotient is used where it is a normal float (one rounding, then the log); elsewhere
    (ratios beyond 1e+-308, where the log is large anyway) the difference of logs is used.
    Two positive floats take the same steps with ``math`` (a float back; NumPy's calls on scalars
    cost about 20 us each, many per pool in the selection path).
    """
    if isinstance(a, float) and isinstance(b, float) and a > 0 and b > 0:
        ratio = a / b
        return math.log(ratio) if _TINY <= ratio <= _HUGE else math.log(a) - math.log(b)
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        ratio = np.asarray(a, dtype=np.float64) / b
        normal = (ratio >= np.finfo(np.float64).tiny) & (ratio <= np.finfo(np.float64).max)
        return np.where(normal, np.log(np.where(normal, ratio, 1.0)), np.log(a) - np.log(b))


def exp_or_inf(v: float) -> float:
    """``math.exp`` that overflows to ``inf`` instead of raising (a threshold beyond float range
    means: nothing is capped)."""
    return math.exp(v) if v < 709.0 else math.inf


def rescaled_power_sum(total: float, ref: float, v: float, q: float) -> float:
    """A sum ``total`` of (l / ref)^q as the sum of (l / v)^q: ``total (ref / v)^q`` through logs, so that
    neither factor over- or underflows alone (0 stays 0; inf where the result is beyond float range)."""
    return exp_or_inf(math.log(total) + q * log_ratio(ref, v)) if total > 0 else 0.0
