"""Every notebook of ../shared/corpus/nbclient (written by others) run through the operator, checked against
the outcome EXPECTED.json gives: state, failing cell, error, stdout and output types."""

from __future__ import annotations

import json
import re

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.conftest import CORPUS
from tests.helpers import kernel_processes, read_nb, run_dag, stream_text

pytestmark = pytest.mark.skipif(not (CORPUS / "EXPECTED.json").exists(), reason=f"no corpus at {CORPUS}")

EXPECTED = json.loads((CORPUS / "EXPECTED.json").read_text()) if (CORPUS / "EXPECTED.json").exists() else {}
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
    exp = CASES[name]
    task = corpus_run[task_id_for(name)]
    assert task.state == ("success" if exp["outcome"] == "success" else "failed"), exp
    out = read_nb(task.xcom["output_notebook"])
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
