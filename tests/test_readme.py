"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


# The conformance-kit example runs the kit on the whole corpus, the pool check and the fuzzer: slow.
@pytest.mark.parametrize("index", [pytest.param(i, marks=[pytest.mark.slow] if "from my_package" in block else [])
                                   for i, block in enumerate(BLOCKS)])
def test_readme_example_runs(index, monkeypatch, tmp_path):
    if "from my_package" in BLOCKS[index]:  # the conformance-kit pattern: run it on our own solver
        (tmp_path / "my_package.py").write_text(
            "from solvers.numpy import lmp_weights as my_lmp_weights\n"
            "from solvers.torch import lmp_pool\n"
            "def my_lmp_layer(losses, p, ratio, mask):\n"
            "    return lmp_pool(losses, p, ratio, mask=mask, reduction='none')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        namespace = {}
        exec(compile(BLOCKS[index], "README", "exec"), namespace)
        namespace["test_conforms"]()
        for name in ("test_layer", "test_fuzz"):
            if name in namespace:
                namespace[name]()
        cases = namespace["conformance_cases"]()[:20]
        for case in cases:
            namespace["test_case"](case)
        return
    exec(compile(BLOCKS[index], "README", "exec"), {})


THEORY = (Path(__file__).resolve().parents[1] / "docs" / "theory.md").read_text()
THEORY_BLOCKS = re.findall(r"```python\n(.*?)```", THEORY, flags=re.S)


@pytest.mark.parametrize("index", range(len(THEORY_BLOCKS)))
def test_theory_page_example_runs_and_refutes(index, capsys):
    exec(compile(THEORY_BLOCKS[index], "docs/theory.md", "exec"), {})
    assert "Instance(losses=[" in capsys.readouterr().out  # the false statement was refuted
