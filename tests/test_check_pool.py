"""check_pool: loss layers judged on values and autograd gradients; a gallery of broken layers."""

import math
import subprocess
import sys

import pytest
import torch

from solvers.parameters import gamma_tau
from lmp_theory.testing import assert_pool_conforms, check_pool
from solvers.torch import lmp_pool, lmp_value, lmp_weights


def builtin(losses, p, ratio, mask):
    return lmp_pool(losses, p, ratio, mask=mask, reduction="none")


def _parameters(mask, p, ratio, count_from=None):
    counts = (mask if count_from is None else count_from).sum(dim=1).to(torch.float64).clamp(min=1)
    return gamma_tau(counts, p, ratio)


# ---- the gallery ------------------------------------------------------------------------------

def detached(losses, p, ratio, mask):
    """Computes the right values but cuts the graph (e.g. through .item() or NumPy)."""
    return builtin(losses.detach(), p, ratio, mask)


class _WrongGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, losses, value):
        ctx.save_for_backward(losses)
        return value

    @staticmethod
    def backward(ctx, grad):
        (losses,) = ctx.saved_tensors
        return grad[:, None] * torch.full_like(losses, 1.0 / losses.shape[1]), None  # the mean's gradient


def wrong_gradient(losses, p, ratio, mask):
    return _WrongGradient.apply(losses, builtin(losses.detach(), p, ratio, mask))


def count_from_pool_length(losses, p, ratio, mask):
    """gamma and tau from the pool's length n instead of its valid count."""
    gamma, tau = _parameters(torch.ones_like(mask), p, ratio)
    return lmp_value(losses, p, gamma.to(losses.device), tau.to(losses.device), mask=mask)


def nan_leaks(losses, p, ratio, mask):
    """The Danskin shortcut sum(w * l) with w = 0 on masked entries: 0 * NaN = NaN."""
    gamma, tau = _parameters(mask, p, ratio)
    weights = lmp_weights(losses.detach(), p, gamma, tau, mask=mask, check_finite=False)
    return (weights * losses).sum(dim=1)


GALLERY = [(detached, "no-gradient"), (wrong_gradient, "wrong-gradient"),
           (count_from_pool_length, "wrong-value"), (nan_leaks, "nan-leak")]


def test_builtin_lmp_pool_conforms():
    report = assert_pool_conforms(builtin)
    assert report.checked == 4 * 3 * 3 and set(report.counts()) == {"pass"}


@pytest.mark.parametrize("fn, status", GALLERY, ids=[g[0].__name__ for g in GALLERY])
def test_gallery_layer_is_flagged(fn, status):
    report = check_pool(fn, p_values=(1.0, 1.7, math.inf), ratios=(0.3,), dtypes=("float64", "float32"))
    assert not report.passed
    assert {r.status for r in report.failing()} == {status}, report.table()


def test_fully_masked_pool_must_give_zero_not_nan():
    def empty_pool_nan(losses, p, ratio, mask):
        values = builtin(losses, p, ratio, mask)
        empty = ~mask.any(dim=1)
        return torch.where(empty, values / mask.sum(dim=1), values)  # 0 / 0

    report = check_pool(empty_pool_nan, p_values=(2.0,), ratios=(0.3,), dtypes=("float64",))
    assert [r.status for r in report.results] == ["non-finite"] and "0 valid" in report.results[0].message


def test_bfloat16_values_are_judged_at_bfloat16_precision():
    def in_bfloat16(losses, p, ratio, mask):  # a layer that returns bfloat16 values
        return builtin(losses.double(), p, ratio, mask).to(torch.bfloat16)

    assert check_pool(in_bfloat16, dtypes=("bfloat16",), p_values=(1.7,), ratios=(0.3,)).passed
    assert not check_pool(in_bfloat16, dtypes=("float32",), p_values=(1.7,), ratios=(0.3,)).passed


def test_device_argument_places_the_tensors():
    seen = set()

    def records_device(losses, p, ratio, mask):
        seen.add((losses.device.type, mask.device.type, losses.requires_grad, mask.dtype))
        return builtin(losses, p, ratio, mask)

    assert check_pool(records_device, device="cpu", p_values=(2.0,), ratios=(0.3,)).passed
    assert seen == {("cpu", "cpu", True, torch.bool)}


def test_bad_arguments_and_raising_layers():
    with pytest.raises(ValueError, match="dtypes"):
        check_pool(builtin, dtypes=("float16",))
    with pytest.raises(ValueError, match="nothing to check"):
        check_pool(builtin, names=["float64/p=9/ratio=0"])

    def raises(losses, p, ratio, mask):
        raise RuntimeError("kernel not compiled")

    report = check_pool(raises, p_values=(2.0,), ratios=(0.3,), dtypes=("float64",))
    assert report.results[0].status == "raised" and "kernel not compiled" in report.results[0].message


def test_lmp_verify_pool(tmp_path):
    (tmp_path / "user_layer.py").write_text(
        "from solvers.torch import lmp_pool\n"
        "def detached(l, p, ratio, mask):\n    return lmp_pool(l.detach(), p, ratio, mask=mask, reduction='none')\n")
    run = lambda *args: subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify", *args], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=300)
    bad = run("--pool", "user_layer:detached", "--case", "float32/p=1.7/ratio=0.3")
    assert bad.returncode == 1 and "no-gradient" in bad.stdout and "1 cases" in bad.stdout
    assert "lmp verify --pool user_layer:detached --case float32/p=1.7/ratio=0.3" in bad.stdout
