"""The Torch backend: half precision, analytic gradients, no host sync, the loss layer.

Agreement with NumPy on the corpus is tests/test_matrix.py; bad input tests/test_bad_input.py."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmp_theory import paper_parameters
from solvers import numpy as lmp_np
from solvers.torch import LossMaxPooling, lmp_pool, lmp_value, lmp_weights


@pytest.mark.parametrize("n", [500, 20000])  # the sort and the selection core
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_in_kind(dtype, n):
    """bfloat16 is solved as float32 and rounded; float16 goes to the NumPy cores as it is (they work
    in float32 block by block), so it equals NumPy's float16 answer exactly and the float32 answer
    within one rounding of float16 (one subnormal step below 6e-5)."""
    x = torch.rand(3, n).to(dtype)
    x[:, ::7] = 0
    gamma, tau = paper_parameters(n, 1.7, 0.2)
    w = lmp_weights(x, 1.7, gamma, tau)
    v = lmp_value(x, 1.7, gamma, tau)
    assert w.dtype == v.dtype == dtype
    w32 = lmp_weights(x.float(), 1.7, gamma, tau)
    if dtype == torch.bfloat16:
        torch.testing.assert_close(w.float(), w32.to(dtype).float(), rtol=0, atol=0)
    else:
        np.testing.assert_array_equal(w.numpy(), lmp_np.lmp_weights(x.numpy(), 1.7, gamma, tau))
        torch.testing.assert_close(w.float(), w32, rtol=torch.finfo(dtype).eps, atol=2.0**-24)  # subnormals: one step


@pytest.mark.parametrize("method", ["auto", "sort", "select"])
def test_float16_cpu_pools_reach_the_numpy_cores_without_a_float32_copy(method, monkeypatch):
    """The cores receive the caller's float16 memory itself (a work-dtype copy would hold twice the
    input: 12x the input at peak was measured with it); gradients still run in the work dtype."""
    from solvers import _torch_paths

    seen = []
    for name in ("sort_pools", "select_pools"):
        core = getattr(_torch_paths, name)
        monkeypatch.setattr(_torch_paths, name, lambda flat, *a, core=core, **k: seen.append(flat) or core(flat, *a, **k))
    x = torch.rand(2, 20000, dtype=torch.float16)
    gamma, tau = paper_parameters(20000, 1.001, 0.1)
    lmp_weights(x, 1.001, gamma, tau, method=method)
    assert seen and seen[0].dtype == np.float16 and np.shares_memory(seen[0], x.numpy())
    leaf = x.clone().requires_grad_()
    lmp_value(leaf, 1.001, gamma, tau, method=method).sum().backward()
    w64 = lmp_np.lmp_weights(x.numpy().astype(np.float64), 1.001, gamma, tau)
    np.testing.assert_allclose(leaf.grad.numpy().astype(np.float64), w64, rtol=2e-3, atol=1e-7)


@pytest.mark.parametrize("p", [1.0, 1.05, 1.7, 3.0, 50.0, math.inf])
@pytest.mark.parametrize("ratio", [0.0, 0.15, 0.45, 0.95])  # m = 12 ratio not an integer: no kink
def test_gradcheck_float64_losses_gamma_tau(p, ratio):
    gen = torch.Generator().manual_seed(int(1000 * ratio + (p if math.isfinite(p) else 7)))
    base = torch.randperm(24, generator=gen).double().reshape(2, 12) + 0.5  # distinct: no ties
    losses = (base * 0.37 - 1.0).requires_grad_()  # some negative losses too
    gamma, tau = paper_parameters(np.array([12, 12]), p, ratio)
    gamma = torch.tensor(gamma, requires_grad=True)
    tau_t = torch.tensor(np.where(np.isinf(tau), 1e300, tau), requires_grad=True)
    if ratio == 0.0:  # no cap: differentiate in gamma only
        assert torch.autograd.gradcheck(lambda l, g: lmp_value(l, p, g, math.inf), (losses, gamma))
    elif math.isinf(p):  # gamma = tau: L has a kink there; check each side
        assert torch.autograd.gradcheck(lambda l, g: lmp_value(l, p, g, tau_t.detach() * 2), (losses, gamma))
        assert torch.autograd.gradcheck(lambda l, t: lmp_value(l, p, gamma.detach() * 2, t), (losses, tau_t))
    else:
        assert torch.autograd.gradcheck(lambda l, g, t: lmp_value(l, p, g, t), (losses, gamma, tau_t))


def test_gradient_is_the_weights_and_euler_identity_holds():
    x = torch.rand(4, 300, dtype=torch.float64, requires_grad=True)
    gamma, tau = paper_parameters(300, 2.5, 0.1)
    value = lmp_value(x, 2.5, gamma, tau)
    (grad,) = torch.autograd.grad(value.sum(), x)
    torch.testing.assert_close(grad, lmp_weights(x, 2.5, gamma, tau), rtol=0, atol=0)
    torch.testing.assert_close((grad * x).sum(-1), value, rtol=1e-14, atol=0)  # <grad L, l> = L


@pytest.mark.parametrize("p", [1.0, 1.01, 1.7, math.inf])
def test_no_host_synchronisation_in_the_default_hot_path(p):
    """torch.compile(fullgraph=True) fails on any .item(), .cpu(), .tolist() or data-dependent branch."""
    torch._dynamo.reset()
    x = torch.rand(3, 64, requires_grad=True)
    mask = torch.rand(3, 64) > 0.2
    compiled = torch.compile(
        lambda l, g, m: lmp_value(l, p, g, 0.05, mask=m, check_finite=False).sum(), fullgraph=True, backend="eager"
    )
    gamma = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)
    out = compiled(x, gamma, mask)
    out.backward()
    assert torch.allclose(x.grad, lmp_weights(x, p, gamma, 0.05, mask=mask))

    torch._dynamo.reset()
    layer = LossMaxPooling(p=p, ratio=0.3, check_finite=False)
    logits = torch.randn(2, 4, 6, 6, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 6))
    target[1] = -100
    out = torch.compile(layer, fullgraph=True, backend="eager")(logits, target)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


def test_fullgraph_compile_for_every_p_after_another_instance_was_compiled():
    """Recompiling for a second instance makes p a symbolic float: p is only ever compared, never math.isnan'd."""
    torch._dynamo.reset()
    logits = torch.randn(2, 4, 6, 6)
    target = torch.randint(0, 4, (2, 6, 6))
    for p in (1.7, 3.0, 1.0, math.inf, 1.05, 1.0):  # the second compile makes p symbolic
        layer = LossMaxPooling(p=p, ratio=0.3, check_finite=False)
        out = torch.compile(layer, fullgraph=True, backend="eager")(logits, target)
        torch.testing.assert_close(out, layer(logits, target), rtol=1e-6, atol=0)


