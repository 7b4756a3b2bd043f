"""MkDocs hooks: the site renders offline, and its claims page is generated from the registry.

* MathJax 3 comes from the ``django-static-mathjax`` package (a plain copy of MathJax's ``es5`` build, no
  Django needed at build time); after each build its ``es5`` folder is copied to ``site/javascripts/mathjax``,
  next to ``javascripts/mathjax.js`` (the configuration) that ``mkdocs.yml`` loads first.
* ``claims.md`` is written from ``lmp_theory.claims.REGISTRY`` at build time (one anchor per claim id), so the
  theory page's claim ids link to the statements that ``lmp claims`` checks, and the page cannot go stale.
"""

import shutil
from importlib.resources import files
from pathlib import Path

from mkdocs.structure.files import File

MATHJAX_TARGET = Path("javascripts") / "mathjax"
CLAIMS_PAGE = "claims.md"


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
        parts.append(f'## `{claim.id}`: {claim.title} {{#{claim.id}}}\n')
        parts.append(f"**Hypotheses.** {claim.hypotheses}\n")
        parts.append(f"**Statement.** {claim.statement}\n")
        if claim.latex:
            parts.append(f"$$\n{claim.latex}\n$$\n")
        parts.append(f"*Source:* {claim.source}. Run: `lmp claims {claim.id} -v`.\n")
    return "\n".join(parts)


def on_files(files_, config, **kwargs):
    files_.append(File.generated(config, CLAIMS_PAGE, content=claims_markdown()))
    return files_


def on_post_build(config, **kwargs):
    shutil.copytree(mathjax_es5(), Path(config["site_dir"]) / MATHJAX_TARGET, dirs_exist_ok=True)
