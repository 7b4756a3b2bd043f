"""`lmp verify`, the main job: its table, and that it fails when a solver is wrong."""

import subprocess
import sys

import numpy as np

from lmp_theory.corpus import cases
from lmp_theory.verify import compute_references, format_table, measure
from solvers.numpy import lmp_weights


def test_measure_flags_a_slightly_wrong_solver():
    corpus = [c for c in cases() if c.family in ("random", "tiny")][:40]
    refs = compute_references(corpus)
    good = measure("good", lmp_weights, np.dtype(np.float64), corpus, refs)
    bad = measure("bad", lambda *a: lmp_weights(*a) * (1 + 1e-8), np.dtype(np.float64), corpus, refs)
    assert good.passed and good.cases == len(corpus)
    assert not bad.passed and bad.violation > 1e-9
    table = format_table([good, bad])
    assert "good" in table and "FAIL" in table


def test_lmp_verify_command_passes_and_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for word in ("solver", "value err", "weight err", "cert gap", "violation", "numpy float64", "numpy float32"):
        assert word in out.stdout
    assert "all solvers agree with the exact reference" in out.stdout
