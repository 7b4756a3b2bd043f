r"""Loss max-pooling in PyTorch: batched, on the tensor's device, differentiable.

Solves, independently for every pool ``losses[..., :]``,

.. math::

    L(l) = \max \{ \langle w, l \rangle : w \ge 0,\ \|w\|_p \le \gamma,\ w_i \le \tau \}

(Rota Bulò, Neuhold, Kontschieder, CVPR 2017, eq. 3; ``docs/spec.md``), returning the
canonical (least-norm) maximizer. The layers follow the usual pattern: inputs checked on the
device (``solvers._torch_inputs``); private cores that find the threshold and the capped set (the
sort path ``solvers._torch_sort`` and the sort-free paths ``solvers._torch_select``, over the
formulas of ``solvers._torch_closed_form``), one of which ``solvers._torch_paths`` picks (CPU
tensors outside ``torch.compile`` go to the NumPy cores); a ``torch.autograd.Function`` whose
backward is analytic (Danskin: $\nabla_l L = w^*$); functional wrappers (``lmp_weights``,
``lmp_value``, ``lmp_pool``) and an ``nn.Module``
(``LossMaxPooling``) that replaces ``nn.CrossEntropyLoss``.

No host synchronisation in the default path: no ``.item()``, ``.cpu()``, ``.tolist()``,
``nonzero()`` or Python branching on tensor values. The only exception is the checks of
``check_finite=True`` (the default), which read one boolean back to raise a clear error on
NaN/inf losses or bad ``gamma``/``tau`` tensors, and for a value one more, on a pooled loss
beyond the dtype's range; pass ``check_finite=False`` in a hot loop.
"""

from __future__ import annotations

from typing import Literal

from .extras import import_extra

import_extra("torch", "solvers.torch")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from ._policy import check_method
from ._torch_active_set import differentiable_backward
from ._torch_closed_form import power, work_dtype
from ._torch_distributed import (
    GlobalCall,
    Traffic,
    global_pool_traffic,
    global_value,
    next_call_number,
    spans_processes,
)
from ._torch_inputs import check_dense, prepare
from ._torch_paths import solve
from .parameters import gamma_tau
from .problem import (
    beyond_range,
    check_choice,
    check_dimensions,
    check_flag,
    check_mask_shape,
    check_p,
    check_ratio,
    conjugate,
    not_a_tensor,
    not_real,
    not_sizes,
    p_is_inf,
)

__all__ = ["lmp_weights", "lmp_value", "lmp_pool", "LossMaxPooling", "global_pool_traffic", "Traffic"]


POOLS = ("image", "batch", "global")
REDUCTIONS = ("mean", "sum", "none")


