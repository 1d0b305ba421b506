"""Every notebook of ../shared/corpus/nbclient (written by others) run through the operator, checked against
the outcome EXPECTED.json gives: state, failing cell, error, stdout and output types."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.conftest import CORPUS
from tests.helpers import kernel_processes, run_dag, stream_text

CORPUS_MISSING = not (CORPUS / "EXPECTED.json").exists()
# CI always checks the corpus out beside this repository: there, a missing corpus is a broken checkout, not a skip.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
if CORPUS_MISSING and IN_CI:
    pytest.fail(
        f"CI={os.environ['CI']} but the nbclient corpus is missing: {CORPUS / 'EXPECTED.json'} does not exist "
        f"(expected a checkout of the shared corpus at {CORPUS})",
        pytrace=False,
    )
pytestmark = pytest.mark.skipif(
    CORPUS_MISSING,
    reason=f"no nbclient corpus at {CORPUS} (no {CORPUS / 'EXPECTED.json'}); outside CI the corpus tests are skipped",
)

EXPECTED = {} if CORPUS_MISSING else json.loads((CORPUS / "EXPECTED.json").read_text())
# The two Parallel notebooks must run at the same time under a parallel executor: see tests/reliability.
CASES = {k: v for k, v in EXPECTED.items() if k.endswith(".ipynb") and not k.startswith("Parallel Execute")}


def task_id_for(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.removesuffix(".ipynb"))


@pytest.fixture(scope="module")
def corpus_run(airflow_db):
    with DAG(dag_id="corpus_nbclient", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        for name, exp in CASES.items():
            settings = exp.get("settings", {})
            NotebookOperator(
                task_id=task_id_for(name),
                notebook=str(CORPUS / name),
                cell_timeout=settings.get("cell_timeout_seconds", 60),
            )
    return run_dag(dag)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_notebook(corpus_run, name: str) -> None:
    check_outcome(corpus_run[task_id_for(name)], CASES[name])


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


def test_no_kernel_outlives_the_corpus(corpus_run) -> None:
    assert not kernel_processes()
