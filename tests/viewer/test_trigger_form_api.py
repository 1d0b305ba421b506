"""The trigger form generated from a notebook, as Airflow's public REST API enforces it on a real api-server:
``example_notebook_trigger_form`` triggered with a conf that fits the generated Param schema runs the notebook
with those values (types kept); a conf that does not is refused before any run exists."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.airflow_servers import Airflow, trigger_and_wait

DAG_ID = "example_notebook_trigger_form"


def post_raw(af: Airflow, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(f"{af.base}{path}", method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {af.token()}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_a_conf_that_fits_the_form_runs_the_notebook_with_its_values(airflow_server: Airflow) -> None:
    af = airflow_server
    conf = {"day": "2024-05-17", "limit": 3, "regions": ["eu", "us"]}
    run_id, state = trigger_and_wait(af, DAG_ID, conf)
    assert state == "success", af.tails()
    (output,) = (af.home / "notebook_outputs" / DAG_ID).glob("*/report/attempt-1.ipynb")
    nb = json.loads(output.read_text())
    assert nb["metadata"]["airflow"]["run_id"] == run_id
    assert nb["metadata"]["papermill"]["parameters"] == conf  # 3 stayed an int, the list a list
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "2024-05-17: 3 rows for eu, us" in printed


def test_a_conf_that_breaks_the_schema_is_refused_naming_the_parameter(airflow_server: Airflow) -> None:
    af = airflow_server
    runs_before = af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"]
    status, body = post_raw(af, f"/api/v2/dags/{DAG_ID}/dagRuns",
                            {"logical_date": None, "conf": {"limit": "many", "regions": ["eu"]}})
    assert status == 400, body
    detail = json.dumps(body)
    assert "limit" in detail and "many" in detail and "integer" in detail, detail
    assert af.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == runs_before  # no run was created
