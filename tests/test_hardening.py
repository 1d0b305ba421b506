"""Hardening of what a task writes and what its kernel sees."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.engine.storage import write_atomic
from airflow_notebook_provider.operators.notebook import NotebookOperator
from airflow_notebook_provider.task.outputs import TaskInstanceId, default_output, record_location
from tests.helpers import code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def test_a_connection_uri_on_the_worker_does_not_reach_the_kernel(airflow_db, make_notebook, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgres://etl:hunter2-pw@db.internal:5432/dw")
    monkeypatch.setenv("AIRFLOW_VAR_API_KEY", "k-123456789")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow:meta-pw@meta/airflow")
    monkeypatch.setenv("SALES_REGION", "eu")  # an ordinary variable of the worker: inherited, as before
    nb = make_notebook("import os\nprint(sorted(k for k in os.environ if k.startswith(('AIRFLOW_CONN', 'AIRFLOW_VAR', "
                       "'AIRFLOW__'))))\nprint(os.environ.get('SALES_REGION'), os.environ.get('MODE'))")
    out = tmp_path / "out.ipynb"
    with DAG(dag_id="t_env_deny", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), env={"MODE": "prod"})
    assert run_dag(dag)["nb"].state == "success"
    assert stream_text(code_cells(read_nb(out))[0]) == "[]\neu prod\n"
    assert "hunter2-pw" not in out.read_text() and "meta-pw" not in out.read_text()


def test_inherit_env_false_keeps_only_the_essentials(airflow_db, make_notebook, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SALES_REGION", "eu")
    nb = make_notebook("import os\nprint(os.environ.get('SALES_REGION'), os.environ.get('MODE'), bool(os.environ.get('PATH')))")
    out = tmp_path / "out.ipynb"
    with DAG(dag_id="t_env_none", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), env={"MODE": "prod"},
                         inherit_env=False)
    assert run_dag(dag)["nb"].state == "success"
    assert stream_text(code_cells(read_nb(out))[0]) == "None prod True\n"


def test_run_ids_that_clean_to_the_same_name_get_their_own_folders(tmp_path: Path) -> None:
    ids = ["a~b", "a/b", "a_b", "a b"]
    outs = {default_output(TaskInstanceId("d", r, "t", -1), 1, str(tmp_path)) for r in ids}
    records = {record_location(TaskInstanceId("d", r, "t", -1), 1, str(tmp_path)) for r in ids}
    assert len(outs) == 4 and len(records) == 4
    assert default_output(TaskInstanceId("d", "manual__2024-01-01T00:00:00+00:00", "t", -1), 1, "/b") == \
        "/b/d/manual__2024-01-01T00:00:00+00:00/t/attempt-1.ipynb"  # ordinary run ids keep their readable name


def test_output_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.ipynb", b"{}")
        os.umask(0o077)
        write_atomic(tmp_path / "b.ipynb", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.ipynb").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.ipynb").stat().st_mode) == 0o600
    assert json.loads((tmp_path / "a.ipynb").read_text()) == {}