class _LMPValue(torch.autograd.Function):
    """$L(l)$ with the analytic gradients of Danskin's theorem.

    $\\partial L / \\partial l = w^*$ (the canonical maximizer), and from the dual formula
    $L = \\min_t \\tau \\sum_i (l_i - t)^+ + \\gamma \\|\\min(l^+, t)\\|_q$:
    $\\partial L/\\partial \\gamma = \\|\\min(l^+, t^*)\\|_q$ and
    $\\partial L/\\partial \\tau = \\sum_i (l_i - t^*)^+$. With ``create_graph=True`` the
    backward pass rebuilds $L$ on the active set with differentiable operations
    (:mod:`solvers._torch_active_set`), so that second derivatives are right too.
    """

    @staticmethod
    def forward(ctx, losses, gamma, tau, p, mask, check_finite, method):
        p, pooled, g, t, batch_shape, out_dtype = prepare(losses, p, gamma, tau, mask, check_finite, method)
        weights, value, threshold = solve(pooled, p, g, t, method)
        inputs = [v if isinstance(v, torch.Tensor) else None for v in (losses, gamma, tau)]
        ctx.save_for_backward(weights, pooled, threshold, *inputs)
        ctx.p, ctx.shape, ctx.batch_shape = p, losses.shape, batch_shape
        ctx.gamma_shape = gamma.shape if isinstance(gamma, torch.Tensor) else None
        ctx.tau_shape = tau.shape if isinstance(tau, torch.Tensor) else None
        ctx.scalars = (gamma, tau)
        return _within_range(value.reshape(batch_shape), out_dtype, check_finite)

    @staticmethod
    def backward(ctx, grad_value):
        weights, pooled, threshold, *inputs = ctx.saved_tensors
        work = work_dtype(pooled.dtype, ctx.p)  # the NumPy cores solved the pools as they were; gradients in the work dtype
        weights, pooled = weights.to(work), pooled.to(work)
        if torch.is_grad_enabled():  # create_graph=True: a gradient that autograd can differentiate
            return differentiable_backward(ctx, grad_value, pooled, threshold, inputs)
        g = grad_value.reshape(-1, 1).to(weights.dtype)
        grad_losses = (g * weights).reshape(ctx.shape).to(grad_value.dtype)
        grad_gamma = grad_tau = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            lp = pooled.clamp(min=0)
            t = threshold.to(lp.dtype)[:, None]
            dgamma = _qnorm(torch.minimum(lp, t), ctx.p)
            excess = torch.clamp(lp - t, min=0).sum(dim=1, dtype=torch.float64)
            dtau = torch.where(torch.isinf(threshold), torch.zeros_like(excess), excess)
            gv = grad_value.reshape(-1).to(torch.float64)
            grad_gamma = _reduce_to(gv * dgamma, ctx.batch_shape, ctx.gamma_shape, grad_value.dtype)
            grad_tau = _reduce_to(gv * dtau, ctx.batch_shape, ctx.tau_shape, grad_value.dtype)
        return grad_losses, grad_gamma, grad_tau, None, None, None, None


def _within_range(value: torch.Tensor, dtype: torch.dtype, check_finite: bool) -> torch.Tensor:
    """``value`` (float64) in ``dtype``; with ``check_finite`` a value beyond ``dtype``'s range raises
    (one more boolean read back), without it it is ``inf``."""
    if check_finite and not bool((value.abs() <= torch.finfo(dtype).max).all()):
        raise beyond_range(float(value.abs().max()), dtype)
    return value.to(dtype)


def _qnorm(v: torch.Tensor, p: float) -> torch.Tensor:
    """Row-wise ``||v||_q`` (``q = p/(p-1)``) of non-negative rows, scaled against overflow."""
    if p == 1.0:
        return v.max(dim=1).values.to(torch.float64)
    if p_is_inf(p):
        return v.sum(dim=1, dtype=torch.float64)
    q = conjugate(p)
    top = v.max(dim=1, keepdim=True).values
    scale = torch.where(top > 0, top, torch.ones_like(top))
    return scale[:, 0].to(torch.float64) * power(power(v / scale, q).sum(dim=1, dtype=torch.float64), 1.0 / q)


def _reduce_to(grad, batch_shape, shape, dtype):
    if shape is None:
        return None
    grad = grad.reshape(batch_shape)
    extra = len(batch_shape) - len(shape)
    grad = grad.sum(dim=tuple(range(extra))) if extra > 0 else grad
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    return (grad.sum(dim=dims, keepdim=True) if dims else grad).reshape(shape).to(dtype)


def lmp_weights(losses: torch.Tensor, p, gamma, tau, *, mask=None, check_finite: bool = True,
                method: str = "auto") -> torch.Tensor:
    r"""Canonical maximizer $w^*$ of $\langle w, l\rangle$ over the LMP set, per pool.

    Parameters
    ----------
    losses : Tensor, shape (..., n)
        Every leading index is an independent pool over the last axis.
    p : float
        ``1``, any float ``> 1``, or ``inf``.
    gamma, tau : float or Tensor
        Norm budget (finite, ``> 0``) and cap (``> 0``, ``inf`` = none): scalars or tensors
        broadcastable to ``losses.shape[:-1]``.
    mask : bool Tensor of ``losses.shape``, optional
        True = in the pool; entries outside get weight 0 and are not inspected.
    check_finite : bool
        Raise ``ValueError`` on NaN/inf losses in the pool and on bad ``gamma``/``tau``
        tensors (reads one boolean back from the device; ``lmp_value`` reads one more, to raise on a
        value beyond the dtype's range). ``False``: no host synchronisation.
    method : {"auto", "sort", "select"}
        ``"sort"``: sort-based, every device, never synchronises (on CPU tensors by the NumPy
        sort core, whose passes over blocks keep its memory within a few times the input's,
        where ``torch.sort`` alone takes int64 indices). ``"select"``: sort-free; on
        CUDA by radix selection over the floats' bits (no synchronisation), on CPU tensors by the
        NumPy selection core (a CPU tensor has no device queue to stall). ``"auto"``: ``"select"``
        for pools of at least 16,384 losses, except ``1 < p < inf`` on CUDA, which sorts until GPU
        timings say otherwise (``benchmarks/run.py`` measures both). Every method gives the same
        canonical answer.

    Returns
    -------
    Tensor
        Weights with the shape, dtype and device of ``losses`` (no gradient). float16 and
        bfloat16 are computed in float32, float32 in float64 for ``p < 1.125``.
    """
    p, pooled, g, t, batch_shape, out_dtype = prepare(losses, p, gamma, tau, mask, check_finite, method)
    weights, _, _ = solve(pooled, p, g, t, method, value_wanted=False)
    return weights.reshape(losses.shape).to(out_dtype)


