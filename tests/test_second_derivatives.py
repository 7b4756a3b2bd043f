"""Double backward of the Torch layer: second derivatives where L is twice differentiable."""

import math

import pytest
import torch

from solvers.torch import lmp_value, lmp_weights

# gamma = 0.8 per pool; with about 6 positive losses of 7: tau = 5 caps none, 0.3 some, 0.12 all
CAPS = {"none-capped": 5.0, "some-capped": 0.3, "all-capped": 0.12, "no-cap": math.inf}


def _inputs(seed, tau):
    gen = torch.Generator().manual_seed(seed)
    losses = (torch.rand(2, 7, generator=gen, dtype=torch.float64) * 2 - 0.3).requires_grad_()
    gamma = torch.tensor([0.8, 0.7], dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([tau, tau * 1.1], dtype=torch.float64, requires_grad=math.isfinite(tau))
    return losses, gamma, tau


@pytest.mark.parametrize("p", [1.3, 1.7, 3.0])
@pytest.mark.parametrize("cap", sorted(CAPS))
def test_gradgradcheck_float64_losses_gamma_tau(p, cap):
    losses, gamma, tau = _inputs(int(10 * p), CAPS[cap])
    capped = (lmp_weights(losses, p, gamma, tau) == tau[:, None]).sum()
    assert (capped == 0) == (cap in ("none-capped", "no-cap"))
    inputs = (losses, gamma, tau) if tau.requires_grad else (losses, gamma)
    fn = (lambda l, g, t: lmp_value(l, p, g, t)) if tau.requires_grad else (lambda l, g: lmp_value(l, p, g, tau))
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("p", [1.0, math.inf])
@pytest.mark.parametrize("cap", sorted(CAPS))
def test_piecewise_linear_ends_have_zero_hessian_in_the_losses(p, cap):
    losses, gamma, tau = _inputs(3, CAPS[cap])
    if math.isinf(p) and math.isfinite(CAPS[cap]):
        gamma = gamma.detach() * 0.1 + 0.01  # away from the kink at gamma = tau
        gamma.requires_grad_()
    (grad,) = torch.autograd.grad(lmp_value(losses, p, gamma, tau).sum(), losses, create_graph=True)
    assert grad.requires_grad
    for row in torch.eye(losses.numel(), dtype=losses.dtype):  # Hessian-vector products, one per axis
        (hvp,) = torch.autograd.grad(grad, losses, row.reshape(losses.shape), retain_graph=True, allow_unused=True)
        assert hvp is None or torch.all(hvp == 0)
    inputs = (losses, gamma, tau) if tau.requires_grad else (losses, gamma)
    fn = (lambda l, g, t: lmp_value(l, p, g, t)) if tau.requires_grad else (lambda l, g: lmp_value(l, p, g, tau))
    assert torch.autograd.gradgradcheck(fn, inputs)  # the weights still depend on gamma and tau


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_create_graph_gradient_is_the_weights_and_stays_differentiable(p):
    """A gradient penalty keeps the LMP term: the first derivative is the same, and it has a graph."""
    gen = torch.Generator().manual_seed(7)
    losses = (torch.rand(3, 2, 9, generator=gen) * 3 - 0.5).requires_grad_()  # float32, leading dims
    mask = torch.rand(3, 2, 9, generator=gen) > 0.3
    gamma = torch.tensor([[0.5], [0.62], [0.4]], requires_grad=True)  # broadcast over the second axis
    tau = 5.0 if math.isinf(p) else 0.3  # p = inf: weights min(gamma, tau) = gamma
    (grad,) = torch.autograd.grad(lmp_value(losses, p, gamma, tau, mask=mask).sum(), losses, create_graph=True)
    assert grad.requires_grad and grad.dtype == losses.dtype
    torch.testing.assert_close(grad, lmp_weights(losses, p, gamma, tau, mask=mask), rtol=1e-6, atol=1e-7)
    penalty = (grad**2).sum()
    d_losses, d_gamma = torch.autograd.grad(penalty, (losses, gamma), allow_unused=True, materialize_grads=True)
    assert torch.all(d_losses[~mask] == 0) and torch.isfinite(d_losses).all()
    assert torch.all(d_gamma != 0)  # the weights scale with gamma


def test_double_backward_with_a_mask_and_negative_losses():
    losses = torch.tensor([[3.0, 1.0, 1.2, 2.0, -1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False, True, True]])
    gamma = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    for p in (1.0, 1.5, 4.0):
        assert torch.autograd.gradgradcheck(lambda l, g, t: lmp_value(l, p, g, t, mask=mask), (losses, gamma, tau))
