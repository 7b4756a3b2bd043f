"""docs/spec.md, "Bad input": every public entry point names the bad argument and its accepted range.

The one place for bad input: the NumPy and Torch solvers (each public function, and the select
method), the certificate, the exact reference, ``paper_parameters``, the Torch loss layer and
``lmp_pool``. An empty pool is not bad input: value 0, weights 0, never NaN (checked here too).
"""

import math

import numpy as np
import pytest
import torch

import solvers.numpy as lmp_np
import solvers.torch as lmp_torch
from lmp_theory import certify, paper_parameters
from lmp_theory.reference import solve
from solvers.torch import LossMaxPooling, lmp_pool, lmp_value

OK = dict(p=2.0, gamma=1.0, tau=0.5)
L = np.array([1.0, 2.0, 3.0])


def _tensor(value, like=None):
    if value is None or np.ndim(value) == 0 and like is not None and not isinstance(value, np.ndarray):
        return value  # scalars (and None) stay Python values
    t = torch.as_tensor(np.asarray(value))
    return t.to(like.dtype) if like is not None and t.is_floating_point() else t


def _numpy(fn, method="auto"):
    def call(losses, p, gamma, tau, mask=None):
        return fn(losses, p, gamma, tau, mask=mask, method=method)

    return call


def _torch(fn, method="auto"):
    def call(losses, p, gamma, tau, mask=None):
        x = _tensor(losses)
        return fn(x, p, _tensor(gamma, x), _tensor(tau, x), mask=_tensor(mask), method=method)

    return call


# The solvers take batches and masks; every public function is called on its own.
SOLVERS = {
    "numpy.lmp_weights": _numpy(lmp_np.lmp_weights),
    "numpy.lmp_weights[select]": _numpy(lmp_np.lmp_weights, "select"),
    "numpy.lmp_value": _numpy(lmp_np.lmp_value),
    "numpy.lmp_solve": _numpy(lmp_np.lmp_solve),
    "torch.lmp_weights": _torch(lmp_torch.lmp_weights),
    "torch.lmp_weights[select]": _torch(lmp_torch.lmp_weights, "select"),
    "torch.lmp_value": _torch(lmp_torch.lmp_value),
}
# Single pools, scalar parameters: the certificate (of weights = the losses) and the exact reference.
SINGLE_POOL = {
    "certify": lambda losses, p, gamma, tau: certify(losses, np.ones_like(losses), p, gamma, tau),
    "reference": lambda losses, p, gamma, tau: solve(losses, p, gamma, tau),
}
EVERYWHERE = {**SOLVERS, **SINGLE_POOL}

BAD = [
    (dict(p=0.99), ValueError, r"p must be a real number in \[1, inf\]"),
    (dict(p=float("nan")), ValueError, r"p must be"),
    (dict(p=-math.inf), ValueError, r"p must be"),
    (dict(p="2"), TypeError, r"p must be a real number"),
    (dict(p=True), TypeError, r"p must be a real number"),
    (dict(gamma=0.0), ValueError, r"gamma must be finite and > 0"),
    (dict(gamma=-1.0), ValueError, r"gamma must be"),
    (dict(gamma=math.inf), ValueError, r"gamma must be"),
    (dict(gamma=float("nan")), ValueError, r"gamma must be"),
    (dict(tau=0.0), ValueError, r"tau must be > 0"),
    (dict(tau=-2.0), ValueError, r"tau must be"),
    (dict(tau=float("nan")), ValueError, r"tau must be"),
    (dict(tau="x"), TypeError, r"tau must be"),
]
HUGE = 10**400  # an integer beyond float64
HUGE_OR_SUBNORMAL = [  # no bare OverflowError; subnormal gamma/tau would give answers off by up to 0.4 %
    (dict(p=HUGE), r"p must fit in a float64"),
    (dict(gamma=HUGE), r"gamma must fit in a float64"),
    (dict(tau=HUGE), r"tau must fit in a float64"),
    (dict(gamma=1e-320), r"gamma must be finite and > 0 \(the range \[2.2e-308"),
    (dict(tau=1e-320), r"tau must be > 0 \(the range \[2.2e-308"),
]


def _call(fn, losses, kw, **extra):
    args = {**OK, **kw}
    return fn(losses, args["p"], args["gamma"], args["tau"], **extra)


