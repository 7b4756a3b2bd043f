"""The claims registry: every claim holds, its search covers its hypotheses, and the checks catch errors."""

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from lmp_theory.claims import REGISTRY, Instance, find_counterexample, run_claims
from lmp_theory.claims import closed_form, formulas
from lmp_theory.claims.registry import ClaimFailed, require, zero
from lmp_theory.testing import strategies as gen
from solvers.numpy import lmp_value

REQUIRED = ["paper-parameters", "holder", "kkt-closed-form", "value-formula", "gradient", "dual", "p1-cvar",
            "pinf-mean", "bounds", "monotone-in-p", "monotone-in-ratio", "class-weighting", "k-rule",
            "dual-quasiconvex", "max-bound", "least-norm", "jacobian"]


SEARCH = 100  # instances per claim: a search, not a spot check
# notebooks/02 runs the registry at budget 100 with seed 0 (and prints it); the suite searches other instances
SEED = 1


@pytest.mark.slow  # the whole registry: every symbolic proof and SEARCH instances per claim
def test_every_required_claim_is_registered_and_holds():
    results = {r.id: r for r in run_claims(budget=SEARCH, seed=SEED)}
    for cid in REQUIRED:
        assert cid in results, cid
        assert results[cid].symbolic.status == "pass", (cid, results[cid].symbolic.detail)
        assert results[cid].numeric.status == "pass", (cid, results[cid].numeric.detail)
    for r in results.values():
        assert r.source and r.statement and r.latex and r.hypotheses
        assert r.numeric.searched == SEARCH and f"{SEARCH} instances" in r.numeric.detail, (r.id, r.numeric.detail)
        assert REGISTRY[r.id].numeric.budget >= 100, r.id  # lmp claims: a search, not a spot check


def test_no_statement_claims_convexity_of_g_or_kkt_for_any_k():
    for claim in REGISTRY.values():
        text = claim.statement.lower()
        assert not re.search(r"g is convex(?! on each interval)", text), claim.id
        assert "for any number k" not in text and "for any k" not in text, claim.id
    assert "not convex" in REGISTRY["dual-quasiconvex"].statement
    assert "(l_i - t*)+" in REGISTRY["kkt-closed-form"].statement
    assert "t >= 0" in REGISTRY["p1-cvar"].statement


def test_a_broken_solver_is_caught_by_the_search_with_a_small_counterexample(monkeypatch):
    real = closed_form.lmp_solve

    def off_by_a_millionth(losses, p, gamma, tau, **kw):
        res = real(losses, p, gamma, tau, **kw)
        return res._replace(weights=res.weights * (1 + 1e-6))

    monkeypatch.setattr(closed_form, "lmp_solve", off_by_a_millionth)
    (result,) = run_claims(["holder"])
    assert result.numeric.status == "fail"
    assert "counterexample" in result.numeric.detail and "Instance(losses=[" in result.numeric.detail
    assert result.numeric.detail.count(",") < 12, result.numeric.detail  # shrunk to a handful of losses


def test_find_counterexample_is_deterministic_and_shrinks():
    def at_most_mean(inst):
        return lmp_value(inst.losses, inst.p, inst.gamma, inst.tau) <= np.mean(inst.losses) + 1e-12

    first = find_counterexample(at_most_mean, budget=300, seed=3)
    again = find_counterexample(at_most_mean, budget=300, seed=3)
    assert first is not None and repr(first) == repr(again)
    assert first.n <= 2 and not at_most_mean(first)
    assert find_counterexample(lambda inst: True, budget=50) is None


def test_an_exception_inside_the_property_counts_as_a_failure():
    def fragile(inst):
        if inst.n > 2:
            raise ZeroDivisionError("cannot evaluate")
        return True

    found = find_counterexample(fragile, budget=300)
    assert found is not None and found.n == 3


def test_searches_stay_inside_the_hypotheses():
    seen = []

    def record(inst):
        seen.append(inst)
        return True

    find_counterexample(record, budget=200, instances=gen.instances(
        p=gen.exponents(1.0, math.inf, exclude_min=True, exclude_max=True), cap=True))
    assert seen and all(1 < i.p < math.inf and math.isfinite(i.tau) for i in seen)
    seen.clear()
    find_counterexample(record, budget=200, instances=gen.instances(parameters="paper"))
    assert all(i.ratio is not None for i in seen)
    families = {tuple(np.sign(i.losses)) for i in seen}
    assert any(-1.0 in f for f in families) and any(0.0 in f for f in families)  # negatives and zeros drawn


@pytest.mark.parametrize("kwargs, error", [
    ({"budget": 0}, ValueError), ({"budget": 1.5}, ValueError), ({"seed": "a"}, TypeError),
])
def test_find_counterexample_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        find_counterexample(lambda inst: True, **kwargs)
    with pytest.raises(TypeError, match="prop"):
        find_counterexample(None)


def test_instance_prints_an_exact_reproducer():
    inst = Instance(np.array([0.1, 1e-300]), 1.7, 0.5, math.inf, None)
    rebuilt = eval(f"Instance({inst.reproducer()})", {"Instance": Instance, "np": np, "math": math})
    assert np.array_equal(rebuilt.losses, inst.losses) and rebuilt.tau == math.inf and rebuilt.p == 1.7
    assert not inst.losses.flags.writeable


def test_monotone_in_p_states_its_verdict():
    assert "Verdict" in REGISTRY["monotone-in-p"].statement


