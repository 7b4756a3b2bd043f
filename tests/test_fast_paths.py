"""The shortcuts the CPU solvers take for speed give the answers of the plain computations they replace:
``power``'s floor (which spares NumPy's slow exp of underflowing arguments), the weights' ``stored``
dtype, the p = 1 selection from the losses inside the bracket (with and without the value), the sort
path's full count from the first loss that can matter, and ``lmp_weights``, which skips the value's
sums on every path."""

import math

import numpy as np
import pytest

from lmp_theory import paper_parameters
from solvers import _numpy_closed_form, _numpy_select, _numpy_sort
from solvers import numpy as lmp_np
from solvers._numpy_closed_form import EXP_FAST, capped_power_weights, power


def _ratios(rng, size=50_000):
    """Ratios in (0, 1] over 12 decades, 0 and 1 among them."""
    r = 10.0 ** rng.uniform(-12, 0, size)
    r[:3] = 0.0, 1.0, np.finfo(np.float64).tiny
    return r


@pytest.mark.parametrize("exponent", [2.4, 1000.0])
@pytest.mark.parametrize("floor", [-50.0, EXP_FAST, -720.0, -800.0])
def test_power_with_a_floor_keeps_every_result_at_or_above_it(floor, exponent):
    """Where exponent * log r >= floor the result is bit-identical to power without a floor; below
    it, a value in [0, exp(floor)]. Floors below EXP_FAST take the masked path with its band."""
    r = _ratios(np.random.default_rng(1))
    plain = power(r, exponent, out=np.empty_like(r))
    floored = power(r, exponent, out=np.empty_like(r), floor=floor)
    with np.errstate(divide="ignore"):
        kept = exponent * np.log(r) >= floor
    assert kept.any() and (~kept).any()
    np.testing.assert_array_equal(floored[kept], plain[kept])
    assert np.all((floored[~kept] >= 0) & (floored[~kept] <= math.exp(max(floor, -745.0)) * (1 + 1e-12) + 5e-324))


@pytest.mark.parametrize("coef", [1e-30, 1e-3, 1.0, 1e30])
@pytest.mark.parametrize("q", [1.001 / 0.001, 2.4])  # q = 1001 (p = 1.001) and p = 1.7
def test_weights_stored_in_float32_are_the_float64_weights_rounded(coef, q):
    """``stored=float32`` may zero what rounds to 0 in float32 before the rounding: after it, the same weights."""
    x = _ratios(np.random.default_rng(2)) * 3.0
    ref, tau = 3.0, coef * 1.5
    plain = capped_power_weights(x, ref, coef, q, tau).astype(np.float32)
    stored = capped_power_weights(x, ref, coef, q, tau, stored=np.float32).astype(np.float32)
    np.testing.assert_array_equal(stored, plain)
    assert np.count_nonzero(plain) > 0


def _pool(kind, n, rng):
    x = rng.gamma(0.5, 1.0, n)
    if kind == "ties":
        x = np.round(x * 4) / 4
    elif kind == "zeros":
        x[rng.random(n) < 0.4] = 0.0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["plain", "ties", "zeros"])
@pytest.mark.parametrize("ratio", [0.001, 0.1, 0.5, 0.9])
def test_select_p1_from_the_losses_inside_the_bracket(monkeypatch, dtype, kind, ratio):
    """A pool of 2^19 + 7 (a sample of 4,096): the sort path's weights, threshold and value, and
    ``lmp_weights`` (no value computed) the same weights. Where more losses are positive than the cut,
    the inside path answers (no side collected); otherwise every positive loss is capped."""
    n = 2**19 + 7
    x = _pool(kind, n, np.random.default_rng(3)).astype(dtype)
    gamma, tau = paper_parameters(n, 1.0, ratio)
    if np.count_nonzero(x > 0) > gamma / tau:
        def no_side(*args, **kwargs):
            raise AssertionError("the inside path missed")

        monkeypatch.setattr(_numpy_select, "_collect", no_side)
    select = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="select")
    sort = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="sort")
    np.testing.assert_array_equal(select.weights, sort.weights)
    assert select.threshold == sort.threshold
    np.testing.assert_allclose(select.value, sort.value, rtol=1e-12 if dtype == np.float64 else 1e-6)
    np.testing.assert_array_equal(lmp_np.lmp_weights(x, 1.0, gamma, tau, method="select"), sort.weights)


