"""The documentation site builds strictly (every page, notebook and API reference resolves), stands alone, and
says what the code does: the claims page the registry's text, the API page the signatures' types and defaults."""

import ast
import importlib
import inspect
import json
import math
import re
import sys
import textwrap

import pytest

from lmp_theory import paper_parameters
from tests.site_build import ROOT, page_tables, page_text

# the tests taking ``built_site`` are slow: mkdocs build --strict of the whole site (also the browser test's site)

NOTEBOOKS = ("01_what_lmp_does", "02_deriving_with_sympy", "03_exact_vs_fast", "04_imbalanced_segmentation")


@pytest.mark.slow
def test_mkdocs_build_strict(built_site):
    for page in ("index.html", "theory/index.html", "claims/index.html", "guide/index.html", "conformance/index.html", "api/index.html",
                 "benchmarks/index.html", *(f"notebooks/{name}/index.html" for name in NOTEBOOKS)):
        assert (built_site / page).exists(), page
    api = (built_site / "api" / "index.html").read_text()
    assert "lmp_weights" in api and "certify" in api and "LossMaxPooling" in api


@pytest.mark.slow
def test_theory_claim_ids_link_to_the_generated_claims_page(built_site):
    from lmp_theory.claims import REGISTRY

    theory = (built_site / "theory" / "index.html").read_text()
    claims = (built_site / "claims" / "index.html").read_text()
    for claim_id in REGISTRY:
        assert f'id="{claim_id}"' in claims, claim_id
        assert f'href="../claims/#{claim_id}"' in theory, claim_id
    assert "arxiv.org/abs/1704.02966" in theory
    for heading in re.findall(r"<h2[^>]*>(.*?)</h2>", theory, re.S):  # ids are linked from the text, not the titles
        assert "claims/#" not in heading and "[" not in page_text(heading), heading


@pytest.mark.slow
def test_site_bundles_mathjax_and_loads_nothing_remote(built_site):
    assert (built_site / "javascripts" / "mathjax" / "tex-mml-chtml.js").is_file()
    for html in built_site.rglob("*.html"):
        text = html.read_text()
        remote = re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(https?:)?//[^\"]*\"", text)
        assert not remote, (html, remote)
        assert "fonts.googleapis" not in text, html


@pytest.mark.slow
def test_notebooks_downloadable(built_site):
    for name in NOTEBOOKS:
        page = (built_site / "notebooks" / name / "index.html").read_text()
        assert f'href="{name}.ipynb"' in page or f"/{name}.ipynb" in page, name
        assert (built_site / "notebooks" / name / f"{name}.ipynb").is_file(), name
    assert (built_site / "notebooks" / "exercises.py").is_file()  # the answer checks the notebooks import


@pytest.mark.slow
def test_api_page_has_no_sphinx_roles(built_site):
    api = (built_site / "api" / "index.html").read_text()
    roles = re.findall(r":(?:func|class|meth|mod|attr|data|obj|exc):(?:`|<code>)", api)
    assert not roles, roles


@pytest.mark.slow
def test_claims_page_shows_every_statement_exactly_as_the_registry_holds_it(built_site):
    from lmp_theory.claims import REGISTRY

    text = page_text((built_site / "claims" / "index.html").read_text())
    for claim in REGISTRY.values():
        for field in (claim.title, claim.hypotheses, claim.statement, claim.source):
            assert " ".join(field.split()) in text, (claim.id, field)


def _api_sections(html: str, targets: list[str]):
    """Each ``::: target`` of docs/api.md with the part of the API page that documents it."""
    starts = sorted((html.index(f'id="{target}"'), target) for target in targets)
    for (start, target), (end, _) in zip(starts, starts[1:] + [(len(html), None)]):
        yield target, html[start:end]


def _signature_source(obj) -> dict[str, tuple[str | None, str | None]]:
    """``name -> (annotation, default)`` as written in the source of ``obj``'s def (a class: its __init__)."""
    function = obj.__init__ if inspect.isclass(obj) else inspect.unwrap(obj)
    (node,) = ast.parse(textwrap.dedent(inspect.getsource(function))).body
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + args.defaults + args.kw_defaults
    return {a.arg: (a.annotation and ast.unparse(a.annotation), d and ast.unparse(d))
            for a, d in zip(positional + args.kwonlyargs, defaults) if a.arg != "self"}