@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_fullgraph_compile_with_gamma_tau_tensors_and_large_cpu_pools(p):
    """No host synchronisation with check_finite=False: tensor gamma/tau, and CPU pools of 16,384+ losses
    (the NumPy selection core cannot be traced, so compiled code takes the device paths)."""
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(5)
    for n in (64, 20000):
        x = torch.rand(3, n, generator=gen, dtype=torch.float64).requires_grad_()
        gamma = torch.tensor([0.02, 0.03, 0.04], dtype=torch.float64, requires_grad=True)
        tau = torch.tensor([0.003, 0.002, 0.001], dtype=torch.float64, requires_grad=True)
        compiled = torch.compile(lambda l, g, t: lmp_value(l, p, g, t, check_finite=False).sum(),
                                 fullgraph=True, backend="eager")
        out = compiled(x, gamma, tau)
        grads = torch.autograd.grad(out, (x, gamma, tau), allow_unused=True, materialize_grads=True)
        expected = lmp_value(x, p, gamma, tau).sum()  # eager: the NumPy core for the large pools
        torch.testing.assert_close(out, expected, rtol=1e-13, atol=0)
        expected_grads = torch.autograd.grad(expected, (x, gamma, tau), allow_unused=True, materialize_grads=True)
        for got, want in zip(grads, expected_grads):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_the_no_sync_test_can_fail():
    """The documented synchronisation of check_finite=True is caught as a graph break."""
    torch._dynamo.reset()
    compiled = torch.compile(lambda l: lmp_value(l, 1.7, 0.1, 0.05).sum(), fullgraph=True, backend="eager")
    with pytest.raises(torch._dynamo.exc.TorchDynamoException):  # a graph break at the host read
        compiled(torch.rand(2, 8))


