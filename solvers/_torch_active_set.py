r"""$L$ rebuilt with differentiable Torch operations on a fixed active set: second derivatives.

The forward pass of :mod:`solvers.torch` finds the capped set by sorting or selection, which
autograd cannot see through. Away from the kinks (where a loss crosses the threshold $t^*$ or
changes sign) the active set is locally constant and $L$ is a smooth function of the losses,
``gamma`` and ``tau`` given that set:

* ``p = inf``: $L = \min(\gamma, \tau) \sum_{l_i > 0} l_i$;
* ``p = 1``: $L = \tau \sum_{C} l_i + (\gamma - k \tau)\, \mathrm{mean}_T\, l_i$, with $C$ the $k$
  losses above $t^*$ and $T$ the losses tied at $t^*$ (empty when every positive loss is capped);
* ``1 < p < inf``: $L = \tau \sum_{C} l_i + (\gamma^p - k \tau^p)^{1/p}\, \|l_U\|_q$, with $C$ the $k$
  losses above $t^*$ and $U$ the other positive ones (Hölder's inequality on $U$).

Its gradient is the canonical maximizer and $\|\min(l^+, t^*)\|_q$, $\sum_i (l_i - t^*)^+$ (the
envelope theorem), and autograd differentiates it once more: this is what the backward pass
builds when ``create_graph=True``. ``p = 1`` and ``p = inf`` are linear in the losses (Hessian 0),
but their weights still depend on ``gamma`` and ``tau``. Branches that must not contribute are
fed safe values (``inf * 0`` and ``0 ** negative`` would turn zero gradients into NaN).
"""

from __future__ import annotations

import torch

from ._torch_closed_form import power
from .problem import conjugate, p_is_inf


def value_on_active_set(losses: torch.Tensor, gamma: torch.Tensor, tau: torch.Tensor, p: float,
                        positive: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Per-pool $L$ as a differentiable function of ``losses`` ``(pools, n)``, ``gamma`` and ``tau``
    ``(pools,)``, with the active set fixed by ``positive`` (in the pool and ``> 0``) and the forward
    pass's ``threshold`` ``(pools,)`` (both without gradient)."""
    dtype = losses.dtype
    gamma, tau = gamma.to(dtype), tau.to(dtype)
    zero = torch.zeros((), dtype=dtype, device=losses.device)
    lp = torch.where(positive, losses, zero)
    if p_is_inf(p):
        return torch.minimum(gamma, tau) * lp.sum(dim=1)
    t = threshold.to(dtype)[:, None]
    capped = positive & (losses.detach() > t)
    k = capped.sum(dim=1).to(dtype)
    finite_tau = torch.where(torch.isfinite(tau), tau, zero)  # tau = inf caps nothing: k = 0
    value = finite_tau * torch.where(capped, lp, zero).sum(dim=1)
    if p == 1.0:
        tied = positive & (losses.detach() == t)
        count = tied.sum(dim=1).to(dtype)
        mean_tied = torch.where(tied, lp, zero).sum(dim=1) / torch.clamp(count, min=1)
        return value + (gamma - k * finite_tau) * mean_tied
    return value + _budget(gamma, finite_tau, k, p) * _norm_over(lp, positive & ~capped, conjugate(p))


def _budget(gamma, tau, k, p):
    """$(\\gamma^p - k \\tau^p)^{1/p}$, written as $\\gamma (1 - k (\\tau/\\gamma)^p)^{1/p}$."""
    ratio = torch.where(k > 0, tau / gamma, torch.zeros_like(gamma))  # < 1 wherever k > 0
    spent = k * power(ratio, p)  # the share of the norm budget the capped weights use, < 1
    ok = spent < 1.0  # rounding at a kink may say otherwise: then nothing is left (B = 0)
    return torch.where(ok, gamma * torch.exp(torch.log1p(-torch.where(ok, spent, 0.0)) / p), 0.0)


def _norm_over(lp, members, q):
    """Row-wise $\\|l_U\\|_q$ over ``members``, scaled by the (constant) largest member."""
    zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
    top = torch.where(members, lp.detach(), zero).max(dim=1, keepdim=True).values
    scale = torch.where(top > 0, top, torch.ones_like(top))
    ratio = torch.where(members, lp, scale) / scale  # members only: no 0 ** (q - 1) elsewhere
    total = torch.where(members, power(ratio, q), zero).sum(dim=1)
    some = total > 0
    return torch.where(some, scale[:, 0] * power(torch.where(some, total, 1.0), 1.0 / q), zero)


def differentiable_backward(ctx, grad_value, pooled, threshold, inputs):
    """The backward pass of :mod:`solvers.torch`'s autograd Function under ``create_graph=True``: the
    gradients of :func:`value_on_active_set` as differentiable functions of the saved ``inputs``
    (losses, and ``gamma``/``tau`` where they are tensors; ``ctx.scalars`` holds the others)."""
    pools = pooled.shape[0]
    x = inputs[0].to(pooled.dtype).reshape(pooled.shape)
    gamma, tau = (saved if saved is not None else torch.as_tensor(scalar, dtype=torch.float64, device=pooled.device)
                  for saved, scalar in zip(inputs[1:], ctx.scalars))
    gamma, tau = (v.to(torch.float64).broadcast_to(ctx.batch_shape).reshape(pools) for v in (gamma, tau))
    value = value_on_active_set(x, gamma, tau, ctx.p, pooled > 0, threshold)  # masked out: 0 in pooled
    wanted = [(i, v) for i, v in enumerate(inputs) if v is not None and ctx.needs_input_grad[i]]
    grads = torch.autograd.grad(value, [v for _, v in wanted], grad_value.reshape(pools).to(value.dtype),
                                create_graph=True, allow_unused=True)
    out = [None] * len(ctx.needs_input_grad)
    for (i, v), grad in zip(wanted, grads):
        out[i] = torch.zeros_like(v) if grad is None else grad
    return tuple(out)