def _expression(text: str) -> str:
    """A Python expression in one canonical spelling, module prefixes dropped (the page shows ``Tensor``)."""
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", ast.unparse(ast.parse(text, mode="eval")))


@pytest.mark.slow
def test_api_parameter_tables_show_each_signature_s_types_and_defaults(built_site):
    html = (built_site / "api" / "index.html").read_text()
    targets = re.findall(r"^::: (\S+)", (ROOT / "docs" / "api.md").read_text(), re.M)
    checked = 0
    for target, section in _api_sections(html, targets):
        tables = [t for t in page_tables(section) if t and t[0] == ["Name", "Type", "Description", "Default"]]
        if not tables:
            continue
        module, _, name = target.rpartition(".")
        signature = _signature_source(getattr(importlib.import_module(module), name))
        rows = tables[0][1:]
        documented = [row[0] for row in rows]
        assert sorted(documented) == sorted(signature), (target, "documented", documented, "signature", list(signature))
        for shown_name, shown_type, _, shown_default in rows:
            annotation, default = signature[shown_name]
            if annotation is not None:
                assert _expression(shown_type) == _expression(annotation), (target, shown_name, shown_type, annotation)
            if default is None:
                assert shown_default == "required", (target, shown_name, shown_default)
            else:
                assert _expression(shown_default) == _expression(default), (target, shown_name, shown_default, default)
            checked += 1
    assert checked >= 40, checked


def test_spec_says_where_ratio_zero_removes_the_cap():
    spec = (ROOT / "docs" / "spec.md").read_text()
    assert r"(1 \le p < \infty;\ \tau = \infty \text{ for } \rho = 0)" in spec
    assert r"$p = \infty$ gives $\gamma = \tau = 1/n$ for every $\rho$, $\rho = 0$ included" in spec
    for n in (1, 7, 1000):
        assert paper_parameters(n, 1.7, 0.0)[1] == math.inf and paper_parameters(n, 1.0, 0.0)[1] == math.inf
        gamma, tau = paper_parameters(n, math.inf, 0.0)
        assert gamma == tau == paper_parameters(n, math.inf, 0.5)[1] and math.isclose(gamma, 1 / n, rel_tol=1e-15)


def _cells(name: str, kind: str) -> list[str]:
    notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == kind]


# sentences that were false on the page; each was replaced by a true one (issue 22)
FALSE_SENTENCES = {
    "02_deriving_with_sympy": ["where any weight is optimal", "caps too many or too few",
                               "t*  <- y_{k+1} (S_{k+1} / (m - k))^(1/q)"],
    "04_imbalanced_segmentation": ["normalises per image", "satisfy the norm constraint only for nearly balanced"],
    "01_what_lmp_does": ["The cap binds exactly when $\\tau < 0.912$; then $w = (\\tau, \\sqrt{1 - \\tau^2})$.",
                         "$l = (-1, -1)$ is the\nsmallest counterexample"],
}
# and those a student review found later: notebook 3's "not admissible" holds only for small p, the quantile of
# its solution 3 and the count of its solution 1; notebook 2's "expected O(n)" needs a sample growing with n
FALSE_SENTENCES["03_exact_vs_fast"] = ["With the paper's cap it is not admissible.", "near the top $m$ gets within",
                                       "flagged exactly the 20 uncapped cases"]
