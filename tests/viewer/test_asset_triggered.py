"""An asset-scheduled DAG finds the notebook that updated its asset, on a real scheduler: ``example_notebook_publish``
runs through the REST API, its asset event starts ``example_notebook_publish_consumer``, whose task reads the output
notebook's location from the event's ``extra``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.airflow_servers import Airflow

PRODUCER, CONSUMER = "example_notebook_publish", "example_notebook_publish_consumer"


def announced(af: Airflow) -> list[str]:
    """Output notebook locations the finished consumer runs announced (a run may gather several asset events)."""
    found: list[str] = []
    for run in af.api("GET", f"/api/v2/dags/{CONSUMER}/dagRuns")["dag_runs"]:
        if run["state"] != "success":
            continue
        xcom = af.api("GET", f"/api/v2/dags/{CONSUMER}/dagRuns/{quote(run['dag_run_id'], safe='')}"
                             "/taskInstances/announce/xcomEntries/return_value")
        value = xcom["value"]
        found += json.loads(value) if isinstance(value, str) else value
    return found


def test_the_asset_triggered_dag_reads_the_notebook_location_from_the_event(airflow_server: Airflow) -> None:
    af = airflow_server

    def settled() -> bool:
        """The producer's own scheduled run (it is @daily) and the consumer run it started are over, so this test's
        asset event arrives alone and starts a consumer run of its own."""
        runs = {d: af.api("GET", f"/api/v2/dags/{d}/dagRuns")["dag_runs"] for d in (PRODUCER, CONSUMER)}
        busy = [r for rs in runs.values() for r in rs if r["state"] in ("queued", "running")]
        return bool(runs[PRODUCER]) and bool(runs[CONSUMER]) and not busy

    af.wait_for("the scheduled producer run and its consumer run to end", settled, 240)
    body: dict[str, Any] = {"logical_date": "2024-06-01T00:00:00Z"}  # the producer's templates use {{ ds }}
    run_id = af.api("POST", f"/api/v2/dags/{PRODUCER}/dagRuns", body)["dag_run_id"]

    def mine() -> str | None:
        for location in announced(af):
            path = Path(location)
            if path.exists() and json.loads(path.read_text())["metadata"]["airflow"]["run_id"] == run_id:
                return location
        return None

    location = af.wait_for("a consumer run announcing this producer run's notebook", mine, 240)
    assert location.endswith("/regional_summary/attempt-1.ipynb")
    assert Path(location).with_suffix(".html").exists()  # the report the event also names
    state = af.api("GET", f"/api/v2/dags/{PRODUCER}/dagRuns/{quote(run_id, safe='')}")["state"]
    assert state == "success"