def test_select_p1_collects_a_side_when_the_cut_is_above_the_bracket(monkeypatch):
    """A bracket far below the cut: the inside path finds more losses above it than the cut and hands
    over, and the upper side (everything above t_lo) gives the exact answer."""
    monkeypatch.setattr(_numpy_select, "_bracket", lambda sample, rank, n: (float(sample[-200]), float(sample[-100])))
    missed = []
    original = _numpy_select._p1_inside

    def spy(*args, **kwargs):
        solved = original(*args, **kwargs)
        missed.append(solved is None)
        return solved

    monkeypatch.setattr(_numpy_select, "_p1_inside", spy)
    x = np.random.default_rng(4).exponential(size=(2, 20000))
    gamma, tau = paper_parameters(20000, 1.0, 0.2)
    got = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="select")
    want = lmp_np.lmp_solve(x, 1.0, gamma, tau, method="sort")
    assert missed and all(missed)
    np.testing.assert_array_equal(got.weights, want.weights)
    np.testing.assert_allclose(got.value, want.value, rtol=1e-12)


def test_select_p1_writes_each_pool_by_its_own_route():
    """Pools answered from a bracket (their weights written together after the loop) next to one whose
    few positive losses are all capped, and one every loss of which is capped (each written on its own
    route): each row the sort path's."""
    n = 2**13
    rng = np.random.default_rng(6)
    x = rng.exponential(size=(4, n))
    x[1, 500:] = -x[1, 500:]  # 500 positive losses, fewer than the cap count 819
    gamma, tau = paper_parameters(n, 1.0, 0.1)
    gamma = np.array([gamma, gamma, gamma, 2.0 * n * tau])  # pool 3: room for every loss at the cap
    for solve in (lmp_np.lmp_solve, lmp_np.lmp_weights):
        got = solve(x, 1.0, gamma, tau, method="select")
        want = solve(x, 1.0, gamma, tau, method="sort")
        np.testing.assert_array_equal(getattr(got, "weights", got), getattr(want, "weights", want))
    assert np.all(got[1][:500] == tau) and np.all(got[1][500:] == 0) and np.all(got[3] == tau)


@pytest.mark.parametrize("shape", [(3000, 5), (2, _numpy_sort.PREFIX_MIN_N - 1), (3, _numpy_sort.PREFIX_MIN_N + 3)])
def test_sorted_rows_with_the_finiteness_check_are_the_sorted_positive_parts(shape):
    """The sort path's check sorts the losses as they are and clears the negatives after: short rows in
    one pass, long rows prefix by prefix; both give the sorted positive parts, -0.0 as +0.0 included."""
    x = np.random.default_rng(shape[1]).normal(size=shape).astype(np.float32)
    x[:, ::7] = -0.0
    x[0] = np.abs(x[0])  # a row without negatives
    got = _numpy_sort._sorted_positive_part(x, None, check_finite=True)
    want = np.sort(np.maximum(x, np.float32(0)), axis=1)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got).any()


def test_the_sample_grows_with_the_pool():
    sizes = (2**12, 2**19, 2**20, 2**21, 2**24)
    assert [_numpy_select.sample_size(n) for n in sizes] == [4096, 4096, 8192, 16384, 16384]
    assert _numpy_select.SELECT_MIN_N == _numpy_select.SAMPLE_MIN


def test_negligible_log_is_where_the_product_rounds_to_zero():
    for dtype in (np.float32, np.float64):
        for coef in (1e-20, 1.0, 1e20):
            floor = _numpy_closed_form.negligible_log(coef, dtype)
            product = np.exp(np.array([floor, floor + 2.0]) + math.log(coef))  # coef exp(.) without underflow
            assert np.asarray(product[0], dtype=dtype) == 0 and np.asarray(product[1], dtype=dtype) > 0
    assert _numpy_closed_form.negligible_log(0.0, np.float32) == math.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1.001, 1.01])