@pytest.mark.parametrize(
    "name, broken, claim_id",
    [
        ("value_formula", lambda tau, S, gamma, k, p, R: tau * S + (gamma**p - k * tau**p) ** (1 / p) * R ** (1 / p),
         "value-formula"),  # wrong exponent on R: 1/p instead of 1/q
        ("threshold_formula", lambda R, m, k, p: (R / (m - k)) ** (1 / p), "kkt-closed-form"),
        ("paper_tau", lambda n, p, ratio: n ** (1 / p - 1) * (ratio * n) ** (-1 / (p + 1)), "paper-parameters"),
        ("dual_on_interval", lambda t, tau, S, k, gamma, R, p: tau * (S - k * t) + gamma * (R + k * t**p) ** (1 / p),
         "dual"),
        ("cvar", lambda S, nu, k, m: (S + (m - k) * nu) / (k + 1), "p1-cvar"),
    ],
)
def test_a_deliberately_broken_formula_is_caught_symbolically(monkeypatch, name, broken, claim_id):
    monkeypatch.setattr(formulas, name, broken)
    (result,) = run_claims([claim_id], budget=1)  # the symbolic check must fail; the search is not at stake
    assert result.symbolic.status == "fail", result.symbolic.detail
    assert not result.passed


def test_broken_value_formula_is_caught_numerically_too(monkeypatch):
    monkeypatch.setattr(formulas, "value_formula",
                        lambda tau, S, gamma, k, p, R: tau * S + (gamma**p - k * tau**p) ** (1 / p) * R ** (1 / p))
    (result,) = run_claims(["value-formula"])
    assert result.numeric.status == "fail"


def test_zero_and_require_cannot_be_fooled():
    x, y = sp.symbols("x y", positive=True)
    with pytest.raises(ClaimFailed):
        zero(x**2 - x, "x^2 != x")
    with pytest.raises(ClaimFailed):
        zero((x + y) ** 2 - x**2 - y**2, "not an identity")
    zero((x * y) ** 3 - x**3 * y**3, "an identity")
    with pytest.raises(ClaimFailed):
        require((x - y).is_positive, "sympy cannot tell: must fail")  # None is not a proof
    with pytest.raises(ClaimFailed):
        require(False, "false")


def test_unknown_claim_id_is_named():
    with pytest.raises(KeyError, match="no-such-claim"):
        run_claims(["no-such-claim"])


@pytest.mark.slow  # a subprocess running the registry; the fast loop calls run_claims directly
def test_lmp_claims_json_and_exit_status():
    out = subprocess.run([sys.executable, "-m", "lmp_theory.cli", "claims", "--json", "--budget", "40", "holder",
                          "dual"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == ["holder", "dual"]
    for r in rows:
        assert {"id", "symbolic", "numeric", "statement", "hypotheses", "searched"} <= set(r)
        assert r["symbolic"] == r["numeric"] == "pass" and r["searched"] == 40


def test_registry_ids_are_unique_and_complete():
    run_claims(["holder"])  # imports every claim module
    assert set(REQUIRED) <= set(REGISTRY)


def _tied(losses) -> bool:
    positive = [v for v in losses if v > 0]
    return len(set(positive)) < len(positive)


# false kink sets for the gradient claim: each must be refuted by the claim's own search
WRONG_KINKS = {
    "ties and zeros are the kinks (the old statement)": lambda real: lambda l, i: (
        any(v == 0 for v in l) or _tied(l)),
    "ties are kinks for 1 < p < inf": lambda real: lambda l, i: real(l, i) or (i.p > 1 and _tied(l)),
    "ties at the p = 1 cut are not kinks": lambda real: lambda l, i: real(l, i) and not (
        i.p == 1 and not any(v == 0 for v in l)),
    "zeros are never kinks": lambda real: lambda l, i: real(l, i) and not any(v == 0 for v in l),
    "zeros are always kinks": pytest.param(lambda real: lambda l, i: real(l, i) or any(v == 0 for v in l),
                                           marks=pytest.mark.slow),
}


@pytest.mark.parametrize("wrong", WRONG_KINKS.values(), ids=WRONG_KINKS.keys())
def test_the_gradient_search_refutes_a_wrong_set_of_kinks(monkeypatch, wrong):
    from lmp_theory.claims import _exact

    monkeypatch.setattr(_exact, "kinked", wrong(_exact.kinked))
    (result,) = run_claims(["gradient"], seed=SEED)
    assert result.numeric.status == "fail", result.numeric.detail
    assert "Instance(losses=[" in result.numeric.detail and result.numeric.detail.count(",") < 10, result.numeric.detail


def test_the_gradient_claim_holds_at_ties_zeros_and_negatives():
    (result,) = run_claims(["gradient"], budget=60, seed=SEED)
    assert result.symbolic.status == "pass" and result.numeric.status == "pass", result.numeric.detail
    assert "ties, zeros and negatives included" in REGISTRY["gradient"].hypotheses


@pytest.mark.slow  # a search with shrinking (about 15 s)
def test_the_jacobian_search_catches_a_jacobian_without_its_rank_one_term(monkeypatch):
    from lmp_theory.claims import second_order

    real = second_order.stated_jacobian

    def diagonal_only(losses, inst):
        found = real(losses, inst)
        if found is None:
            return None
        jacobian, scale = found
        return [[e if i == j else e * 0 for j, e in enumerate(row)] for i, row in enumerate(jacobian)], scale

    monkeypatch.setattr(second_order, "stated_jacobian", diagonal_only)
    (result,) = run_claims(["jacobian"], seed=SEED)
    assert result.numeric.status == "fail" and "Instance(losses=[" in result.numeric.detail, result.numeric.detail
