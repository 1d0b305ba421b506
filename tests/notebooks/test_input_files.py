"""The notebook's folder travels with it: ``input_files`` copied into the kernel's working folder before the first
cell, from a local folder and from S3 (moto's server), capped, recorded; ``..`` refused at parse time; and a cell
tagged ``skip-execution`` not run and labelled in the viewer (the real api-server app)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.engine import NotebookConfigError
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, python_notebook, read_nb, run_dag, s3_client, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PATTERNS = ["helpers/*.py", "sql/*.sql", "conf.yaml"]
FILES = {"helpers/__init__.py": "def greet(name):\n    return f'hello {name}'\n",
         "sql/q.sql": "select 42 as answer\n", "conf.yaml": "region: eu\n", "notes/private.txt": "not copied\n"}
SKIPPED = "raise RuntimeError('a skip-execution cell ran')"


def notebook() -> Any:
    nb = python_notebook("#parameters\nwho = 'nobody'", "import helpers\nprint(helpers.greet(who))",
                         "print(open('sql/q.sql').read().strip())", SKIPPED,
                         "import os\nprint(open('conf.yaml').read().strip(), os.path.exists('notes'))")
    nb.cells[3].metadata["tags"] = ["skip-execution"]
    return nb


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    nbformat.write(notebook(), str(root / "report.ipynb"))
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def runs(airflow_db: Path, moto: Any, project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One DAG run: the notebook from a local folder (copied into another working folder, and in its own folder),
    and from S3."""
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="inputs")
    s3.put_object(Bucket="inputs", Key="proj/report.ipynb", Body=nbformat.writes(notebook()).encode())
    for rel, text in FILES.items():
        s3.put_object(Bucket="inputs", Key=f"proj/{rel}", Body=text.encode())
    cwd = tmp_path_factory.mktemp("kernel-cwd")
    local = str(project / "report.ipynb")
    with DAG(dag_id="t_input_files", schedule=None, start_date=START) as dag:
        common: dict[str, Any] = {"parameters": {"who": "Ada"}, "input_files": PATTERNS}
        NotebookOperator(task_id="local", notebook=local, cwd=str(cwd), **common)
        NotebookOperator(task_id="in_place", notebook=local, **common)
        NotebookOperator(task_id="s3", notebook="s3://inputs/proj/report.ipynb", conn_id="moto_s3", **common)
    res = run_dag(dag, logical_date=START)
    return {"res": res, "cwd": cwd}


def expected_record() -> list[dict[str, Any]]:
    return [{"path": rel, "bytes": len(FILES[rel].encode()), "sha256": hashlib.sha256(FILES[rel].encode()).hexdigest()}
            for rel in sorted(FILES) if rel != "notes/private.txt"]


def ran_with_files(out: dict[str, Any], *, in_place: bool = False) -> None:
    cells = code_cells(out)
    assert stream_text(cells[2]) == "hello Ada\n"  # after the injected cell: import helpers
    assert stream_text(cells[3]) == "select 42 as answer\n"  # open("sql/q.sql")
    assert "".join(cells[4]["source"]) == SKIPPED and cells[4]["outputs"] == [] and cells[4]["execution_count"] is None
    assert stream_text(cells[5]) == f"region: eu {in_place}\n"  # copied: only what the patterns name
    assert out["metadata"]["airflow"]["input_files"] == expected_record()


def test_local_input_files_are_copied_into_the_working_folder(runs: dict[str, Any]) -> None:
    task = runs["res"]["local"]
    assert task.state == "success"
    ran_with_files(read_nb(task.xcom["return_value"]))
    assert sorted(p.relative_to(runs["cwd"]).as_posix() for p in runs["cwd"].rglob("*") if p.is_file()) == [
        "conf.yaml", "helpers/__init__.py", "sql/q.sql"]
    # In the notebook's own folder (the default working folder) the files are already there: recorded, not copied.
    in_place = runs["res"]["in_place"]
    assert in_place.state == "success"
    ran_with_files(read_nb(in_place.xcom["return_value"]), in_place=True)


def test_s3_input_files_travel_with_the_notebook(runs: dict[str, Any]) -> None:
    task = runs["res"]["s3"]
    assert task.state == "success"
    ran_with_files(read_nb(task.xcom["return_value"]))


def test_refused_before_any_cell_runs(airflow_db: Path, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GW_NOWHERE", json.dumps({"conn_type": "jupyter_gateway", "host": "http://127.0.0.1:9"}))
    local = str(project / "report.ipynb")
    with DAG(dag_id="t_input_files_refused", schedule=None, start_date=START,
             params={"pattern": "../escape/*.py"}) as dag:
        NotebookOperator(task_id="too_big", notebook=local, cwd=str(tmp_path), parameters={"who": "Ada"},
                         input_files=PATTERNS, input_files_max_bytes=40)
        NotebookOperator(task_id="templated", notebook=local, input_files=["{{ params.pattern }}"])
        NotebookOperator(task_id="gateway", notebook=local, kernel_conn_id="gw_nowhere", kernel_name="python3",
                         input_files=PATTERNS)
    with caplog.at_level(logging.INFO):
        res = run_dag(dag, logical_date=START)
    # The task log as the process printed it and as logging recorded it (earlier tests decide which holds it).
    text = "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records)
    assert res["too_big"].state == "failed"
    total = sum(f["bytes"] for f in expected_record())
    assert f"`input_files` matches 3 file(s), {total} bytes in all, over input_files_max_bytes=40" in text
    assert "nothing was copied and no cell ran" in text
    assert "output_notebook" not in res["too_big"].xcom and not list(tmp_path.iterdir())  # no notebook, no copy
    assert res["templated"].state == "failed"
    assert "`input_files` pattern '../escape/*.py' reaches outside the notebook's folder" in text
    assert res["gateway"].state == "failed"
    assert "`input_files` needs a kernel on the worker" in text


@pytest.mark.parametrize("pattern", ["../shared/*.py", "/etc/passwd", "~/x", "s3://other/x.py", "a/../../b"])
def test_patterns_outside_the_folder_are_refused_at_parse_time(pattern: str) -> None:
    with pytest.raises(NotebookConfigError, match=re.escape(f"`input_files` pattern {pattern!r} reaches outside")):
        NotebookOperator(task_id="t", notebook="/x/report.ipynb", input_files=["sql/*.sql", pattern])


def test_skipped_cell_is_labelled_in_the_viewer(runs: dict[str, Any], api: Any) -> None:
    run_id = runs["res"]["__run__"].xcom["run_id"]
    query = urlencode({"run_id": run_id, "task_id": "local"})
    page = api.get(f"/notebook/dags/{quote('t_input_files', safe='')}/view?{query}")
    assert page.status_code == 200, page.text[:300]
    frame = api.frame(page)
    assert frame.status_code == 200
    assert "celltag_skip-execution" in frame.text  # the cell's class in the rendered notebook
    assert 'content:"Not run (skip-execution)"' in frame.text  # and the label the frame's style puts on it
