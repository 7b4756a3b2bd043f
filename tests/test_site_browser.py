"""The built site in a real browser (headless Chromium, 1280 px wide), offline: every formula typeset, every image
loaded and legible, program output scrolling rather than wrapping, the claims page's text equal to the registry's,
API headings naming their functions, and no request leaving 127.0.0.1.

Set ``LMP_SCREENSHOTS=/some/dir`` to keep a full-page screenshot of each page.
"""

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser fixture skips, saying so
    PlaywrightTimeout = TimeoutError

from tests.test_docs import NOTEBOOKS

BROWSER = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
NO_FORMULAS = {"api/", "benchmarks/"}
PAGES = ["", "theory/", "spec/", "claims/", "guide/", "distributed/", "conformance/", "benchmarks/", "api/",
         *(f"notebooks/{name}/" for name in NOTEBOOKS)]
WIDTH = 1280  # the screenshots' width: a laptop's browser window

# Text the reader sees outside code, with MathJax's output removed: any TeX left there was not typeset.
VISIBLE_TEXT = """() => {
  const body = document.querySelector("article").cloneNode(true);
  body.querySelectorAll("pre, code, script, style, mjx-container, .jp-OutputArea").forEach(e => e.remove());
  return body.innerText;
}"""
BROKEN_IMAGES = """() => Array.from(document.images)
  .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 80))"""
# program output that wraps instead of scrolling (the notebook theme breaks output lines anywhere)
WRAPPING_OUTPUT = """() => Array.from(document.querySelectorAll(
  ".jp-OutputArea-output pre, article div.highlight:not([class*='language-']) pre > code"))
  .filter(e => getComputedStyle(e).whiteSpace !== "pre").map(e => e.textContent.slice(0, 60))"""
# figures shown at less than 60 % of their pixels, or wider than the column (then cut or scrolled)
ILLEGIBLE_FIGURES = """() => Array.from(document.querySelectorAll("article img"))
  .filter(img => img.naturalWidth > 200 && (img.clientWidth < 0.6 * Math.min(img.naturalWidth, 1000)
                 || img.getBoundingClientRect().right > document.querySelector("article").getBoundingClientRect().right + 1))
  .map(img => `${img.naturalWidth} px shown at ${img.clientWidth} px`)"""
RAW_TEX = ["\\(", "\\)", "\\[", "\\]", "$$", "\\frac", "\\sum", "\\min", "\\max", "\\langle", "\\gamma", "\\tau"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url(built_site):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(built_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if BROWSER is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the browser test needs one")
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test drives Chromium with playwright")
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_page_renders_offline(browser, site_url, path):
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    remote = []
    page.on("request", lambda request: remote.append(request.url)
            if urlparse(request.url).hostname not in ("127.0.0.1", None) and not request.url.startswith("data:")
            else None)
    page.route(lambda url: urlparse(url).hostname not in ("127.0.0.1", None), lambda route: route.abort())
    page.goto(site_url + path, wait_until="load")
    try:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
    except PlaywrightTimeout:
        pytest.fail(f"{path}: MathJax did not start within 20 s; requests that left 127.0.0.1: {remote}")
    page.evaluate("() => MathJax.startup.promise")
    page.wait_for_load_state("networkidle")

    text = page.evaluate(VISIBLE_TEXT)
    left = [tex for tex in RAW_TEX if tex in text]
    assert not left, f"{path}: untypeset TeX {left} in: {text[max(0, text.find(left[0]) - 80):][:200]!r}"
    assert page.locator("mjx-container").count() > 0 or path in NO_FORMULAS, f"{path}: no formula typeset"
    assert page.evaluate(BROKEN_IMAGES) == [], path
    assert page.evaluate(WRAPPING_OUTPUT) == [], f"{path}: program output wraps instead of scrolling"
    assert page.evaluate(ILLEGIBLE_FIGURES) == [], f"{path}: figures not legible at the content width"
    assert remote == [], f"{path} asked the network for {remote}"
    if path == "claims/":  # the text as the reader sees it is the registry's, character for character
        from lmp_theory.claims import REGISTRY

        shown = " ".join(page.locator("article").inner_text().split())
        for claim in REGISTRY.values():
            assert " ".join(claim.statement.split()) in shown, claim.id
    if path == "api/":
        headings = page.locator(".doc-heading").all_inner_texts()
        for name in ("lmp_weights", "certify", "dual_minimum", "LossMaxPooling", "find_counterexample"):
            assert any(name in heading for heading in headings), f"API page: no heading names {name}"
    if os.environ.get("LMP_SCREENSHOTS"):
        target = Path(os.environ["LMP_SCREENSHOTS"]) / ((path.strip("/").replace("/", "_") or "index") + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)
    page.close()
