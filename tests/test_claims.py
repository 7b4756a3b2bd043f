"""The claims registry: every claim holds, and the checks catch a wrong formula."""

import json
import subprocess
import sys

import pytest
import sympy as sp

from lmp_theory.claims import REGISTRY, run_claims
from lmp_theory.claims import formulas
from lmp_theory.claims.registry import ClaimFailed, require, zero

REQUIRED = ["paper-parameters", "holder", "kkt-closed-form", "value-formula", "gradient", "dual", "p1-cvar",
            "pinf-mean", "bounds", "monotone-in-p", "class-weighting"]


@pytest.fixture(scope="module")
def results():
    return {r.id: r for r in run_claims()}


def test_every_required_claim_is_registered_and_holds(results):
    for cid in REQUIRED:
        assert cid in results, cid
        assert results[cid].symbolic.status == "pass", (cid, results[cid].symbolic.detail)
        assert results[cid].numeric.status == "pass", (cid, results[cid].numeric.detail)
    for r in results.values():
        assert r.source and r.statement and r.latex


def test_monotone_in_p_states_its_verdict(results):
    assert "Verdict" in results["monotone-in-p"].statement


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
    (result,) = run_claims([claim_id])
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


def test_lmp_claims_json_and_exit_status():
    out = subprocess.run([sys.executable, "-m", "lmp_theory.cli", "claims", "--json", "holder", "dual"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == ["holder", "dual"]
    for r in rows:
        assert {"id", "symbolic", "numeric", "statement"} <= set(r) and r["symbolic"] == r["numeric"] == "pass"


def test_registry_ids_are_unique_and_complete():
    run_claims(["holder"])  # imports every claim module
    assert set(REQUIRED) <= set(REGISTRY)
