"""docs/spec.md, "Bad input": every public entry point names the bad argument and its accepted range."""

import math

import numpy as np
import pytest

from lmp_theory import certify
from lmp_theory.reference import solve

from .backends import BACKENDS

OK = dict(p=2.0, gamma=1.0, tau=0.5)
L = np.array([1.0, 2.0, 3.0])

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


def _call(fn, losses, kw, **extra):
    args = {**OK, **kw}
    return fn(losses, args["p"], args["gamma"], args["tau"], **extra)


@pytest.mark.parametrize("kw, exc, pattern", BAD)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_solvers_reject_bad_parameters(backend, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _call(BACKENDS[backend], L, kw)


@pytest.mark.parametrize("kw, exc, pattern", BAD)
def test_certify_and_reference_reject_bad_parameters(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        args = {**OK, **kw}
        certify(L, L, args["p"], args["gamma"], args["tau"])
    with pytest.raises(exc, match=pattern):
        args = {**OK, **kw}
        solve(L, args["p"], args["gamma"], args["tau"])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_losses_rejected(backend, bad):
    with pytest.raises(ValueError, match="losses must be finite"):
        _call(BACKENDS[backend], np.array([1.0, bad]), {})


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_shape_and_mask_mismatches(backend):
    fn = BACKENDS[backend]
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


def test_non_real_losses_rejected():
    for fn in BACKENDS.values():
        with pytest.raises(TypeError, match="losses must be a real"):
            _call(fn, np.array([1 + 2j]), {})
    with pytest.raises(ValueError, match="losses must be 1-D"):
        solve(np.ones((2, 2)), 2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="weights must have the shape of losses"):
        certify(L, L[:2], 2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="weights must be finite"):
        certify(L, np.array([0.1, np.nan, 0.2]), 2.0, 1.0, 1.0)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("p", [1.0, 1.5, math.inf])
def test_empty_pools_are_zero_not_errors(backend, p):
    fn = BACKENDS[backend]
    w, v = fn(np.zeros((3, 0)), p, 1.0, 0.5)
    assert w.shape == (3, 0) and v.shape == (3,) and np.all(v == 0)
    batch = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([[True, True, False], [False, False, False]])
    w, v = fn(batch, p, 1.0, 0.5, mask=mask)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(v))
    assert np.all(w[1] == 0) and v[1] == 0 and v[0] > 0


HUGE = 10**400  # an integer beyond float64


@pytest.mark.parametrize("kw, pattern", [
    (dict(p=HUGE), r"p must fit in a float64"),
    (dict(gamma=HUGE), r"gamma must fit in a float64"),
    (dict(tau=HUGE), r"tau must fit in a float64"),
    (dict(gamma=1e-320), r"gamma must be finite and > 0 \(the range \[2.2e-308"),
    (dict(tau=1e-320), r"tau must be > 0 \(the range \[2.2e-308"),
    (dict(gamma=np.array([1.0, 5e-324])), r"gamma must be .* such as \[5e-324\]"),
])
def test_huge_integers_and_subnormal_parameters_are_named(kw, pattern):
    """No bare OverflowError; subnormal gamma/tau would give answers off by up to 0.4 %: rejected."""
    losses = np.ones((2, 3)) if np.ndim(kw.get("gamma", 0)) else L
    for backend in sorted(BACKENDS):
        with pytest.raises(ValueError, match=pattern):
            _call(BACKENDS[backend], losses, kw)
    if np.ndim(kw.get("gamma", 0)) == 0:
        with pytest.raises(ValueError, match=pattern):
            args = {**OK, **kw}
            certify(L, L, args["p"], args["gamma"], args["tau"])


def test_masked_arrays_are_honoured_by_the_solvers_and_rejected_by_single_pool_functions():
    import solvers.numpy as lmp_np

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


def test_torch_specific_bad_input_is_named():
    import torch

    from solvers.torch import LossMaxPooling, lmp_pool, lmp_value

    x = torch.ones(2, 3)
    for bad, shown in [(-1.0, r"\[-1.0\]"), (math.inf, r"\[inf\]"), (1e-320, r"\[1e-320\]")]:  # not "nan"
        with pytest.raises(ValueError, match=r"gamma must be finite and > 0 .*" + shown):
            lmp_value(x, 2.0, torch.tensor([1.0, bad], dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match=r"tau must be > 0 .*\[-2.0\]"):
        lmp_value(x, 2.0, 1.0, torch.tensor([-2.0, 1.0]))
    for fn in (lambda: lmp_value(x, 2.0, 1.0, 1.0, check_finite="no"),
               lambda: lmp_pool(x, check_finite="no"), lambda: LossMaxPooling(check_finite=0)):
        with pytest.raises(TypeError, match="check_finite must be True or False"):
            fn()
    with pytest.raises(ValueError, match="weight must hold finite class weights >= 0"):
        LossMaxPooling(weight=torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="weight must hold finite class weights >= 0"):
        LossMaxPooling(weight=torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="weight must be a 1-D floating tensor"):
        LossMaxPooling(weight=torch.ones(2, 2))
    nested = torch.nested.nested_tensor([torch.ones(3), torch.ones(2)], layout=torch.jagged)
    for tensor, kind in [(x.to_sparse(), "sparse"), (torch.ones(2, 3, device="meta"), "meta"), (nested, "nested")]:
        with pytest.raises(TypeError, match=f"losses must be a dense \\(strided\\) tensor with data, got a {kind}"):
            lmp_value(tensor, 2.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="mask must be a dense"):
        lmp_value(x, 2.0, 1.0, 1.0, mask=torch.ones(2, 3, dtype=torch.bool).to_sparse())
    with pytest.raises(TypeError, match="gamma must be a dense"):
        lmp_value(x, 2.0, torch.ones(2).to_sparse(), 1.0)
