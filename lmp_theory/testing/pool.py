"""Conformance of loss layers: values *and* autograd gradients of a pooled loss.

``check_pool(fn)`` tests ``fn(losses, p, ratio, mask) -> values``: ``losses`` a ``(pools, n)``
tensor with ``requires_grad``, ``mask`` a bool tensor of the same shape (True = in the pool),
``values`` of shape ``(pools,)``, each pool's ``gamma`` and ``tau`` the paper's for its own count
of valid entries (``lmp_theory.paper_parameters``). One batch of five pools with 40, 25, 7, 1
and 0 valid entries (distinct losses, exactly representable in bfloat16) is pooled for every
dtype, ``p`` and ratio asked for; each run gets one status:

==================  ===========================================================================
``pass``            values and gradients right, NaN under the mask ignored
``wrong-value``     a pool's value is off (the message names the pool and its valid count)
``no-gradient``     the values do not carry a gradient to the losses (detached)
``wrong-gradient``  the gradient is not the canonical weights (zero on masked entries)
``nan-leak``        with NaN under the mask, a value or gradient changes (masked entries read)
``non-finite``      NaN or infinite values or gradients (a fully masked pool must give 0)
``wrong-shape``     values not of shape ``(pools,)``
``wrong-type``      values not a real tensor
``timeout``         no answer within the time limit
``raised``          ``fn`` or the backward pass raised
==================  ===========================================================================

The first run places large finite losses (1e4) under the mask, so reading them changes the
answer; the second places NaN there. Expected values and gradients come from the duality
certificate (``oracle.certificate_answer``). Tolerances, relative to each pool's value and
largest weight: 1e-10 in float64, 1e-5 in float32, 1e-2 in bfloat16.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from solvers.extras import import_extra
from solvers.parameters import paper_parameters

from .invoke import call
from .kit import TIME_LIMIT
from .oracle import certificate_answer
from .report import CaseResult, Report

__all__ = ["POOL_STATUSES", "POOL_TOLERANCES", "check_pool", "assert_pool_conforms"]

POOL_STATUSES = ("pass", "wrong-value", "no-gradient", "wrong-gradient", "nan-leak", "non-finite", "wrong-shape",
                 "wrong-type", "timeout", "raised")
POOL_TOLERANCES = {"float64": 1e-10, "float32": 1e-5, "bfloat16": 1e-2}
VALID_COUNTS = (40, 25, 7, 1, 0)
MASKED_LOSS = 1e4


def _batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(losses, mask)`` of shape ``(5, 40)``: distinct losses in [1/8, 8) with 8 significant bits."""
    rng = np.random.default_rng(seed)
    n = VALID_COUNTS[0]
    grid = ((1 + np.arange(128) / 128)[None, :] * 2.0 ** np.arange(-3, 3)[:, None]).ravel()
    losses = rng.choice(grid, size=len(VALID_COUNTS) * n, replace=False).reshape(len(VALID_COUNTS), n)
    mask = np.zeros(losses.shape, dtype=bool)
    for i, count in enumerate(VALID_COUNTS):
        mask[i, rng.choice(n, count, replace=False)] = True
    return losses, mask


def _expected(losses: np.ndarray, mask: np.ndarray, p: float, ratio: float):
    """Per pool: exact values, canonical weights (zero where masked) and the scales errors use."""
    values, weights, value_scales, weight_scales = [], np.zeros_like(losses), [], []
    for i in range(losses.shape[0]):
        count = int(mask[i].sum())
        if count == 0:
            values.append(0.0)
            value_scales.append(float(np.max(losses[mask])))
            weight_scales.append(1.0)
            continue
        gamma, tau = paper_parameters(count, p, ratio)
        answer = certificate_answer(losses[i][mask[i]], p, gamma, tau)
        values.append(answer.value)
        weights[i, mask[i]] = answer.weights
        value_scales.append(abs(answer.value))
        weight_scales.append(float(np.max(answer.weights, initial=0.0)) or min(gamma, tau))
    return np.array(values), weights, np.array(value_scales), np.array(weight_scales)


def _torch():
    return import_extra("torch", "check_pool (loss layers are Torch modules)")


def _forward_backward(fn, losses, p, ratio, mask):
    torch = _torch()

    values = fn(losses, p, ratio, mask)
    if not isinstance(values, torch.Tensor) or not values.requires_grad:
        return values, None
    (grad,) = torch.autograd.grad(values.sum(), losses, allow_unused=True)
    return values, grad


def _run(fn, losses, mask, under_mask: float, p, ratio, torch_dtype, device, time_limit):
    """One call of ``fn`` and its backward pass: ``(status or "", message, values, grad)``."""
    torch = _torch()

    x = torch.tensor(np.where(mask, losses, under_mask), dtype=torch_dtype, device=device, requires_grad=True)
    m = torch.tensor(mask, device=device)
    outcome = call(_forward_backward, fn, x, p, ratio, m, time_limit=time_limit)
    if outcome.timed_out:
        return "timeout", f"no answer within the time limit of {time_limit:g} s", None, None
    if outcome.error:
        return "raised", outcome.error, None, None
    values, grad = outcome.value
    if not isinstance(values, torch.Tensor) or values.is_complex():
        return "wrong-type", f"values must be a real tensor, got {type(values).__name__}", None, None
    if tuple(values.shape) != (losses.shape[0],):
        return "wrong-shape", f"values of shape {tuple(values.shape)}, expected ({losses.shape[0]},)", None, None
    v = values.detach().double().cpu().numpy()
    g = None if grad is None else grad.detach().double().cpu().numpy()
    return "", "", v, g


