"""MkDocs hooks: serve MathJax from the site itself, so that pages render formulas offline.

MathJax 3 comes from the ``django-static-mathjax`` package (a plain copy of MathJax's ``es5`` build, no Django
needed at build time); after each build its ``es5`` folder is copied to ``site/javascripts/mathjax``, next to
``javascripts/mathjax.js`` (the configuration) that ``mkdocs.yml`` loads first.
"""

import shutil
from importlib.resources import files
from pathlib import Path

MATHJAX_TARGET = Path("javascripts") / "mathjax"


def mathjax_es5() -> Path:
    """The installed MathJax ``es5`` folder (the one that holds ``tex-mml-chtml.js``)."""
    es5 = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax not found at {es5}: install the docs extra (pip install -e '.[dev]')")
    return es5


def on_post_build(config, **kwargs):
    shutil.copytree(mathjax_es5(), Path(config["site_dir"]) / MATHJAX_TARGET, dirs_exist_ok=True)
