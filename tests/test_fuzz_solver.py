"""fuzz_solver: hypothesis-drawn problems, the certificate as oracle, failures shrunk and reproducible."""

import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings

from lmp_theory.instance import Instance
from lmp_theory.testing import check_instance, fuzz_solver
from lmp_theory.testing.strategies import loss_vectors
from solvers.numpy import lmp_weights
from solvers.torch import lmp_weights as torch_weights


def wrong_above_50(l, p, g, t):
    """Correct on small pools; a size-dependent bug (a second code path for larger pools loses 1 %)."""
    w = lmp_weights(l, p, g, t)
    return w * 0.99 if l.size > 50 else w


def test_a_correct_solver_passes():
    report = fuzz_solver(lmp_weights, examples=150, seed=1)
    assert report.passed and report.counterexample is None and report.examples >= 150, report.summary()


def test_torch_backend_passes_in_float32():
    def torch_float32(l, p, g, t):
        import torch

        return torch_weights(torch.as_tensor(l), p, g, t)

    report = fuzz_solver(torch_float32, examples=60, dtype=np.float32)
    assert report.passed, report.summary() + "\n" + report.code


def test_size_dependent_bug_is_found_and_shrunk_to_the_smallest_pool():
    report = fuzz_solver(wrong_above_50, examples=300, seed=0)
    assert not report.passed
    found = report.counterexample
    assert isinstance(found, Instance) and found.n == 51  # shrunk to the smallest failing size
    assert report.results[0].status in ("suboptimal", "wrong-weights", "optimal-not-canonical")
    # the reproducer runs as printed and gives the same verdict
    assert "from tests.test_fuzz_solver import wrong_above_50" in report.code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(report.code, {})
    assert f"status='{report.results[0].status}'" in printed.getvalue()


def test_same_seed_same_counterexample():
    first = fuzz_solver(wrong_above_50, examples=200, seed=3)
    second = fuzz_solver(wrong_above_50, examples=200, seed=3)
    assert repr(first.counterexample) == repr(second.counterexample)


def test_counterexample_on_a_typical_bug():
    report = fuzz_solver(lambda l, p, g, t: lmp_weights(np.abs(l), p, g, t), examples=200)
    inst = report.counterexample
    assert inst is not None and inst.n <= 3 and np.any(inst.losses < 0)
    assert check_instance(lambda l, p, g, t: lmp_weights(np.abs(l), p, g, t), inst).status in (
        "suboptimal", "infeasible")


def test_bad_arguments():
    with pytest.raises(ValueError, match="examples"):
        fuzz_solver(lmp_weights, examples=0)
    with pytest.raises(ValueError, match="dtype"):
        fuzz_solver(lmp_weights, dtype=np.float16)


def test_bulk_pools_reach_thousands_and_the_default_is_unchanged():
    config = settings(max_examples=150, database=None, phases=(Phase.generate,), derandomize=True)  # fixed draws
    big = find(loss_vectors(bulk=3000), lambda x: x.size > 1000, settings=settings(config, max_examples=1000))
    assert 1000 < big.size <= 3000
    small = find(loss_vectors(), lambda x: x.size >= 8, settings=config)
    assert small.size == 8
    with pytest.raises(Exception):
        find(loss_vectors(), lambda x: x.size > 8, settings=config)


def test_bulk_sizes_spread_over_the_octaves_whatever_hypothesis_favours():
    """Hypothesis favours small integers (and the constants of the modules imported so far), so one
    integer over the whole range put nearly every bulk pool in its lowest octave."""
    from lmp_theory.testing.strategies import _log_uniform_sizes

    drawn = []

    @settings(max_examples=600, database=None, phases=(Phase.generate,), derandomize=True)
    @given(_log_uniform_sizes(301, 3000))
    def draw(n):
        drawn.append(n)

    draw()
    drawn = np.array(drawn)
    assert drawn.min() >= 301 and drawn.max() <= 3000
    for low, high in [(301, 602), (602, 1204), (1204, 2408)]:
        assert np.mean((drawn >= low) & (drawn < high)) > 0.15, (low, high)
    ends = settings(max_examples=2000, database=None, phases=(Phase.generate,), derandomize=True)
    assert find(_log_uniform_sizes(301, 3000), lambda n: n == 3000, settings=ends) == 3000
    assert find(_log_uniform_sizes(301, 3000), lambda n: n == 301, settings=ends) == 301


def test_lmp_verify_fuzz(tmp_path):
    (tmp_path / "user_fuzz.py").write_text(
        "import numpy as np\nfrom solvers.numpy import lmp_weights\n"
        "def on_abs(l, p, g, t):\n    return lmp_weights(np.abs(l), p, g, t)\n")
    out = subprocess.run([sys.executable, "-m", "lmp_theory.cli", "verify", "--solver", "user_fuzz:on_abs",
                          "--fuzz", "100"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "counterexample (shrunk): Instance(losses=" in out.stdout
    assert "from user_fuzz import on_abs" in out.stdout and "check_instance(on_abs" in out.stdout


def test_size_ladder_covers_the_top_of_the_range_whatever_hypothesis_draws():
    """The fuzzer's draws depend on hypothesis' state (e.g. the constants of the modules imported): the
    ladder makes the neighbours of every power of two up to ``max_size`` certain."""
    from lmp_theory.testing.fuzz import size_ladder

    sizes = [inst.n for inst in size_ladder(2**17)]
    assert {2**16 - 1, 2**16, 2**16 + 1, 2**17 - 1, 2**17} <= set(sizes) and max(sizes) == 2**17
    assert sizes == sorted(sizes) and min(sizes) == 2**10 - 1
    assert [inst.n for inst in size_ladder(3000)][-1] == 3000
