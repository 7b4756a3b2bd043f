"""Build the documentation site once per test session (shared by the build test and the browser test), and read
the text and the tables of its pages as a reader sees them."""

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_site(target: Path) -> Path:
    """``mkdocs build --strict`` into ``target``; fails the calling test with mkdocs' output on an error."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(target)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return target


class _Text(HTMLParser):
    """The text of an HTML page as a reader sees it (scripts and styles left out), and its tables' cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks, self.tables, self._skip, self._cell = [], [], 0, None

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if not self._skip:
            self.chunks.append(data)
            if self._cell is not None:
                self._cell.append(data)


def page_text(html: str) -> str:
    """The page's visible text, whitespace collapsed to single spaces."""
    parser = _Text()
    parser.feed(html)
    return " ".join("".join(parser.chunks).split())


def page_tables(html: str) -> list[list[list[str]]]:
    """Each table of the page as its rows of cell texts."""
    parser = _Text()
    parser.feed(html)
    return parser.tables
