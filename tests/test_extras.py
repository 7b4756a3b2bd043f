"""The core install: the NumPy solvers, the certificate and the kit import no extra, and a missing
extra is named. Run in fresh interpreters, with the extras hidden as if they were not installed."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "cvxpy", "clarabel", "sympy")


def _run(code: str, hide: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    hiding = "".join(f"sys.modules[{name!r}] = None\n" for name in hide)  # a None entry makes import fail
    return subprocess.run([sys.executable, "-c", f"import sys\n{hiding}{code}"], capture_output=True, text=True,
                          timeout=120)


def test_core_modules_import_no_extra():
    code = ("import solvers.numpy, solvers.parameters, lmp_theory, lmp_theory.certificate, lmp_theory.testing\n"
            "from lmp_theory.claims import Instance, find_counterexample\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_core_works_with_the_extras_hidden():
    """The NumPy solver, the certificate, the kit and the search, with torch, cvxpy and sympy unimportable."""
    code = ("import numpy as np\n"
            "from lmp_theory import certify, paper_parameters\n"
            "from lmp_theory.claims import find_counterexample\n"
            "from lmp_theory.testing import check_solver, conformance_cases\n"
            "from solvers.numpy import lmp_value, lmp_weights\n"
            "x = np.arange(1.0, 9.0); g, t = paper_parameters(8, 1.7, 0.25)\n"
            "assert certify(x, lmp_weights(x, 1.7, g, t), 1.7, g, t).proves_optimal(1e-10)\n"
            "assert check_solver(lmp_weights, cases=conformance_cases(families=['ties'])).passed\n"
            "assert find_counterexample(lambda i: lmp_value(i.losses, i.p, i.gamma, i.tau) >= 0, budget=20) is None\n"
            "print('ok')")
    result = _run(code, hide=HEAVY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("code, missing, extra", [
    ("import solvers.torch", "torch", "torch"),
    ("from lmp_theory.reference import solve; solve([1.0, 2.0], 2.0, 1.0, 1.0)", "cvxpy", "exact"),
    ("from lmp_theory.claims import run_claims", "sympy", "symbolic"),
    ("from lmp_theory.cli import main; main(['claims'])", "sympy", "symbolic"),
    ("from lmp_theory.cli import main; main(['verify', '--no-torch'])", "cvxpy", "exact"),
    ("from lmp_theory.testing import check_pool; check_pool(lambda *a: None)", "torch", "torch"),
])
def test_a_missing_extra_is_named(code, missing, extra):
    result = _run(code, hide=(missing,))
    assert result.returncode != 0
    assert f"pip install 'lmp-theory[{extra}]'" in result.stderr.strip().splitlines()[-1]
    if "main(" in code:  # the command line says it in one line, without a traceback
        assert "Traceback" not in result.stderr


def test_a_broken_install_is_not_reported_as_a_missing_extra():
    """sympy is installed but cannot import mpmath: that error surfaces as it is, not as 'install the extra'."""
    result = _run("from solvers.extras import import_extra; import_extra('sympy', 'x')", hide=("mpmath",))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "mpmath" in last and "lmp-theory[" not in last