@pytest.mark.parametrize("kind", ["plain", "ties", "zeros"])
def test_select_near_p1_computes_only_the_powers_that_count(monkeypatch, dtype, p, kind):
    """p near 1: the power sum gathers the losses near t_lo and the weights those near ref (the others'
    round to 0). The weights are those with every power computed (SPARSE_LEVEL = inf), and the sort
    path's to 4 float32 ulps (float64: the error of a power with exponent near 1000, some hundred
    ulps; subnormal weights to their last place), with and without a mask; float32 pools took the sparse
    write."""
    taken = {"weights": 0}
    original = _numpy_select._write_sparse_power_weights

    def spy(*args, **kwargs):
        taken["weights"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(_numpy_select, "_write_sparse_power_weights", spy)
    n = 70_000
    rng = np.random.default_rng(6)
    x = _pool(kind, 2 * n, rng).reshape(2, n).astype(dtype)
    mask = rng.random((2, n)) < 0.8
    gamma, tau = paper_parameters(n, p, 0.1)
    for m in (None, mask):
        got = lmp_np.lmp_weights(x, p, gamma, tau, mask=m, method="select")
        want = lmp_np.lmp_weights(x, p, gamma, tau, mask=m, method="sort")
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps if dtype == np.float32 else 1e-11,
                                   atol=2 * np.finfo(dtype).smallest_subnormal)
        with monkeypatch.context() as dense:  # every power computed: the same weights
            dense.setattr(_numpy_select, "SPARSE_LEVEL", math.inf)
            np.testing.assert_array_equal(lmp_np.lmp_weights(x, p, gamma, tau, mask=m, method="select"), got)
    fused = dtype == np.float64  # float64 pools write their weights in the first pass instead
    assert taken["weights"] == (0 if fused else 4)


@pytest.mark.parametrize("method", ["sort", "select"])
@pytest.mark.parametrize("p", [1.0, 1.7, math.inf])
@pytest.mark.parametrize("kind", ["positive", "zeros and a mask"])
def test_weights_without_the_value_are_the_weights_with_it(method, p, kind):
    """``lmp_weights`` skips the value's sums (NumPy and Torch CPU): the same weights as ``lmp_solve`` and
    as the gradient of Torch's ``lmp_value``, which takes them."""
    import torch

    from solvers import torch as lmp_torch

    rng = np.random.default_rng(5)
    x = rng.exponential(size=(3, 20_000)).astype(np.float32)
    mask = None
    if kind != "positive":
        x[:, ::7] = 0.0
        mask = rng.random(x.shape) < 0.8
    gamma, tau = paper_parameters(20_000, p, 0.1)
    solved = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method=method)
    assert np.all(np.isfinite(solved.value))
    np.testing.assert_array_equal(lmp_np.lmp_weights(x, p, gamma, tau, mask=mask, method=method), solved.weights)
    tx, tmask = torch.from_numpy(x).requires_grad_(), None if mask is None else torch.from_numpy(mask)
    lmp_torch.lmp_value(tx, p, gamma, tau, mask=tmask, method=method).sum().backward()
    weights = lmp_torch.lmp_weights(tx.detach(), p, gamma, tau, mask=tmask, method=method)
    np.testing.assert_array_equal(weights.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [1 + 1e-12, 1.001, 1.05, 1.7])
def test_the_full_count_skips_only_negligible_losses(monkeypatch, dtype, p):
    """The sort path's NumPy full count skips the leading losses whose terms are below exp(-750): the same
    weights, thresholds and values as counting every loss (rows of ties, zeros and 8 decades, masks). The
    compiled sweep, which reads every loss, is switched off."""
    from solvers import _numba_loops, _numpy_sort

    monkeypatch.setattr(_numba_loops, "ENABLED", False)
    rng = np.random.default_rng(4)
    x = rng.exponential(size=(4, 5000))
    x[1] = np.round(x[1] * 3) / 3
    x[2, ::3] = 0.0
    x[3] = 10.0 ** rng.uniform(-8, 0, 5000)
    x = x.astype(dtype)
    mask = rng.random(x.shape) < 0.9
    skipped = []
    original = _numpy_sort._negligible_columns
    monkeypatch.setattr(_numpy_sort, "_negligible_columns", lambda *a: skipped.append(original(*a)) or skipped[-1])
    for ratio in (0.01, 0.3, 0.9):
        gamma, tau = paper_parameters(5000, p, ratio)
        got = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
        with monkeypatch.context() as m:
            m.setattr(_numpy_sort, "_negligible_columns", lambda *a: 0)
            want = lmp_np.lmp_solve(x, p, gamma, tau, mask=mask, method="sort")
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
    assert max(skipped) > (1000 if p < 1.01 else -1)  # near p = 1 most of each row is skipped
