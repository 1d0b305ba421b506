"""The nbclient corpus (../shared/corpus/nbclient, written by others): its notebooks (``CORPUS``), the outcomes
EXPECTED.json gives (``EXPECTED``, ``CASES``) and the check of a task against one (``check_outcome``); used by
tests/test_corpus.py, tests/gateway/test_gateway_corpus.py and tests/reliability/test_scheduler.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat

from tests.helpers import REPO, stream_text

SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "nbclient"
CORPUS_MISSING = not (CORPUS / "EXPECTED.json").exists()

EXPECTED = {} if CORPUS_MISSING else json.loads((CORPUS / "EXPECTED.json").read_text())
# The two Parallel notebooks must run at the same time under a parallel executor: see tests/reliability.
CASES = {k: v for k, v in EXPECTED.items() if k.endswith(".ipynb") and not k.startswith("Parallel Execute")}


def task_id_for(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.removesuffix(".ipynb"))


def check_outcome(task: Any, exp: dict[str, Any]) -> None:
    """The task's state and output notebook against the corpus's EXPECTED.json entry (also used by tests/gateway)."""
    assert task.state == ("success" if exp["outcome"] == "success" else "failed"), exp
    text = Path(task.xcom["output_notebook"]).read_text()
    # Opens in Jupyter: valid against its nbformat schema (inputs older than 4.5 are upgraded, so the cells the
    # engine adds, which carry an id, are valid).
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5, f"output is nbformat {nb.nbformat}.{nb.nbformat_minor}"
    out = json.loads(text)
    real_cells = [c for c in out["cells"] if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    code = [c for c in real_cells if c["cell_type"] == "code"]
    if exp["outcome"] == "failed":
        failed = [i for i, c in enumerate(code) if c["metadata"]["papermill"]["status"] == "failed"]
        assert failed == [exp["failed_cell"]]
        cell = code[exp["failed_cell"]]
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        described = " ".join(f"{o['ename']} {o['evalue']}" for o in errors).lower()
        assert exp["error"].lower() in described, described
        assert out["metadata"]["papermill"]["exception"] is True
        assert all(c["metadata"]["papermill"]["status"] == "pending" for c in code[exp["failed_cell"] + 1:])
    else:
        assert out["metadata"]["papermill"]["exception"] is None
    if "stdout_contains" in exp:
        assert exp["stdout_contains"] in "".join(stream_text(c) for c in code)
    if "output_mimetype" in exp:
        mimes = {m for c in code for o in c["outputs"] for m in o.get("data", {})}
        assert exp["output_mimetype"] in mimes
