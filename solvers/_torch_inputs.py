"""The Torch front end's inputs: validated, broadcast and flattened for the paths of ``solvers._torch_paths``.

Every rule and message is ``solvers.problem``'s; here they are applied to tensors without reading
tensor data back to the host, except the one check of ``check_finite=True``.
"""

from __future__ import annotations

import math

import torch

from ._policy import check_method
from ._torch_closed_form import work_dtype
from ._torch_paths import numpy_cores_solve
from .problem import (
    check_dimensions,
    check_flag,
    check_gamma,
    check_mask_shape,
    check_p,
    check_scalar_parameter,
    check_tau,
    not_a_tensor,
    not_broadcastable,
    not_finite,
    not_real,
    parameter_ok,
)


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)  # bfloat16 has no NumPy dtype


def prepare(losses, p, gamma, tau, mask, check_finite, method="auto", *, for_solve=True):
    """Validate, broadcast and flatten; returns everything the core and autograd need.

    The pooled losses are in the work dtype (``work_dtype``), except for ``solve`` where the NumPy
    cores take them (``for_solve``): these read float16, float32 and float64 as they are, in blocks
    of the work dtype (a float64 copy of float32 losses for ``p < 1.125`` would hold twice the input).
    """
    if not isinstance(losses, torch.Tensor):
        raise not_a_tensor("losses", losses)
    check_dense(losses, "losses")
    check_finite = check_flag(check_finite, "check_finite")
    if losses.is_complex() or losses.dtype == torch.bool:
        raise not_real("losses", losses.dtype, "tensor")
    check_dimensions(losses.dim())
    p = check_p(p)
    check_method(method)
    out_dtype = losses.dtype if losses.is_floating_point() else torch.get_default_dtype()
    work = work_dtype(losses.dtype, p)
    batch_shape, n = losses.shape[:-1], losses.shape[-1]
    device = losses.device
    gamma = pool_parameter(gamma, "gamma", batch_shape, device, check_finite)
    tau = pool_parameter(tau, "tau", batch_shape, device, check_finite)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
        check_dense(mask, "mask")
        check_mask_shape(mask.shape, losses.shape)
    as_is = for_solve and losses.dtype in _NUMPY_FLOATS and numpy_cores_solve(device, p)
    x = losses.detach() if as_is else losses.detach().to(work)
    pooled = x if mask is None else torch.where(mask, x, 0.0)
    if check_finite and not bool(torch.isfinite(pooled.sum())):  # the one documented host synchronisation
        if not bool(torch.isfinite(pooled).all()):  # (a cheap sum first: NaN and inf propagate)
            raise not_finite()
    pooled = pooled.reshape(math.prod(batch_shape), n)  # masked out = 0; negatives kept (paths clamp)
    return p, pooled, gamma.reshape(-1), tau.reshape(-1), batch_shape, out_dtype


def check_dense(tensor: torch.Tensor, name: str) -> None:
    """Sparse, nested and meta tensors have no dense data to pool: a clear TypeError, not a crash inside."""
    kind = ("nested" if tensor.is_nested else "sparse" if tensor.layout != torch.strided
            else "meta" if tensor.is_meta else None)
    if kind is not None:
        raise TypeError(f"{name} must be a dense (strided) tensor with data, got a {kind} tensor")


def pool_parameter(value, name, batch_shape, device, check_finite):
    """``gamma``/``tau`` as a float64 tensor of the batch shape (validated; tensors when checking)."""
    if isinstance(value, torch.Tensor):
        check_dense(value, name)
        if value.is_complex() or value.dtype == torch.bool:
            raise not_real(name, value.dtype, "number or tensor")
        value = value.detach().to(device=device, dtype=torch.float64)
        if check_finite:
            if not bool(parameter_ok(value, name).all()):  # the message of the NumPy check, which names the bad values
                (check_gamma if name == "gamma" else check_tau)(value.cpu().numpy())
    else:
        value = torch.as_tensor(check_scalar_parameter(value, name), dtype=torch.float64, device=device)
    try:
        return torch.broadcast_to(value, batch_shape)
    except RuntimeError:
        raise not_broadcastable(name, batch_shape, value.shape) from None
