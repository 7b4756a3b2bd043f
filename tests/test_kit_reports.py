"""Reports that find the bug: breakdown, severity order, what is violated where, reproducers, JSON, CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lmp_theory.testing import check_solver, conformance_cases
from lmp_theory.testing.report import summary_table
from solvers.numpy import lmp_weights

CASES = conformance_cases()


def mixed_bugs(l, p, g, t):
    """A different bug per family, so that every kind of failure shows up."""
    w = lmp_weights(l, p, g, t)
    if l.size == 1:
        raise RuntimeError("single losses not supported")
    if l.size == 2:
        return np.full_like(l, np.nan)
    if l.size == 7:
        w = w.copy()
        w[3] = -0.25 * min(g, t)
        return w
    if np.all(l <= 0) or l.size == 60:
        return np.zeros_like(l) if l.size == 60 else w
    return w


@pytest.fixture(scope="module")
def report():
    return check_solver(mixed_bugs, cases=[c for c in CASES if c.family in ("random", "ties", "degenerate")])


def test_breakdown_counts_every_case(report):
    by_family_p = report.breakdown()
    assert sum(sum(t.values()) for t in by_family_p.values()) == len(report.results)
    assert by_family_p[("ties", 2.0)]["suboptimal"] == 5  # ties-0to3-n60 at p = 2: all weights zero, 5 ratios
    by_ratio = report.breakdown(("family", "p", "ratio"))
    assert sum(sum(t.values()) for t in by_ratio.values()) == len(report.results)
    table = report.breakdown_table()
    assert "family" in table and "non-finite" in table and "1.001" in table


def test_worst_first_with_every_status_shown(report):
    worst = report.worst(limit=8)
    assert {r.status for r in worst} == {"non-finite", "infeasible", "suboptimal", "raised"}
    ranks = [r.severity() for r in worst]
    assert ranks == sorted(ranks)


def test_rows_say_what_is_wrong_where_and_with_which_tolerance(report):
    infeasible = [r for r in report.results if r.status == "infeasible"]
    assert infeasible and all("negativity: w[3]" in r.message for r in infeasible)
    zero = [r for r in report.results if r.status == "suboptimal"]
    assert zero and all("all weights zero" in r.message for r in zero)
    for r in report.results:
        if r.status in ("pass", "infeasible", "suboptimal"):
            assert r.value_tol == pytest.approx(1e-10, rel=1e-3) or r.value_tol > 1e-10
            assert math.isfinite(r.weight_tol)
    text = report.table(limit=8)
    assert "tol (value/weight)" in text and "1e-10" in text
    assert "reproduce: lmp verify --solver tests.test_kit_reports:mixed_bugs --case" in text


def test_json_has_everything(report):
    data = json.loads(json.dumps(report.as_json()))
    assert data["passed"] is False and data["checked"] == len(report.results)
    assert sum(data["counts"].values()) == len(report.results)
    failing = [r for r in data["results"] if r["status"] != "pass"]
    assert failing and all(r["reproducer"].startswith("lmp verify --solver") for r in failing)


def test_summary_table_gives_each_report_its_worst_figures(report):
    good = check_solver(lmp_weights, cases=[c for c in CASES if c.family == "degenerate"][:20], name="good")
    lines = summary_table([good, report]).splitlines()
    assert lines[0].split()[:3] == ["solver", "cases", "value"] and set(lines[1]) == {"-"}
    assert lines[2].split()[:2] == ["good", "20"] and lines[2].endswith("pass")
    mine = lines[3].split()
    assert mine[1] == str(len(report.results)) and lines[3].endswith(f"FAIL ({len(report.failing())})")
    assert float(mine[5]) == pytest.approx(max(r.violation for r in report.results if not math.isnan(r.violation)), rel=0.05)
    assert mine[6] == "-" and mine[7] == "1e-10" and mine[8] == "1e-10"  # compared with, value tol, weight tol
    assert float(mine[9]) == pytest.approx(sum(r.seconds for r in report.results), abs=0.01)


def run(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def user_module(tmp_path):
    (tmp_path / "user_kit.py").write_text(
        "import sys\nimport numpy as np\nfrom solvers.numpy import lmp_weights\n"
        "def exits(l, p, g, t):\n    sys.exit(0)\n"
        "def chatty(l, p, g, t):\n    print('hello from the solver')\n    return lmp_weights(l, p, g, t) * 1.02\n")
    return tmp_path


def test_cli_filters_json_verbose_and_reproducer(user_module):
    out = run(user_module, "--solver", "user_kit:chatty", "--family", "random", "--p", "2", "--p", "inf", "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 1 and {r["family"] for r in data["results"]} == {"random"}
    assert {r["p"] for r in data["results"]} == {2.0, "inf"}
    assert "hello" not in out.stdout.replace('"output": "hello from the solver\\n"', "")
    name = next(r["name"] for r in data["results"] if r["status"] != "pass")
    again = run(user_module, "--solver", "user_kit:chatty", "--case", name, "-v")
    assert again.returncode == 1 and "1 cases" in again.stdout and "| hello from the solver" in again.stdout


def test_cli_survives_sys_exit_and_refuses_empty_choices(user_module):
    out = run(user_module, "--solver", "user_kit:exits", "--family", "degenerate")
    assert out.returncode == 1 and "sys.exit(0)" in out.stdout and "DOES NOT CONFORM" in out.stdout
    empty = run(user_module, "--solver", "")
    assert empty.returncode != 0 and "--solver must look like" in empty.stderr
    nothing = run(user_module, "--solver", "user_kit:chatty", "--family", "no-such-family")
    assert nothing.returncode != 0 and "--family 'no-such-family' is not a family; families: degenerate" in nothing.stderr
    other = next(c for c in CASES if c.family != "ties")
    together = run(user_module, "--solver", "user_kit:chatty", "--case", other.name, "--family", "ties")
    assert together.returncode != 0 and "select no case" in together.stderr
    bad = run(user_module, "--solver", "user_kit:chatty", "--fuzz", "0")
    assert bad.returncode != 0 and "examples must be an int >= 1" in bad.stderr
