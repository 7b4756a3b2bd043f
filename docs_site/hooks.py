"""MkDocs hooks: the site renders offline, and its claims page is generated from the registry.

* MathJax 3 comes from the ``django-static-mathjax`` package (a plain copy of MathJax's ``es5`` build, no
  Django needed at build time); after each build its ``es5`` folder is copied to ``site/javascripts/mathjax``,
  next to ``javascripts/mathjax.js`` (the configuration) that ``mkdocs.yml`` loads first.
* ``claims.md`` is written from ``lmp_theory.claims.REGISTRY`` at build time (one anchor per claim id), so the
  theory page's claim ids link to the statements that ``lmp claims`` checks, and the page cannot go stale.
  The plain-text statements are shown exactly as the registry holds them (``tests/test_docs.py`` compares).
"""

import html
import shutil
from importlib.resources import files
from pathlib import Path

from mkdocs.structure.files import File

MATHJAX_TARGET = Path("javascripts") / "mathjax"
CLAIMS_PAGE = "claims.md"
MARKDOWN_SPECIAL = set("\\`*_{}[]")  # not ( ): arithmatex reads \\( \\) as a formula


def mathjax_es5() -> Path:
    """The installed MathJax ``es5`` folder (the one that holds ``tex-mml-chtml.js``)."""
    es5 = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax not found at {es5}: install the dev extra (pip install -e '.[dev]')")
    return es5


def claims_markdown() -> str:
    """The claims page: every registered claim with its hypotheses, statement and formula."""
    from lmp_theory.claims import REGISTRY

    parts = ["# Claims\n",
             "Every claim of the registry `lmp_theory.claims`, as `lmp claims -v` checks it: symbolically (sympy) "
             "where a piece can be proved, and by a counterexample search over the hypotheses as written. "
             "The [theory page](theory.md) explains each one; this page is generated from the registry.\n"]
    for claim in REGISTRY.values():
        parts.append(f'## `{claim.id}`: {markdown_literal(claim.title)} {{#{claim.id}}}\n')
        parts.append(plain_paragraph("Hypotheses.", claim.hypotheses))
        parts.append(plain_paragraph("Statement.", claim.statement))
        if claim.latex:
            parts.append(f"$$\n{claim.latex}\n$$\n")
        parts.append(plain_paragraph("Source:", claim.source))
        parts.append(f"Run: `lmp claims {claim.id} -v`.\n")
    return "\n".join(parts)


def plain_paragraph(label: str, text: str) -> str:
    """A paragraph that shows ``text`` character for character: raw HTML, which Markdown leaves alone
    (``*`` would start italics, ``<w, l>`` would pass for a tag), and which MathJax skips."""
    return f'<p class="claim-text mathjax_ignore"><strong>{label}</strong> {html.escape(text)}</p>\n'


def markdown_literal(text: str) -> str:
    """``text`` with every character that Markdown could read as markup escaped (for a heading)."""
    return "".join(f"\\{ch}" if ch in MARKDOWN_SPECIAL else html.escape(ch) for ch in text)


def on_files(files_, config, **kwargs):
    files_.append(File.generated(config, CLAIMS_PAGE, content=claims_markdown()))
    return files_


def on_post_build(config, **kwargs):
    shutil.copytree(mathjax_es5(), Path(config["site_dir"]) / MATHJAX_TARGET, dirs_exist_ok=True)
