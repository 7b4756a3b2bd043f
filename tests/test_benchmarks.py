"""The benchmark suite runs (quick mode) and writes its report: speed is never asserted here."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_suite_writes_a_report(tmp_path):
    out = tmp_path / "benchmarks.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT / "benchmarks")
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text()
    for word in ("Machine", "np.sort", "np.power", "numpy select", "torch select", "Batched", "Peak extra memory",
                 "one pool, all equal", "float16", "OHEM", "bisection", "torch.topk", "LossMaxPooling", "How the cost grows",
                 "cvxpy", 'pool="global"', "Compiled kernels", "inductor", "np.full_like",
                 "compiled loops"):
        assert word in text
    assert (tmp_path / "benchmarks.png").exists()
    shapes = text.split("## Shapes")[1].split("\n## ")[0]  # four shapes, tiny pools of 4 included, at three p
    rows = [line for line in shapes.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 12 and any(line.startswith(f"| {2**14 // 4} x 4 | 1.7 |") for line in rows)
    headings = [line.lower() for line in text.splitlines() if line.startswith("#")]
    assert not [h for h in headings if "before" in h or "after" in h or "commit" in h]  # current figures, no history


@pytest.mark.slow
def test_quick_distributed_benchmark_runs():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "distributed.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "| 2 | 18,432 |" in run.stdout and "collectives" in run.stdout


@pytest.mark.slow
def test_kit_isolation_benchmark_runs(tmp_path):
    out = tmp_path / "kit_isolation.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kit_isolation.py"), "--repeats", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT / "benchmarks")
    assert run.returncode == 0, run.stdout + run.stderr
    text = out.read_text()
    assert "1,140 cases" in text and "Worker.for_spec" in text and "lmp verify --solver" in text
