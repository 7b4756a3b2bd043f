"""The conformance kit: the built-in solvers conform, and a gallery of broken solvers is caught."""

import math
import subprocess
import sys

import numpy as np
import pytest

from solvers.problem import cap_count
from lmp_theory.testing import assert_conforms, batched, check_case, check_solver, conformance_cases
from lmp_theory.testing import golden
from lmp_theory.testing.kit import select_cases
from solvers.numpy import lmp_weights

CASES = conformance_cases()


# ---- the gallery: each a bug seen in public LMP code -------------------------------------------

def two_percent_over(l, p, g, t):
    return lmp_weights(l, p, g, t) * 1.02


def zero_when_many_tiny(l, p, g, t):
    """A known implementation collapses to all-zero weights once a quarter of the losses are < 1.2e-7."""
    positive = l > 0
    if np.count_nonzero(positive & (l < 1.2e-7)) >= 0.25 * l.size:
        return np.zeros_like(l)
    return lmp_weights(l, p, g, t)


def raw_powers(l, p, g, t):
    """The closed form with raw l**q and no scaling: overflows near p = 1 and for large losses."""
    if p == 1.0 or math.isinf(p):
        return lmp_weights(l, p, g, t)
    q = p / (p - 1)
    with np.errstate(all="ignore"):
        y = np.sort(np.maximum(l, 0))[::-1]
        m = (g / t) ** p
        for k in range(y.size + 1):
            rest = np.sum(y[k:] ** q)
            c = ((g**p - k * t**p) / rest) ** (1 / p)
            if k == y.size or c * y[k] ** (q - 1) <= t:
                break
        return np.where(l > 0, np.minimum(t, c * np.maximum(l, 0) ** (q - 1)), 0.0) if k < m else np.where(l > 0, t, 0.0)


def weights_on_negatives(l, p, g, t):
    """|l| instead of l+: negative losses get weight too."""
    return lmp_weights(np.abs(l), p, g, t)


def p_inf_as_max_pooling(l, p, g, t):
    if math.isinf(p):
        w = np.zeros_like(l)
        if np.any(l > 0):
            w[np.argmax(l)] = min(g, t)
        return w
    return lmp_weights(l, p, g, t)


def float32_inside(l, p, g, t):
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, and the solver then refuses it
        x = l.astype(np.float32)
    return lmp_weights(x, p, g, t).astype(np.float64)


def coarse_bisection(l, p, g, t):
    """The threshold by 12 bisection steps on h(t) = m instead of exactly."""
    if p == 1.0 or math.isinf(p) or math.isinf(t) or not np.any(l > 0):
        return lmp_weights(l, p, g, t)
    q = p / (p - 1)
    lp = np.maximum(l, 0)
    m = float(cap_count(p, g, t))
    if np.count_nonzero(lp) <= m:
        return np.where(lp > 0, t, 0.0)
    with np.errstate(all="ignore"):
        lo, hi = 0.0, lp.max() * max(1.0, (np.count_nonzero(lp) / m) ** (1 / q))
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.sum(np.minimum(1.0, (lp / mid) ** q)) > m else (lo, mid)
        return np.where(lp > 0, t * np.minimum(1.0, lp / hi) ** (q - 1), 0.0)


def first_tie_takes_all(l, p, g, t):
    """Correct value, but at p = 1 the remainder at the cut goes to the first tied loss, not shared."""
    w = lmp_weights(l, p, g, t)
    if p != 1.0:
        return w
    partial = (w > 0) & (w < t * (1 - 1e-12))
    if np.count_nonzero(partial) > 1:
        idx = np.flatnonzero(partial)
        total = w[idx].sum()
        w[idx] = 0.0
        for i in idx:  # fill in index order, each up to the cap
            w[i] = min(t, total)
            total -= w[i]
    return w


# (broken solver, the status its bug must produce, every status it may produce)
ANY = {"suboptimal", "infeasible", "non-finite", "raised", "wrong-weights"}
GALLERY = [
    (two_percent_over, "infeasible", {"infeasible"}),
    (zero_when_many_tiny, "suboptimal", {"suboptimal"}),
    (raw_powers, "non-finite", ANY),  # overflow: non-finite; underflow: wrong values; Python's ** raises
    (weights_on_negatives, "suboptimal", {"suboptimal", "infeasible"}),
    (p_inf_as_max_pooling, "suboptimal", {"suboptimal", "wrong-weights"}),  # same value where the rest is ~0
    (float32_inside, "suboptimal", {"suboptimal", "infeasible", "raised", "wrong-weights"}),  # 1e300 -> inf
    # a near-optimal threshold: the value may pass to tolerance while the weights do not (first order in t)
    (coarse_bisection, "suboptimal", {"suboptimal", "infeasible", "wrong-weights"}),
]


@pytest.mark.parametrize("fn, required, allowed", GALLERY, ids=[g[0].__name__ for g in GALLERY])
def test_gallery_solver_is_flagged_with_the_right_status(fn, required, allowed):
    report = check_solver(fn, cases=CASES)  # the golden corpus; the sizes family: tests/test_kit_isolation.py
    assert not report.passed, report.summary()
    statuses = {r.status for r in report.failing()}
    assert required in statuses and statuses <= allowed, (statuses, report.summary())
    assert "DOES NOT CONFORM" in report.summary()


