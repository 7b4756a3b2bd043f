"""The documentation site builds strictly (every page, notebook and API reference resolves) and stands alone."""

import re

import pytest

pytestmark = pytest.mark.slow  # mkdocs build --strict of the whole site (also the browser test's site)

NOTEBOOKS = ("01_what_lmp_does", "02_deriving_with_sympy", "03_exact_vs_fast", "04_imbalanced_segmentation")


def test_mkdocs_build_strict(built_site):
    for page in ("index.html", "theory/index.html", "claims/index.html", "guide/index.html", "conformance/index.html", "api/index.html",
                 "benchmarks/index.html", *(f"notebooks/{name}/index.html" for name in NOTEBOOKS)):
        assert (built_site / page).exists(), page
    api = (built_site / "api" / "index.html").read_text()
    assert "lmp_weights" in api and "certify" in api and "LossMaxPooling" in api


def test_theory_claim_ids_link_to_the_generated_claims_page(built_site):
    from lmp_theory.claims import REGISTRY

    theory = (built_site / "theory" / "index.html").read_text()
    claims = (built_site / "claims" / "index.html").read_text()
    for claim_id in REGISTRY:
        assert f'id="{claim_id}"' in claims, claim_id
        assert f'href="../claims/#{claim_id}"' in theory, claim_id
    assert "arxiv.org/abs/1704.02966" in theory


def test_site_bundles_mathjax_and_loads_nothing_remote(built_site):
    assert (built_site / "javascripts" / "mathjax" / "tex-mml-chtml.js").is_file()
    for html in built_site.rglob("*.html"):
        text = html.read_text()
        remote = re.findall(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(https?:)?//[^\"]*\"", text)
        assert not remote, (html, remote)
        assert "fonts.googleapis" not in text, html


def test_notebooks_downloadable(built_site):
    for name in NOTEBOOKS:
        page = (built_site / "notebooks" / name / "index.html").read_text()
        assert f'href="{name}.ipynb"' in page or f"/{name}.ipynb" in page, name
        assert (built_site / "notebooks" / name / f"{name}.ipynb").is_file(), name


def test_api_page_has_no_sphinx_roles(built_site):
    api = (built_site / "api" / "index.html").read_text()
    roles = re.findall(r":(?:func|class|meth|mod|attr|data|obj|exc):(?:`|<code>)", api)
    assert not roles, roles