def test_p_inf_batch_pool_is_exactly_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (3, 7, 9))
    target[0, :3] = 255
    ref = F.cross_entropy(logits, target, ignore_index=255)
    (ref_grad,) = torch.autograd.grad(ref, logits)
    ours = LossMaxPooling(p=math.inf, ratio=0.3, ignore_index=255, pool="batch")(logits, target)
    (our_grad,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(our_grad, ref_grad, rtol=1e-12, atol=1e-15)
    # (N, C) classification input pools the batch
    flat = LossMaxPooling(p=math.inf, ratio=0.5)(logits[:, :, 0, 0], target[:, 0, 0].clamp(max=4))
    torch.testing.assert_close(flat, F.cross_entropy(logits[:, :, 0, 0], target[:, 0, 0].clamp(max=4)))


def test_per_image_pools_use_each_images_own_valid_count():
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (3, 5, 6))
    target[0, :, :2] = -100  # image 0: 20 valid pixels
    target[2] = -100  # image 2: nothing valid
    layer = LossMaxPooling(p=1.7, ratio=0.25, reduction="none")
    values = layer(logits, target)
    pixel = F.cross_entropy(logits, target, reduction="none")
    for i, count in enumerate([20, 30]):
        valid = target[i] != -100
        gamma, tau = paper_parameters(count, 1.7, 0.25)
        expected = lmp_np.lmp_value(pixel[i][valid].detach().numpy(), 1.7, gamma, tau)
        assert float(values[i].detach()) == pytest.approx(expected, rel=1e-13)
    assert values[2] == 0
    mean = LossMaxPooling(p=1.7, ratio=0.25)(logits, target)  # mean over the two non-empty images
    assert float(mean.detach()) == pytest.approx(float(values[:2].mean().detach()), rel=1e-14)
    mean.backward()
    assert torch.all(logits.grad[2] == 0) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_p_inf_batch_pool_with_class_weights_is_exactly_weighted_cross_entropy(weighted):
    """nn.CrossEntropyLoss(weight=w) is sum(w_y ce) / sum(w_y): the pool's size is the sum of class weights."""
    torch.manual_seed(2)
    logits = torch.randn(3, 5, 7, 9, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (3, 7, 9))
    target[0, :3] = 255
    weight = torch.tensor([0.2, 1.0, 3.0, 0.5, 0.05], dtype=torch.float64) if weighted else None
    ref = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    (ref_grad,) = torch.autograd.grad(ref, logits)
    ours = LossMaxPooling(p=math.inf, ratio=0.3, ignore_index=255, pool="batch", weight=weight)(logits, target)
    (our_grad,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(ours, ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(our_grad, ref_grad, rtol=1e-12, atol=1e-15)


def test_class_weights_set_each_pools_effective_size():
    """At any p the pool's gamma and tau are the paper's for n = sum of its valid pixels' class weights."""
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 5))
    target[1, 0] = -100
    weight = torch.tensor([0.5, 2.0, 0.25], dtype=torch.float64)
    values = LossMaxPooling(p=1.7, ratio=0.3, reduction="none", weight=weight)(logits, target)
    pixel = F.cross_entropy(logits, target, weight=weight, reduction="none")
    for i in range(2):
        valid = target[i] != -100
        size = float(weight[target[i][valid]].sum())
        gamma, tau = size ** (1 / 1.7 - 1), size ** (1 / 1.7 - 1) * (0.3 * size) ** (-1 / 1.7)
        expected = lmp_np.lmp_value(pixel[i][valid].numpy(), 1.7, gamma, tau)
        assert float(values[i]) == pytest.approx(expected, rel=1e-13)
    # class weights all 1 are no class weights
    ones = LossMaxPooling(p=1.7, ratio=0.3, reduction="none", weight=torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(ones(logits, target), LossMaxPooling(p=1.7, ratio=0.3, reduction="none")(logits, target))


@pytest.mark.parametrize("pool", ["image", "batch"])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (0, 3)])
def test_empty_batch_is_zero_with_zero_gradient(pool, shape):
    logits = torch.randn(*shape, requires_grad=True)
    target = torch.zeros(shape[:1] + shape[2:], dtype=torch.long)
    out = LossMaxPooling(pool=pool)(logits, target)
    out.backward()
    assert out.shape == () and out == 0 and logits.grad.shape == logits.shape
    assert lmp_pool(torch.rand(0, 5, 5), pool=pool, reduction="sum") == 0
    assert lmp_pool(torch.rand(0, 5, 5), reduction="none").shape == (0,)


