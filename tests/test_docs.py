"""The documentation site builds strictly (every page, notebook and API reference resolves)."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    site = tmp_path / "site"
    for page in ("index.html", "theory/index.html", "guide/index.html", "conformance/index.html", "api/index.html",
                 "benchmarks/index.html", "notebooks/04_imbalanced_segmentation/index.html"):
        assert (site / page).exists(), page
    api = (site / "api" / "index.html").read_text()
    assert "lmp_weights" in api and "certify" in api and "LossMaxPooling" in api
