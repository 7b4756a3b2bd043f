"""Scripts that only run in full on special machines still run here, small, so they never rot."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a rot check; its CUDA-vs-CPU and float32-vs-float64 agreements are tests/test_matrix.py's
def test_gpu_check_script_runs_small_on_cpu():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--small"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "GPU CHECK PASSED" in out.stdout and "lmp_over_cross_entropy" in out.stdout
