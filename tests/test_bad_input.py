"""SPEC section 6: every public entry point names the bad argument and its accepted range."""

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