def _compare(v, g, expected, tol) -> tuple[str, str, float, float]:
    """First failure of values ``v`` and gradient ``g`` against the expected answer."""
    values, weights, value_scales, weight_scales = expected
    counts = ", ".join(f"{c}" for c in VALID_COUNTS)
    value_err = np.abs(v - values) / value_scales
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        i = bad[0]
        return "non-finite", f"pool {i} ({VALID_COUNTS[i]} valid of {VALID_COUNTS[0]}): value {v[i]}", math.nan, math.nan
    if np.any(value_err > tol):
        i = int(np.argmax(value_err))
        return "wrong-value", (f"pool {i} ({VALID_COUNTS[i]} valid of {VALID_COUNTS[0]}; valid counts {counts}): "
                               f"value {v[i]:.9g}, expected {values[i]:.9g}"), float(value_err.max()), math.nan
    if g is None:
        return "no-gradient", "the values carry no gradient to the losses (detached?)", float(value_err.max()), math.nan
    if not np.all(np.isfinite(g)):
        i, j = np.argwhere(~np.isfinite(g))[0]
        return "non-finite", f"gradient [{i}, {j}] = {g[i, j]}", float(value_err.max()), math.nan
    grad_err = np.abs(g - weights) / weight_scales[:, None]
    if np.any(grad_err > tol):
        i, j = np.unravel_index(int(np.argmax(grad_err)), grad_err.shape)
        where = "a masked entry" if weights[i, j] == 0 and VALID_COUNTS[i] < VALID_COUNTS[0] else "a valid entry"
        return "wrong-gradient", (f"pool {i} ({VALID_COUNTS[i]} valid), index {j} ({where}): gradient "
                                  f"{g[i, j]:.9g}, canonical weight {weights[i, j]:.9g}"), \
            float(value_err.max()), float(grad_err.max())
    return "pass", "", float(value_err.max()), float(grad_err.max())


def check_pool(fn: Callable, *, p_values: Iterable[float] = (1.0, 1.7, 4.0, math.inf),
               ratios: Iterable[float] = (0.0, 0.3, 1.0), dtypes: Iterable[str] = ("float64", "float32", "bfloat16"),
               device="cpu", seed: int = 0, names: Iterable[str] | None = None, time_limit: float | None = TIME_LIMIT,
               name: str | None = None, command: str = "") -> Report:
    """Check the loss layer ``fn(losses, p, ratio, mask) -> values`` (see the module docs).

    Parameters
    ----------
    fn : callable
        The loss layer under test, ``fn(losses, p, ratio, mask) -> values``.
    p_values, ratios, dtypes
        The grid of runs; dtypes among ``"float64"``, ``"float32"``, ``"bfloat16"``.
    device : str or torch.device
        Where the losses and the mask are placed.
    seed : int
        The batch's losses and masks.
    names : iterable of str, optional
        Only the runs with these names (``"float32/p=1.7/ratio=0.3"``), as reproducers use.
    time_limit : float or None
        Seconds per run before it is reported as ``timeout`` (None: no limit).
    name : str, optional
        The report's name (default: ``fn``'s qualified name).
    command : str
        The ``lmp verify --pool`` command for the reproducers.
    """
    torch = _torch()

    unknown = set(dtypes) - set(POOL_TOLERANCES)
    if unknown:
        raise ValueError(f"dtypes must be among {tuple(POOL_TOLERANCES)}, got {sorted(unknown)}")
    losses, mask = _batch(seed)
    grid = [(d, float(p), float(r)) for d in dtypes for p in p_values for r in ratios]
    runs = [(f"{d}/p={p:g}/ratio={r:.3g}", d, p, r) for d, p, r in grid]
    if names is not None:
        runs = [run for run in runs if run[0] in set(names)]
    if not runs:
        raise ValueError("nothing to check: p_values, ratios, dtypes (and names) select no run")
    report = Report(name or getattr(fn, "__qualname__", repr(fn)), "/".join(dtypes), True, command=command)
    for label, dtype, p, ratio in runs:
        expected = _expected(losses, mask, p, ratio)
        tol = POOL_TOLERANCES[dtype]
        args = (p, ratio, getattr(torch, dtype), device, time_limit)
        status, message, v, g = _run(fn, losses, mask, MASKED_LOSS, *args)
        value_err = weight_err = math.nan
        if not status:
            status, message, value_err, weight_err = _compare(v, g, expected, tol)
        if status == "pass":
            leak_status, leak_message, v2, g2 = _run(fn, losses, mask, math.nan, *args)
            if leak_status:
                status, message = leak_status, f"with NaN under the mask: {leak_message}"
            else:
                second, detail, _, _ = _compare(v2, g2, expected, tol)
                if second != "pass":
                    status, message = "nan-leak", f"with NaN under the mask: {second}: {detail}"
        report.results.append(CaseResult(label, dtype, VALID_COUNTS[0], p, status, value_error=value_err,
                                         weight_error=weight_err, message=message, ratio=ratio, value_tol=tol,
                                         weight_tol=tol))
    return report


def assert_pool_conforms(fn: Callable, **kwargs) -> Report:
    """``check_pool``, raising ``AssertionError`` with the failing runs."""
    report = check_pool(fn, **kwargs)
    if not report.passed:
        raise AssertionError(f"{report.summary()}\n{report.table()}")
    return report