def lmp_value(losses: torch.Tensor, p, gamma, tau, *, mask=None, check_finite: bool = True,
              method: str = "auto") -> torch.Tensor:
    r"""The pooled loss $L(l)$ per pool, shape ``losses.shape[:-1]``; differentiable.

    The gradient with respect to ``losses`` is the canonical maximizer (Danskin), computed
    analytically rather than through the sort; ``gamma`` and ``tau`` tensors get
    $\|\min(l^+, t^*)\|_q$ and $\sum_i (l_i - t^*)^+$. An empty pool has value 0 and
    zero gradient. Arguments as in ``lmp_weights``.
    """
    return _LMPValue.apply(losses, gamma, tau, p, mask, check_finite, method)


def lmp_pool(pixel_losses: torch.Tensor, p: float = 1.7, ratio: float = 0.3, *, mask=None,
             pool: Literal["image", "batch", "global"] = "image", reduction: Literal["mean", "sum", "none"] = "mean",
             check_finite: bool = True, method: str = "auto", group=None, size_weight=None) -> torch.Tensor:
    """Loss max-pooling of any per-pixel loss with the paper's parameters.

    An empty batch (``N = 0``) gives 0 with zero gradient, like a batch whose pixels are all masked.

    Parameters
    ----------
    pixel_losses : Tensor, shape (N, ...) 
        Per-pixel losses (cross-entropy, focal, BCE, Dice terms...), first axis = images.
    p, ratio : float
        The paper's ``p`` in ``[1, inf]`` and ``ratio`` in ``[0, 1]``; ``gamma`` and ``tau``
        come from each pool's own count of valid pixels (``solvers.parameters.paper_parameters``).
    mask : bool Tensor of ``pixel_losses.shape``, optional
        True = valid pixel (e.g. ``target != ignore_index``).
    pool : {"image", "batch", "global"}
        One pool per image, one pool for the whole batch, or one pool for the batches of every
        process of ``group`` (``torch.distributed``): every process returns $L$ of that pool and
        its pixels get that pool's weights. Without an initialised process group (or with one
        process) ``"global"`` is ``"batch"``.
    reduction : {"mean", "sum", "none"}
        Over images (``pool="image"``): the mean over images with at least one valid pixel, the
        sum, or the ``(N,)`` values. With ``pool="batch"`` or ``"global"`` the single value is returned.
    group : ProcessGroup, optional
        The processes that share the global pool (default: the world). Every process of the
        group must call with the same ``p``, ``ratio`` and dtype; ``method`` does not apply (the
        global pool always uses the sort-free selection, with all-reduced statistics).
    size_weight : Tensor of ``pixel_losses.shape``, optional
        How much each valid pixel counts towards its pool's size ``n`` (default 1). The pool's
        ``gamma`` and ``tau`` are the paper's for ``n`` = the sum of its valid pixels' size
        weights; ``LossMaxPooling`` passes the class weight of each pixel's target. Finite and
        ``>= 0`` on valid pixels (checked with ``check_finite=True``, else the caller's promise).
    check_finite, method
        See ``lmp_weights``.

    Notes
    -----
    Gradient of ``pool="global"``: every process returns the same $L$, so the gradient of its
    pixel losses is ``world_size * w_i`` (the convention of autograd-aware ``all_gather``): after
    ``DistributedDataParallel`` averages the parameter gradients over the processes, they equal
    the gradients of the single-process run on the concatenated batches. Every process must
    back-propagate the same multiple of $L$ (as ``loss.backward()`` on the same expression does).
    The cost is a fixed number of small all-reduces (``global_pool_traffic``); no loss is
    gathered.
    """
    p = check_p(p)
    ratio = check_ratio(ratio)
    check_finite = check_flag(check_finite, "check_finite")
    check_choice(pool, "pool", POOLS)
    check_choice(reduction, "reduction", REDUCTIONS)
    if group is not None and pool != "global":
        raise ValueError(f"group applies only to pool='global', got pool={pool!r}")
    if not isinstance(pixel_losses, torch.Tensor):
        raise not_a_tensor("pixel_losses", pixel_losses)
    check_dimensions(pixel_losses.dim(), "pixel_losses")
    for name, tensor in (("mask", mask), ("size_weight", size_weight)):
        if tensor is not None:
            if not isinstance(tensor, torch.Tensor):
                raise not_a_tensor(name, tensor)
            check_mask_shape(tensor.shape, pixel_losses.shape, name, of="pixel_losses")
    if size_weight is not None:
        _check_size_weight(size_weight, mask, check_finite)
    images = pixel_losses.shape[0]
    pools = images if pool == "image" else 1
    flat = pixel_losses.reshape(pools, pixel_losses.numel() // max(pools, 1))  # N = 0: a (0, 0) batch
    flat_mask = None if mask is None else mask.reshape(flat.shape)
    n = flat.shape[1]
    valid = torch.full((flat.shape[0],), float(n), dtype=torch.float64, device=flat.device) if flat_mask is None \
        else flat_mask.sum(dim=1).to(torch.float64)
    size = valid
    if size_weight is not None:
        sizes = size_weight.detach().to(torch.float64).reshape(flat.shape)
        size = (sizes if flat_mask is None else torch.where(flat_mask, sizes, 0.0)).sum(dim=1)
    if pool == "global" and spans_processes(group):  # gamma and tau come from the global size
        _, pooled, _, _, _, out_dtype = prepare(flat, p, 1.0, 1.0, flat_mask, False, for_solve=False)
        call = GlobalCall(p, ratio, pixel_losses.dtype, reduction, size_weight is not None, check_finite,
                          next_call_number(group))
        return global_value(flat, pooled, size.sum(), call, group, out_dtype)
    gamma, tau = gamma_tau(torch.where(size > 0, size, 1.0), p, ratio, power)  # an empty pool's value is 0 anyway
    values = lmp_value(flat, p, gamma, tau, mask=flat_mask, check_finite=check_finite, method=method)
    if pool != "image":
        return values.sum()  # the one pool's value (0 for an empty batch)
    if reduction == "none":
        return values
    total = values.sum(dtype=torch.float64)  # a sum of representable values may not be one
    if reduction == "sum":
        return _within_range(total, values.dtype, check_finite)
    return (total / torch.clamp((valid > 0).sum(), min=1)).to(values.dtype)


class LossMaxPooling(nn.Module):
    """Loss max-pooling of the per-pixel cross-entropy: a drop-in for ``nn.CrossEntropyLoss``.

    Takes ``(logits, target)``: logits ``(N, C, H, W)`` with target ``(N, H, W)``, or ``(N, C)``
    with ``(N,)`` (then the batch is the pool). Pixels whose target is ``ignore_index`` are out
    of the pool; each pool's ``gamma`` and ``tau`` come from its own count of valid pixels and
    the paper's ``p`` and ``ratio`` (Rota Bulò et al., CVPR 2017, section 3.1). An image whose
    pixels are all ignored contributes 0 and zero gradient. With ``p = inf`` and
    ``pool="batch"`` this is exactly ``nn.CrossEntropyLoss(weight=..., ignore_index=...)``,
    value and gradient.

    Class weights ``w_c``: a pixel of class ``c`` has the loss ``w_c * ce`` (as in
    ``nn.CrossEntropyLoss``) and counts ``w_c`` towards its pool's size, so the pool's ``gamma``
    and ``tau`` are the paper's for ``n`` = the sum of its valid pixels' class weights (at
    ``p = inf``: the weighted mean of ``nn.CrossEntropyLoss``, sum(w_y ce) / sum(w_y)).

    Parameters
    ----------
    p : float
        Norm exponent in ``[1, inf]``: 1 = top-``ratio`` mean (CVaR), inf = plain mean.
    ratio : float
        Least share of the pool the weighting spreads over, in ``[0, 1]`` (0 = no cap).
    ignore_index : int
        Target value of pixels that are out of the pool.
    pool : {"image", "batch", "global"}
        One pool per image (default), one for the whole batch, or one for the batches of every
        process of ``group`` under ``torch.distributed`` (see ``lmp_pool``).
    reduction : {"mean", "sum", "none"}
        Over images, as in ``lmp_pool``.
    weight : Tensor, optional
        Class weights (1-D, finite, ``>= 0``), as in ``nn.CrossEntropyLoss``; see above.
    check_finite, method
        See ``lmp_weights``.
    group : ProcessGroup, optional
        With ``pool="global"``: the processes sharing the pool (default: the world).
    """

    def __init__(self, p: float = 1.7, ratio: float = 0.3, ignore_index: int = -100, pool: str = "image",
                 reduction: str = "mean", weight: torch.Tensor | None = None, check_finite: bool = True,
                 method: str = "auto", group=None):
        super().__init__()
        self.p = check_p(p)
        self.ratio = check_ratio(ratio)
        check_choice(pool, "pool", POOLS)
        check_choice(reduction, "reduction", REDUCTIONS)
        check_method(method)
        self.ignore_index, self.pool, self.reduction = ignore_index, pool, reduction
        self.check_finite, self.method, self.group = check_flag(check_finite, "check_finite"), method, group
        self.register_buffer("weight", _check_class_weight(weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() < 2 or target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"target must have shape (N, *spatial) = {tuple(logits.shape[:1] + logits.shape[2:])} "
                             f"for logits of shape {tuple(logits.shape)}, got {tuple(target.shape)}")
        pixel = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none")
        mask = target != self.ignore_index
        pool = "batch" if logits.dim() == 2 and self.pool == "image" else self.pool
        size_weight = None if self.weight is None else self.weight[torch.where(mask, target, 0)]
        return lmp_pool(pixel, self.p, self.ratio, mask=mask, pool=pool, reduction=self.reduction,
                        check_finite=self.check_finite, method=self.method, group=self.group,
                        size_weight=size_weight)

    def extra_repr(self) -> str:
        return f"p={self.p}, ratio={self.ratio}, ignore_index={self.ignore_index}, pool={self.pool!r}, reduction={self.reduction!r}"


def _check_size_weight(size_weight, mask, check_finite):
    """Per-pixel sizes: a dense real tensor; with ``check_finite``, finite and ``>= 0`` in the pool
    (one boolean read back, as for the losses)."""
    check_dense(size_weight, "size_weight")
    if size_weight.is_complex() or size_weight.dtype == torch.bool:
        raise not_real("size_weight", size_weight.dtype, "tensor")
    if check_finite:
        bad = ~(torch.isfinite(size_weight) & (size_weight >= 0))
        bad = bad if mask is None else bad & mask
        if bool(bad.any()):
            raise not_sizes("size_weight", "sizes", f"values such as {size_weight[bad][:4].tolist()}")


def _check_class_weight(weight):
    """Class weights: ``None`` or a dense, real, 1-D tensor of finite values ``>= 0``."""
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a 1-D tensor of class weights, got {type(weight).__name__}")
    check_dense(weight, "weight")
    if not weight.is_floating_point() or weight.dim() != 1:
        raise TypeError(f"weight must be a 1-D floating tensor of class weights, got dtype {weight.dtype} "
                        f"and shape {tuple(weight.shape)}")
    if not bool((torch.isfinite(weight) & (weight >= 0)).all()):  # once, at construction
        raise not_sizes("weight", "class weights", weight.tolist())
    return weight