def _ids(params):
    return ["-".join(f"{k}={v!r}"[:24] for k, v in kw.items()) for kw, *_ in params]


@pytest.mark.parametrize("entry", sorted(EVERYWHERE))
@pytest.mark.parametrize("kw, exc, pattern", BAD, ids=_ids(BAD))
def test_bad_parameters_are_named(entry, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _call(EVERYWHERE[entry], L, kw)


@pytest.mark.parametrize("entry", sorted(EVERYWHERE))
@pytest.mark.parametrize("kw, pattern", HUGE_OR_SUBNORMAL, ids=_ids(HUGE_OR_SUBNORMAL))
def test_huge_integers_and_subnormal_parameters_are_named(entry, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        _call(EVERYWHERE[entry], L, kw)


@pytest.mark.parametrize("entry", sorted(SOLVERS))
def test_a_subnormal_pool_parameter_is_shown(entry):
    with pytest.raises(ValueError, match=r"gamma must be .* such as \[5e-324\]"):
        _call(SOLVERS[entry], np.ones((2, 3)), dict(gamma=np.array([1.0, 5e-324])))


@pytest.mark.parametrize("entry", sorted(EVERYWHERE))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_losses_rejected(entry, bad):
    with pytest.raises(ValueError, match="losses must be finite"):
        _call(EVERYWHERE[entry], np.array([1.0, bad]), {})


@pytest.mark.parametrize("entry", sorted(SOLVERS))
def test_finite_losses_whose_sum_overflows_or_with_nan_outside_the_mask_are_accepted(entry):
    """The finiteness check sums the whole array first; where that sum is not finite it checks the pool."""
    _call(SOLVERS[entry], np.array([1e308, 1e308, 1.0]), {})
    _call(SOLVERS[entry], np.array([1.0, np.nan, 2.0]), {}, mask=np.array([True, False, True]))


@pytest.mark.parametrize("entry", sorted(SOLVERS))
def test_shape_and_mask_mismatches(entry):
    fn = SOLVERS[entry]
    with pytest.raises(ValueError, match="losses must have at least one dimension"):
        _call(fn, np.float64(1.0), {})
    with pytest.raises(ValueError, match="mask must have the shape of losses"):
        _call(fn, L, {}, mask=np.array([True, False]))
    with pytest.raises(TypeError, match="mask must be a bool"):
        _call(fn, L, {}, mask=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="gamma must be a scalar or broadcastable"):
        _call(fn, np.ones((2, 3)), {"gamma": np.ones(3)})
    with pytest.raises(ValueError, match="tau must be a scalar or broadcastable"):
        _call(fn, np.ones((2, 3)), {"tau": np.ones(4)})


@pytest.mark.parametrize("entry", sorted(SOLVERS))
def test_non_real_losses_rejected(entry):
    with pytest.raises(TypeError, match="losses must be a real"):
        _call(SOLVERS[entry], np.array([1 + 2j]), {})


def test_single_pool_functions_reject_batches_and_bad_weights():
    with pytest.raises(ValueError, match="losses must be 1-D"):
        solve(np.ones((2, 2)), 2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="weights must have the shape of losses"):
        certify(L, L[:2], 2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="weights must be finite"):
        certify(L, np.array([0.1, np.nan, 0.2]), 2.0, 1.0, 1.0)


def _weights_and_value(entry, out):
    """(weights or None, value or None) of a solver entry point's result, as NumPy arrays."""
    if entry == "numpy.lmp_solve":
        out = (out.weights, out.value)
    elif "lmp_weights" in entry:
        out = (out, None)
    else:
        out = (None, out)
    return tuple(None if a is None else np.asarray(a) for a in out)


@pytest.mark.parametrize("entry", sorted(SOLVERS))
@pytest.mark.parametrize("p", [1.0, 1.5, math.inf])
def test_empty_pools_are_zero_not_errors(entry, p):
    fn = SOLVERS[entry]
    w, v = _weights_and_value(entry, fn(np.zeros((3, 0)), p, 1.0, 0.5))
    assert w is None or w.shape == (3, 0)
    assert v is None or v.shape == (3,) and np.all(v == 0)
    batch = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    w, v = _weights_and_value(entry, fn(batch, p, 1.0, 0.5, mask=mask))
    assert w is None or np.all(np.isfinite(w)) and np.all(w[1] == 0)
    assert v is None or np.all(np.isfinite(v)) and v[1] == 0 and v[0] > 0


def test_masked_arrays_are_honoured_by_the_solvers_and_rejected_by_single_pool_functions():
    data = np.array([[1.0, 2.0, 100.0, np.nan], [3.0, 1.0, 2.0, 5.0]])
    masked = np.ma.array(data, mask=[[0, 0, 1, 1], [0, 1, 0, 0]])
    extra = np.array([[True, True, True, True], [True, True, False, True]])
    for method in ("auto", "sort", "select"):
        w = lmp_np.lmp_weights(masked, 2.0, 1.0, 0.8, mask=extra, method=method)
        expected = lmp_np.lmp_weights(data, 2.0, 1.0, 0.8, mask=~np.ma.getmaskarray(masked) & extra, method=method)
        assert type(w) is np.ndarray and np.array_equal(w, expected)
        assert w[0, 2] == 0 and w[1, 1] == 0 and w[1, 2] == 0
    with pytest.raises(TypeError, match="losses must not be a np.ma.MaskedArray"):
        certify(masked[0], np.zeros(4), 2.0, 1.0, 0.8)
    with pytest.raises(TypeError, match="weights must not be a np.ma.MaskedArray"):
        certify(data[1], np.ma.array(np.zeros(4)), 2.0, 1.0, 0.8)
    with pytest.raises(TypeError, match="losses must not be a np.ma.MaskedArray"):
        solve(masked[0], 2.0, 1.0, 0.8)


def test_bad_method_is_named():
    with pytest.raises(ValueError, match="method must be"):
        lmp_np.lmp_weights(np.ones(3), 2.0, 1.0, 1.0, method="fast")
    with pytest.raises(ValueError, match="method must be"):
        lmp_torch.lmp_weights(torch.ones(3), 2.0, 1.0, 1.0, method="fast")
    with pytest.raises(ValueError, match="method must be"):
        LossMaxPooling(method="fast")


# ---- Torch: tensors, the layer and lmp_pool -----------------------------------------------------

def test_torch_tensor_parameters_are_named_with_the_bad_value():
    x = torch.ones(2, 3)
    for bad, shown in [(-1.0, r"\[-1.0\]"), (math.inf, r"\[inf\]"), (1e-320, r"\[1e-320\]")]:  # not "nan"
        with pytest.raises(ValueError, match=r"gamma must be finite and > 0 .*" + shown):
            lmp_value(x, 2.0, torch.tensor([1.0, bad], dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match=r"tau must be > 0 .*\[-2.0\]"):
        lmp_value(x, 2.0, 1.0, torch.tensor([-2.0, 1.0]))
    with pytest.raises(ValueError, match="tau must be > 0"):
        lmp_value(x, 2.0, 1.0, torch.tensor([float("nan"), 1.0]))
    with pytest.raises(TypeError, match="losses must be a torch.Tensor"):
        lmp_value(np.ones(3), 2.0, 1.0, 1.0)


def test_torch_layouts_and_flags_are_named():
    x = torch.ones(2, 3)
    for fn in (lambda: lmp_value(x, 2.0, 1.0, 1.0, check_finite="no"),
               lambda: lmp_pool(x, check_finite="no"), lambda: LossMaxPooling(check_finite=0)):
        with pytest.raises(TypeError, match="check_finite must be True or False"):
            fn()
    nested = torch.nested.nested_tensor([torch.ones(3), torch.ones(2)], layout=torch.jagged)
    for tensor, kind in [(x.to_sparse(), "sparse"), (torch.ones(2, 3, device="meta"), "meta"), (nested, "nested")]:
        with pytest.raises(TypeError, match=f"losses must be a dense \\(strided\\) tensor with data, got a {kind}"):
            lmp_value(tensor, 2.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="mask must be a dense"):
        lmp_value(x, 2.0, 1.0, 1.0, mask=torch.ones(2, 3, dtype=torch.bool).to_sparse())
    with pytest.raises(TypeError, match="gamma must be a dense"):
        lmp_value(x, 2.0, torch.ones(2).to_sparse(), 1.0)


def test_bad_layer_arguments_are_named():
    with pytest.raises(ValueError, match="ratio must be"):
        LossMaxPooling(ratio=1.5)
    with pytest.raises(ValueError, match="p must be"):
        LossMaxPooling(p=0.5)
    with pytest.raises(ValueError, match="pool must be"):
        LossMaxPooling(pool="pixel")
    with pytest.raises(ValueError, match="reduction must be"):
        lmp_pool(torch.rand(2, 3), reduction="max")
    with pytest.raises(ValueError, match="target must have shape"):
        LossMaxPooling()(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="losses must be finite"):
        LossMaxPooling()(torch.full((1, 3, 2, 2), float("nan")), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="weight must hold finite class weights >= 0"):
        LossMaxPooling(weight=torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="weight must hold finite class weights >= 0"):
        LossMaxPooling(weight=torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="weight must be a 1-D floating tensor"):
        LossMaxPooling(weight=torch.ones(2, 2))


def test_bad_group_and_pool_are_named():
    with pytest.raises(TypeError, match="group must be a torch.distributed ProcessGroup"):
        lmp_pool(torch.rand(2, 3), pool="global", group="world")
    with pytest.raises(ValueError, match="group applies only to pool='global'"):
        lmp_pool(torch.rand(2, 3), pool="image", group="world")
    with pytest.raises(ValueError, match="pool must be 'image', 'batch' or 'global'"):
        lmp_pool(torch.rand(2, 3), pool="world")
    with pytest.raises(ValueError, match="pool must be 'image', 'batch' or 'global'"):
        LossMaxPooling(pool="world")


# ---- paper_parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(n=0, p=2, ratio=0.5), ValueError, "n must be"),
        (dict(n=2.5, p=2, ratio=0.5), ValueError, "n must be"),
        (dict(n=[3, 0], p=2, ratio=0.5), ValueError, "n must be"),
        (dict(n=3, p=0.5, ratio=0.5), ValueError, "p must be"),
        (dict(n=3, p=float("nan"), ratio=0.5), ValueError, "p must be"),
        (dict(n=3, p="2", ratio=0.5), TypeError, "p must be"),
        (dict(n=3, p=2, ratio=1.5), ValueError, "ratio must be"),
        (dict(n=3, p=2, ratio=-0.1), ValueError, "ratio must be"),
        (dict(n=3, p=2, ratio=float("nan")), ValueError, "ratio must be"),
    ],
)
def test_bad_paper_parameters_are_named(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        paper_parameters(**kwargs)


@pytest.mark.parametrize("method", ["sort", "select", "auto"])
@pytest.mark.parametrize("p", [1.0, 1.7, np.inf])
@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("gamma", [30.0, 1e6])  # 1e6: every loss capped (the selection's bracket starts at 0)
def test_every_path_finds_a_non_finite_loss_in_any_pool(method, p, bad, gamma):
    """Each path checks finiteness in a pass of its own (the sort path at the ends of its sorted rows):
    a bad loss anywhere in any pool is found, one outside the mask is not looked at, and negative losses
    (which the sort path clears after sorting) give what their positive parts give."""
    x = np.random.default_rng(5).exponential(size=(3, 20_000)) - 0.3
    clean = lmp_np.lmp_solve(x, p, gamma, 0.01, method=method)
    np.testing.assert_array_equal(clean.weights, lmp_np.lmp_weights(np.maximum(x, 0), p, gamma, 0.01, method=method))
    for row, col in [(0, 0), (2, 19_999), (1, 7_777)]:
        bad_x = x.copy()
        bad_x[row, col] = bad
        with pytest.raises(ValueError, match="losses must be finite"):
            lmp_np.lmp_weights(bad_x, p, gamma, 0.01, method=method)
        mask = np.ones(x.shape, dtype=bool)
        mask[row, col] = False
        masked = lmp_np.lmp_solve(bad_x, p, gamma, 0.01, mask=mask, method=method)
        expected = lmp_np.lmp_solve(np.where(mask, x, 0.0), p, gamma, 0.01, method=method)
        np.testing.assert_array_equal(masked.weights, expected.weights)
        np.testing.assert_array_equal(masked.threshold, expected.threshold)
