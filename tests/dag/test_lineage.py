"""OpenLineage events of notebook tasks, captured with the real OpenLineage client's file transport during
``dag.test()`` (in a process of its own, so that the transport is configured before Airflow loads its listener)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO

pytest.importorskip("airflow.providers.openlineage")

SCRIPT = """
import pendulum
from airflow.sdk import DAG
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag

with DAG(dag_id="t_lineage", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    NotebookOperator(task_id="ok", notebook={ok!r}, output_notebook={out_ok!r}, report_formats=["html"],
                     parameters={{"region": "eu", "token": "tok-very-secret-1"}}, secret_parameters=["token"])
    NotebookOperator(task_id="bad", notebook={bad!r}, output_notebook={out_bad!r})
res = run_dag(dag)
print("STATES", res["ok"].state, res["bad"].state)
"""


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_lineage_events_name_the_notebook_its_outputs_and_what_it_declared(airflow_db, make_notebook, tmp_path) -> None:
    ok = make_notebook(
        "#parameters\nregion = 'x'\ntoken = ''",
        "from airflow_notebook_provider import record_lineage\n"
        "record_lineage(inputs=['s3://raw/sales.csv'], outputs=[{'namespace': 'postgres://db:5432', "
        "'name': 'sales.public.daily'}])\nprint(region)",
        name="ok.ipynb",
    )
    bad = make_notebook("x = 1", "raise ValueError('bad row 17')", name="bad.ipynb")
    log = tmp_path / "ol.jsonl"
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
        {"type": "file", "log_file_path": str(log), "append": True}), "PYTHONPATH": str(REPO),
        # dag.test() runs the task in this process, where the Task SDK loads provider plugins (OpenLineage's
        # listener) only without lazy provider discovery; a worker's task runner loads them itself.
        "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False"}
    script = SCRIPT.format(ok=str(ok), bad=str(bad), out_ok=str(tmp_path / "ok-out.ipynb"),
                           out_bad=str(tmp_path / "bad-out.ipynb"))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "STATES success failed" in proc.stdout, proc.stderr[-3000:]
    evs = events(log)
    by = {(e["eventType"], e["job"]["name"]): e for e in evs}
    start = by[("START", "t_lineage.ok")]
    assert [d["name"] for d in start["inputs"]] == [str(ok)]
    done = by[("COMPLETE", "t_lineage.ok")]
    assert [(d["namespace"], d["name"]) for d in done["inputs"]] == [("file", str(ok)), ("s3://raw", "sales.csv")]
    assert [(d["namespace"], d["name"]) for d in done["outputs"]] == [
        ("file", str(tmp_path / "ok-out.ipynb")), ("file", str(tmp_path / "ok-out.html")),
        ("postgres://db:5432", "sales.public.daily")]
    facet = done["run"]["facets"]["airflow_notebook"]
    assert facet["parameters"] == {"region": "eu"}  # the secret one left out
    assert facet["kernel"] == "python3" and facet["language"] == "python" and facet["cells"] == 3
    assert len(facet["inputSha256"]) == 64 and facet["durationSeconds"] > 0
    fail = by[("FAIL", "t_lineage.bad")]
    assert fail["run"]["facets"]["airflow_notebook"]["failure"] == {
        "kind": "error", "cell": 2, "ename": "ValueError", "evalue": "bad row 17"}
    assert "ValueError: bad row 17" in fail["run"]["facets"]["errorMessage"]["message"]
    assert "tok-very-secret-1" not in log.read_text()
