"""`lmp verify`, the main job: the built-in solvers judged by the conformance kit, and its exit code."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lmp_theory import cli, verify
from lmp_theory.corpus import cases
from lmp_theory.reference import VerificationError
from lmp_theory.testing import check_solver
from lmp_theory.testing import oracle as oracles
from lmp_theory.testing.oracle import ReferenceOracle, oracle_named, stored_answer
from solvers.numpy import lmp_weights

TINY = [c for c in cases() if c.family == "tiny"]
JUDGED = ("name", "status", "value_error", "weight_error", "violation", "gap", "value_tol", "weight_tol", "message")


def slightly_over(l, p, g, t):
    """A deliberately wrong solver: every weight 1e-8 too large."""
    return lmp_weights(l, p, g, t) * (1 + 1e-8)


@pytest.fixture
def wrong_builtin(monkeypatch):
    """`lmp verify` with the wrong solver as its only built-in."""
    builtin = verify.Builtin("slightly over", slightly_over, np.dtype(np.float64), "tests.test_verify_cli:slightly_over")
    monkeypatch.setattr(verify, "builtin_solvers", lambda torch_devices=True: [builtin])


@pytest.mark.parametrize("oracle", ["reference", "golden", "certificate"])
def test_lmp_verify_and_check_solver_judge_a_wrong_solver_identically(wrong_builtin, capsys, oracle):
    assert cli.main(["verify", "--family", "tiny", "--oracle", oracle, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False and data["oracle"] == oracle
    assert [r["solver"] for r in data["reports"]] == (["cvxpy+refine"] if oracle == "reference" else []) + ["slightly over"]
    by_lmp_verify = data["reports"][-1]["results"]
    by_kit = check_solver(slightly_over, cases=TINY, oracle=oracle_named(oracle)).as_json()["results"]
    assert len(by_kit) == len(TINY) and {r["status"] for r in by_kit} == {"infeasible"}
    assert [{k: r[k] for k in JUDGED} for r in by_lmp_verify] == [{k: r[k] for k in JUDGED} for r in by_kit]


def test_lmp_verify_prints_the_failures_with_reproducers_and_exits_1(wrong_builtin, capsys):
    assert cli.main(["verify", "--family", "tiny", "--show", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (30)" in out and "infeasible 30 -> DOES NOT CONFORM" in out and "VERIFICATION FAILED" in out
    command = "lmp verify --solver tests.test_verify_cli:slightly_over --oracle reference --case "
    assert f"reproduce: {command}" in out and "... and 28 more" in out
    name = TINY[0].name
    again = subprocess.run([sys.executable, "-m", "lmp_theory.cli", *command.split()[1:], name],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "infeasible 1 -> DOES NOT CONFORM" in again.stdout, again.stdout + again.stderr


def test_the_three_oracles_agree_where_the_maximizer_is_not_unique():
    tricky = [c for c in cases() if c.family in ("ties", "zeros", "degenerate", "tiny") and c.p in (1.0, 1.7, math.inf)]
    reference = ReferenceOracle()
    for case in tricky:
        exact, refined = stored_answer(case), reference(case)
        np.testing.assert_allclose(refined.weights, exact.weights, rtol=0, atol=1e-12 * max(exact.weights.max(), 1e-300))
        if case.p == 1.0 and math.isfinite(case.tau):
            assert refined.threshold == exact.threshold, case.name  # the p = 1 cut decides the ties
    for oracle in (stored_answer, reference, oracles.certificate_only):
        assert check_solver(lmp_weights, cases=tricky, oracle=oracle).passed


def test_a_reference_that_fails_its_own_verification_fails_lmp_verify(monkeypatch, capsys):
    solve = oracles.solve

    def failing_on_one(losses, p, gamma, tau):
        if np.array_equal(losses, TINY[0].losses) and p == TINY[0].p and gamma == TINY[0].gamma:
            raise VerificationError("KKT residual 1 > 1e-09")
        return solve(losses, p, gamma, tau)

    monkeypatch.setattr(oracles, "solve", failing_on_one)
    assert cli.main(["verify", "--family", "tiny", "--no-torch", "--json"]) == 1
    reports = json.loads(capsys.readouterr().out)["reports"]
    reference, solvers = reports[0], reports[1:]
    assert reference["solver"] == "cvxpy+refine" and reference["counts"].get("raised") == 1
    assert all(r["passed"] for r in solvers)  # that case falls back to the certificate


def test_verbose_lists_every_solver_and_the_golden_oracle_needs_no_cvxpy(capsys, monkeypatch):
    monkeypatch.setattr(oracles, "solve", None)  # calling the reference would raise TypeError
    assert cli.main(["verify", "--family", "zeros", "--no-torch", "--oracle", "golden", "-v"]) == 0
    out = capsys.readouterr().out
    assert "cvxpy+refine" not in out and "judged against the golden mpmath answers" in out
    for builtin in verify.builtin_solvers(torch_devices=False):
        assert f"{builtin.name} [{builtin.dtype}, canonical weights demanded]" in out


@pytest.mark.slow  # the whole default run with cvxpy; .ci/run also runs it before the suite
def test_lmp_verify_command_passes_and_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for word in ("solver", "value err", "weight err", "cert gap", "violation", "cvxpy+refine", "numpy float64",
                 "numpy float32", "numpy select float64", "oracle: reference"):
        assert word in out.stdout
    assert "all solvers agree with the exact reference" in out.stdout


def test_lmp_verify_runs_without_torch():
    code = ("import sys; sys.modules['torch'] = None\nfrom lmp_theory.cli import main\n"
            "sys.exit(main(['verify', '--oracle', 'golden', '--family', 'zeros']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "numpy select float32" in out.stdout and "torch" not in out.stdout, out.stderr
