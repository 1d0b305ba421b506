"""The documentation site as `make docs` builds it, and the tables of its pages: shared by tests/test_docs.py and
tests/test_config.py (the fixture ``site`` is in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_site(out: Path) -> Path:
    """Build the site into ``out`` as `make docs` does (`--strict`: a warning or a broken link fails)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed (is the docs extra installed? pip install -e '.[docs]'):\n{proc.stderr}")
    return out


class Tables(HTMLParser):
    """Every table of a page: rows of cells, each cell as (text, [texts of its <code> elements])."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, list[str]]]]] = []
        self._cell: list[str] | None = None
        self._codes: list[str] = []
        self._code: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._codes = [], []
        elif tag == "code" and self._cell is not None:
            self._code = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((" ".join("".join(self._cell).split()), self._codes))
            self._cell = None
        elif tag == "code" and self._code is not None:
            self._codes.append("".join(self._code))
            self._code = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._code is not None:
            self._code.append(data)