FALSE_SENTENCES["02_deriving_with_sympy"] += ["on a miss the sort path runs. Expected $O(n)$ time."]
# notebook 4's old verdict rule (one winning seed hid an interval below 0) and its single short budget (issue 23)
FALSE_SENTENCES["04_imbalanced_segmentation"] += ["**and** it has the same sign in every seed",
                                                  "Adam, 250 steps of 16 images"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_text_has_no_known_false_sentence_and_no_doubled_tex_backslash(name):
    markdown = _cells(name, "markdown")
    for sentence in FALSE_SENTENCES.get(name, []):
        assert not any(sentence in cell for cell in markdown), (name, sentence)
    for cell in markdown:  # "\\le" in a markdown cell renders as a line break and "le"
        assert not re.search(r"\\\\[A-Za-z]", cell), (name, cell[:200])


def test_every_exercise_has_an_answer_cell_with_a_check():
    exercises = 0
    for name in NOTEBOOKS:
        headings = [h for cell in _cells(name, "markdown") for h in re.findall(r"\*\*Exercise (\d+)", cell)]
        answers = [cell for cell in _cells(name, "code") if re.search(r"= \.\.\.(?:, \.\.\.)*\s+# your answer", cell)
                   or "return ...   # your answer" in cell]
        assert headings == [str(i) for i in range(1, len(headings) + 1)], (name, headings)
        assert len(answers) == len(headings), (name, len(answers), len(headings))
        assert all("check" in cell or "Right: " in cell for cell in answers), name
        exercises += len(headings)
    assert exercises >= 16, exercises


def test_the_exercise_checks_accept_right_answers_explain_wrong_ones_and_wait_for_an_answer(capsys):
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import exercises as ex
    finally:
        sys.path.remove(str(ROOT / "notebooks"))
    import sympy as sp

    n, p = sp.symbols("n p", positive=True)
    assert ex.check_expression(n ** (1 - 1 / p) * n ** (1 / p - 1), 1) is True
    assert ex.check_expression(n ** (1 / p), 1, hint="look again") is False
    assert "Hint: look again" in capsys.readouterr().out
    assert ex.check_number(2 ** 0.5, math.sqrt(2)) is True and ex.check_number(1.41, math.sqrt(2)) is False
    assert ex.check_number("two", 2.0) is False and "expected a number" in capsys.readouterr().out
    assert ex.check_numbers([0.3, 0.3, 0.4], [0.4, 0.3, 0.3], ordered=False) is True
    assert ex.check_numbers([0.4, 0.3], [0.4, 0.3, 0.3]) is False and "2 numbers" in capsys.readouterr().out
    assert ex.check_counterexample(-1.0, lambda x: x >= 0) is True and ex.check_counterexample(1.0, lambda x: x >= 0) is False
    assert ex.check_counterexample("x", lambda x: x >= 0) is False and "cannot be evaluated" in capsys.readouterr().out
    assert ex.check_numbers([1.0, 2.0], [1.0, 1.0, 2.0], ordered=False) is False  # each number as often
    assert ex.check_choice({0, 1}, {1, 0}) is True and ex.check_choice(2, 1) is False
    assert ex.check_choice(False, False) is True and ex.check_choice(0, False) is False  # 0 == False in Python
    for check, args in ((ex.check_number, (1.0,)), (ex.check_numbers, ([1.0, 2.0],)), (ex.check_expression, (1,)),
                        (ex.check_counterexample, (bool,)), (ex.check_choice, (1,))):
        assert check(..., *args) is None
        assert "Not answered yet" in capsys.readouterr().out
    assert ex.check_numbers([..., 1.0], [1.0, 1.0]) is None
    judge = lambda x: None if x == "placeholder" else (x > 0, f"found {x}")
    assert ex.check_by(2, judge) is True and ex.check_by(-2, judge, hint="positive") is False
    assert "Not yet: found -2 Hint: positive" in capsys.readouterr().out
    assert ex.check_by("placeholder", judge) is None and ex.check_by(..., judge) is None


def _solution_code(name: str) -> list[dict]:
    notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    cells = notebook["cells"]
    start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                 and "".join(c["source"]).startswith("## Solutions"))
    return [c for c in cells[start:] if c["cell_type"] == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_solution_code_is_folded_in_jupyter_and_tagged_for_the_site(name):
    """The cells that run the model answers through the checks give the answers away: folded in Jupyter
    (``source_hidden``), tagged ``solution``, whose input mkdocs.yml leaves off the site."""
    cells = _solution_code(name)
    assert cells
    for cell in cells:
        assert "solution" in cell["metadata"].get("tags", []), cell["source"][:2]
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True, cell["source"][:2]
    assert re.search(r"remove_input_tags: \[solution\]", (ROOT / "mkdocs.yml").read_text())


@pytest.mark.slow
def test_the_site_shows_no_solution_code(built_site):
    for name in NOTEBOOKS:
        text = page_text((built_site / "notebooks" / name / "index.html").read_text())
        for cell in _solution_code(name):
            source = " ".join("".join(cell["source"]).split())[:200]
            assert source not in text, (name, source)