def test_all_ignored_batch_is_zero_with_zero_gradient():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), -100)
    for pool in ("image", "batch"):
        out = LossMaxPooling(pool=pool)(logits, target)
        out.backward()
        assert out == 0 and torch.all(logits.grad == 0)


def test_lmp_pool_on_any_pixel_loss_and_reductions():
    losses = torch.rand(4, 10, 10, dtype=torch.float64)
    per_image = lmp_pool(losses, 2.0, 0.1, reduction="none")
    assert per_image.shape == (4,)
    assert float(lmp_pool(losses, 2.0, 0.1, reduction="sum")) == pytest.approx(float(per_image.sum()))
    batch = lmp_pool(losses, 2.0, 0.1, pool="batch")
    gamma, tau = paper_parameters(400, 2.0, 0.1)
    assert float(batch) == pytest.approx(lmp_np.lmp_value(losses.numpy().ravel(), 2.0, gamma, tau), rel=1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
def test_cuda_matches_cpu(p):
    x = torch.rand(8, 4096, dtype=torch.float64)
    x[:, ::3] *= 1e-9
    gamma, tau = paper_parameters(4096, p, 0.2)
    cpu = lmp_weights(x, p, gamma, tau)
    gpu = lmp_weights(x.cuda(), p, gamma, tau).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-12, atol=1e-12 * float(cpu.max()))


def test_readme_training_step():
    """The README's example: the layer replaces nn.CrossEntropyLoss in a training step."""
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 5, kernel_size=3, padding=1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = LossMaxPooling(p=1.7, ratio=0.25, ignore_index=255)  # was: nn.CrossEntropyLoss(ignore_index=255)
    images, labels = torch.randn(2, 3, 16, 16), torch.randint(0, 5, (2, 16, 16))
    labels[:, :2] = 255
    losses = []
    for _ in range(5):
        optimiser.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf, -math.inf])
@pytest.mark.parametrize("pool", ["image", "batch", "global"])
def test_size_weight_outside_its_range_is_named(bad, pool):
    """NaN and negative sizes returned numbers; +inf raised an error that did not name size_weight."""
    x, sizes = torch.rand(2, 5), torch.ones(2, 5)
    sizes[1, 2] = bad
    with pytest.raises(ValueError, match=r"size_weight must hold finite sizes >= 0 \(the range \[0, inf\)\)"):
        lmp_pool(x, 1.7, 0.3, pool=pool, size_weight=sizes)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 2] = False  # outside the pool: not inspected, like the losses
    expected = lmp_pool(x, 1.7, 0.3, pool=pool, mask=mask)
    assert torch.equal(lmp_pool(x, 1.7, 0.3, pool=pool, mask=mask, size_weight=sizes), expected)
    with pytest.raises(TypeError, match="size_weight must be a real tensor"):
        lmp_pool(x, 1.7, 0.3, pool=pool, size_weight=torch.ones(2, 5, dtype=torch.complex64))
