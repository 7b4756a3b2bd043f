"""torch.compile with the default (inductor) backend follows p: every public function, p sequences that
revisit values.

After a recompile for a second p, Dynamo makes p a symbolic float and reuses that graph for every later
p (it is checked before the first graph); inductor once baked the p of that compilation into the powers
(``solvers._torch_closed_form.power`` has the reproducer). The oracle is the same call run eagerly.
Inductor compiles take seconds each: the fast loop compiles one function, the slow suite every one.
"""

import math

import pytest
import torch

from solvers.torch import LossMaxPooling, lmp_pool, lmp_value, lmp_weights

REVISITING = (1.7, 1000.0, 1.7, 3.0, 1.0, math.inf, 1.7, 1.05, 3.0)


def _logits_and_target():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 4, 6, 6, generator=gen), torch.randint(0, 4, (2, 6, 6), generator=gen)


def _through_every_p(run, sequence, rtol):
    """``run(p, compiled)`` (the compiled function once, reused) against ``run(p, eager)`` for each p."""
    torch._dynamo.reset()
    for p in sequence:
        got, want = run(p, True), run(p, False)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=rtol, atol=1e-7 * float(w.abs().max()), msg=f"p = {p}")


def _pool_run():
    x = torch.rand(3, 40, generator=torch.Generator().manual_seed(1))
    compiled = torch.compile(lambda l, p: lmp_pool(l, p, 0.3, check_finite=False), fullgraph=True)

    def run(p, use_compiled):
        return ((compiled if use_compiled else lambda l, p: lmp_pool(l, p, 0.3))(x, p),)

    return run


def test_compiled_lmp_pool_follows_p_back_and_forth():
    """The issue's sequence: p = 1.7, 1000, then 1.7 and 3 again (the graph of the second compile)."""
    _through_every_p(_pool_run(), (1.7, 1000.0, 1.7, 3.0), rtol=1e-5)


@pytest.mark.slow  # several inductor compiles per function
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_weights_and_values_follow_p(dtype):
    x = torch.rand(3, 50, generator=torch.Generator().manual_seed(2), dtype=dtype)
    gamma, tau = torch.tensor([0.2, 0.3, 0.25], dtype=torch.float64), 0.05
    weights = torch.compile(lambda l, p: lmp_weights(l, p, gamma, tau, check_finite=False), fullgraph=True)
    scalar = torch.compile(lambda l, p: lmp_weights(l, p, 0.2, 0.05, check_finite=False), fullgraph=True)

    def value_and_grad(l, p, fn):
        l = l.clone().requires_grad_()
        v = fn(l, p)
        return v.detach(), torch.autograd.grad(v.sum(), l)[0]

    value = torch.compile(lambda l, p: lmp_value(l, p, gamma, tau, check_finite=False), fullgraph=True)

    def run(p, use_compiled):
        if use_compiled:
            return (weights(x, p), scalar(x, p), *value_and_grad(x, p, value))
        return (lmp_weights(x, p, gamma, tau), lmp_weights(x, p, 0.2, 0.05),
                *value_and_grad(x, p, lambda l, p: lmp_value(l, p, gamma, tau)))

    _through_every_p(run, REVISITING, rtol=1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.slow
def test_compiled_pool_and_layer_follow_p():
    _through_every_p(_pool_run(), REVISITING, rtol=1e-5)
    logits, target = _logits_and_target()

    def run(p, use_compiled):
        layer = LossMaxPooling(p=p, ratio=0.3, check_finite=False)  # a new instance: p a module attribute
        fn = torch.compile(layer, fullgraph=True) if use_compiled else layer
        leaf = logits.clone().requires_grad_()
        loss = fn(leaf, target)
        return loss.detach(), torch.autograd.grad(loss, leaf)[0]

    _through_every_p(run, REVISITING, rtol=1e-5)