def test_specific_gallery_verdicts():
    tiny = [c for c in CASES if c.family == "tiny" and c.p == 1.7 and c.ratio == 0.1]
    assert {check_case(zero_when_many_tiny, c).status for c in tiny} == {"suboptimal"}
    p_inf = [c for c in CASES if math.isinf(c.p) and c.family == "random" and c.n > 2]
    assert {check_case(p_inf_as_max_pooling, c).status for c in p_inf} == {"suboptimal"}
    near_one = [c for c in CASES if c.p == 1.001 and c.name.startswith("huge-1e300") and c.ratio == 0.0]
    assert {check_case(raw_powers, c).status for c in near_one} == {"non-finite"}  # (1e300)^1001 overflows


def test_non_canonical_tie_breaker_is_optimal_not_canonical_not_a_failure():
    lenient = check_solver(first_tie_takes_all, canonical=False, cases=CASES)
    assert lenient.passed, lenient.summary()
    assert lenient.counts().get("optimal-not-canonical", 0) > 0
    assert set(lenient.counts()) == {"pass", "optimal-not-canonical"}
    strict = check_solver(first_tie_takes_all, canonical=True, cases=CASES)
    assert not strict.passed and {r.status for r in strict.failing()} == {"optimal-not-canonical"}
    assert "canonical weights demanded" in strict.summary()


def test_kit_reports_raised_and_wrong_shape():
    def raises(l, p, g, t):
        raise RuntimeError("boom")

    report = check_solver(raises, cases=CASES[:5])
    assert {r.status for r in report.results} == {"raised"} and "boom" in report.results[0].message
    report = check_solver(lambda l, p, g, t: lmp_weights(l, p, g, t)[:-1], cases=CASES[:5])
    assert {r.status for r in report.results} == {"wrong-shape"}


# ---- the built-in solvers conform --------------------------------------------------------------

# The built-in solvers on the whole corpus, every backend x method x dtype: tests/test_matrix.py.

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_builtin_numpy_conforms(dtype):
    assert_conforms(batched(lmp_weights), dtype=dtype, cases=CASES[::7])


def test_assert_conforms_prints_a_readable_table():
    with pytest.raises(AssertionError) as info:
        assert_conforms(two_percent_over, cases=[c for c in CASES if c.family == "random"][:60])
    text = str(info.value)
    assert "DOES NOT CONFORM" in text and "infeasible" in text and "weight err" in text


# ---- golden answers ----------------------------------------------------------------------------

def test_golden_file_covers_the_corpus_with_current_inputs():
    stored = golden.load()
    assert set(stored) == {c.name for c in golden.golden_cases()}
    for case in golden.golden_cases():
        assert stored[case.name].fingerprint == golden.fingerprint(case), case.name
        assert stored[case.name].weights.shape == case.losses.shape


def test_golden_generator_has_not_drifted_on_a_sample():
    sample = golden.golden_cases()[::25]
    assert golden.drift(corpus=sample) == []


@pytest.mark.slow
def test_golden_generator_has_not_drifted_at_all():
    assert golden.drift() == []


def test_drift_is_detected(tmp_path):
    sample = golden.golden_cases()[:3]
    arrays = golden.generate(sample)
    arrays["weights"] = arrays["weights"] * (1 + 1e-15) + 1e-300
    path = tmp_path / "golden.npz"
    np.savez(path, **arrays)
    assert golden.drift(path, corpus=sample)


# ---- lmp verify --solver on a user's own module ------------------------------------------------

def test_lmp_verify_solver_on_a_users_module(tmp_path):
    (tmp_path / "user_lmp.py").write_text(
        "from solvers.numpy import lmp_weights\n"
        "def mine(l, p, g, t):\n    return lmp_weights(l, p, g, t)\n"
        "def broken(l, p, g, t):\n    return lmp_weights(l, p, g, t) * 1.02\n"
    )
    run = lambda spec: subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify", "--solver", spec],
                                      cwd=tmp_path, capture_output=True, text=True, timeout=300)
    ok = run("user_lmp:mine")
    assert ok.returncode == 0 and "CONFORMS" in ok.stdout, ok.stdout + ok.stderr
    bad = run("user_lmp:broken")
    assert bad.returncode == 1 and "infeasible" in bad.stdout
    missing = run("user_lmp:nothing")
    assert missing.returncode != 0 and "cannot load" in missing.stderr


def test_case_filters_accept_iterators():
    """A generator of names, families or exponents selects what the list does (it used to be spent by the first case)."""
    corpus = conformance_cases()
    for key, values in [("families", ["ties", "random"]), ("p", [1.0, 1.7]), ("names", [corpus[0].name, corpus[-1].name])]:
        as_list = select_cases(corpus, **{key: values})
        assert len(as_list) >= 2
        assert select_cases(corpus, **{key: iter(values)}) == as_list
