"""Secret values out of what a run writes: a cell that prints a secret parameter, or puts it in an exception.

The injected cell never holds a secret (it reads an environment variable); but the notebook's own code may print
one. Every write of the output notebook replaces each secret value by ``***`` (in its JSON-escaped forms), and when
the run ends the notebook itself is cleaned the same way, so that reports and XCom records built from it are too.
Values shorter than ``MIN_LENGTH`` are left alone, as Airflow's secrets masker does: hiding every "ab" would garble
the notebook and protect nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from nbformat import NotebookNode

MIN_LENGTH = 5
PLACEHOLDER = "***"


class Redactor:
    """Replaces a run's secret values by ``***``."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}, key=len, reverse=True)
        forms: list[bytes] = []
        for value in self.values:
            for ascii_only in (False, True):
                escaped = json.dumps(value, ensure_ascii=ascii_only)[1:-1].encode()
                if escaped not in forms:
                    forms.append(escaped)
        self._forms = forms

    def __bool__(self) -> bool:
        return bool(self.values)

    def bytes(self, data: bytes) -> bytes:
        for form in self._forms:
            data = data.replace(form, PLACEHOLDER.encode())
        return data

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, PLACEHOLDER)
        return text

    def notebook(self, nb: NotebookNode) -> None:
        """Clean every output of ``nb`` in place (streams, results, errors and their tracebacks)."""
        for cell in nb.cells:
            for output in cell.get("outputs", []) or []:
                _clean(output, self)


def _clean(node: Any, redactor: Redactor) -> Any:
    if isinstance(node, str):
        return redactor.text(node)
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _clean(item, redactor)
        return node
    if isinstance(node, dict):
        for key in list(node):
            node[key] = _clean(node[key], redactor)
        return node
    return node
