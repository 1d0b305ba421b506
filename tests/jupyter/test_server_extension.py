"""The JupyterLab server extension against a real Airflow (api-server, scheduler, dag-processor) and a real Jupyter
server from ``.venv-jupyter``, through its REST routes as JupyterLab in a browser calls them: a notebook that fails
for one parameter value is listed, debugged, run again with a good value, compared and scheduled; a wrong password
and a user without access to the DAG are shown as such."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import nbformat
import pytest

from tests.airflow_servers import Airflow, start_airflow, trigger_and_wait
from tests.helpers import free_port, python_notebook
from tests.jupyter.jupyter_servers import JUPYTER, REPO, api_get, api_post, jupyter_server

pytestmark = pytest.mark.skipif(
    not JUPYTER.exists(),
    reason=f"{JUPYTER} is missing: `make jupyter` builds JupyterLab's virtualenv (.venv-jupyter) these tests start",
)

DAG_ID = "jl_notebook"
OUTSIDER = "only-some_other_dag"


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("jupyter-ext")
    places = {name: base / name for name in ("root", "dags", "airflow", "jupyter")}
    for path in places.values():
        path.mkdir()
    (places["root"] / "reports").mkdir()
    nb = python_notebook(
        "#parameters\nfail = False  # fail on purpose\nlabel = 'daily'",
        *[f"step_{i} = {i}" for i in range(5)],
        "from IPython.display import HTML, display\ndisplay(HTML('<b>rich output</b>'))",
        "if fail:\n    raise ValueError(f'asked to fail ({label})')",
        "print(f'{label} done')",
    )
    nbformat.write(nb, str(places["root"] / "reports" / "daily.ipynb"))
    (places["dags"] / "jl_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_notebook_provider import notebook_params\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        f"NB = {str(places['root'] / 'reports' / 'daily.ipynb')!r}\n"
        "PARAMS = notebook_params(NB)\n"
        f"with DAG(dag_id={DAG_ID!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC'),\n"
        "         params=PARAMS, render_template_as_native_obj=True):\n"
        "    NotebookOperator(task_id='daily', notebook=NB,\n"
        "                     parameters={n: '{{ params.' + n + ' }}' for n in PARAMS})\n"
    )
    return places


@pytest.fixture(scope="module")
def airflow(places: dict[str, Path]) -> Iterator[Airflow]:
    af = start_airflow(places["airflow"], places["dags"], users={OUTSIDER: "viewer"}, extra_env={
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.jupyter.auth.OneDagAuthManager", "PYTHONPATH": str(REPO)})
    try:
        af.wait_for(f"the dag-processor parses {DAG_ID}", lambda: af.api("GET", f"/api/v2/dags/{DAG_ID}"), 180)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def failed_run(airflow: Airflow) -> str:
    run_id, state = trigger_and_wait(airflow, DAG_ID, conf={"fail": True, "label": "broken"})
    assert state == "failed", airflow.tails()
    return run_id


def _settings(af: Airflow, places: dict[str, Path], user: str = "analyst", password: str | None = None
              ) -> dict[str, str]:
    return {"AIRFLOW_NOTEBOOK_API_URL": af.base, "AIRFLOW_NOTEBOOK_API_USERNAME": user,
            "AIRFLOW_NOTEBOOK_API_PASSWORD": af.passwords[user] if password is None else password,
            "AIRFLOW_NOTEBOOK_DAG_FOLDER": str(places["dags"])}


@pytest.fixture(scope="module")
def lab(airflow: Airflow, places: dict[str, Path]) -> Iterator[httpx.Client]:
    with jupyter_server(places["root"], places["jupyter"], _settings(airflow, places)) as server:
        with server.browser() as client:
            yield client


def _runs(lab: httpx.Client) -> dict[str, Any]:
    resp = api_get(lab, "runs", path="reports/daily.ipynb")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_status_says_connected(lab: httpx.Client, airflow: Airflow) -> None:
    status = api_get(lab, "status").json()
    assert status["connected"] is True, status
    assert status["url"] == airflow.base and status["user"] == "analyst"
    assert status["airflow_version"].startswith("3.")
    assert airflow.password not in json.dumps(status)


def test_routes_follow_jupyters_auth_and_xsrf(lab: httpx.Client) -> None:
    anonymous = httpx.get(str(lab.base_url) + "/airflow-notebook/api/status")
    assert anonymous.status_code == 403
    refused = api_post(lab, "trigger", {"path": "reports/daily.ipynb", "dag_id": DAG_ID}, xsrf=False)
    assert refused.status_code == 403 and "_xsrf" in refused.text


def test_runs_list_the_failed_attempt(lab: httpx.Client, failed_run: str, airflow: Airflow) -> None:
    runs = _runs(lab)
    assert runs["tasks"] == [{"dag_id": DAG_ID, "task_id": "daily", "schedule": runs["tasks"][0]["schedule"]}]
    newest = runs["attempts"][0]
    assert (newest["dag_id"], newest["run_id"], newest["task_id"], newest["try_number"]) == (
        DAG_ID, failed_run, "daily", 1)
    assert newest["state"] == "failed" and newest["start_date"] and newest["end_date"]
    assert newest["parameters"] == {"fail": True, "label": "broken"}
    assert newest["viewer_url"].startswith(f"{airflow.base}/notebook/dags/{DAG_ID}/view?")
    output = lab.get("/" + newest["output"])
    assert output.status_code == 200, output.text
    nb = output.json()["content"]
    assert nb["metadata"]["papermill"]["parameters"] == {"fail": True, "label": "broken"}


def test_params_are_read_from_the_notebook(lab: httpx.Client) -> None:
    params = api_get(lab, "params", path="reports/daily.ipynb").json()
    assert [(p["name"], p["value"], p["type"], p["help"]) for p in params["parameters"]] == [
        ("fail", False, "bool", "fail on purpose"), ("label", "daily", "str", "")]
    assert api_get(lab, "params", path="../etc/passwd").status_code == 400


def test_debug_writes_the_copy_beside_the_notebook(lab: httpx.Client, failed_run: str, places: dict[str, Path]
                                                   ) -> None:
    attempt = {"dag_id": DAG_ID, "run_id": failed_run, "task_id": "daily", "map_index": -1, "try_number": 1}
    resp = api_post(lab, "debug", {**attempt, "path": "reports/daily.ipynb"})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["path"] == f"reports/{DAG_ID}__daily__attempt-1.debug.ipynb"
    copy = nbformat.read(str(places["root"] / answer["path"]), as_version=4)
    injected = [c for c in copy.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "fail = True" in injected[0].source and "label = 'broken'" in injected[0].source
    assert not [c for c in copy.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    assert copy.metadata.kernelspec.name == "python3"
    failed = answer["failed_cell"]
    assert failed["ename"] == "ValueError" and "asked to fail (broken)" in failed["evalue"]
    assert copy.cells[failed["index"]].source.startswith("if fail:")
    # The copy is data a task wrote: saving it signs nothing, so Jupyter does not trust its rich output.
    opened = lab.get(f"/api/contents/{answer['path']}").json()["content"]
    rich = [c for c in opened["cells"] if "rich output" in json.dumps(c.get("outputs", []))]
    assert len(rich) == 1 and rich[0]["metadata"]["trusted"] is False


def test_run_now_with_a_good_value_succeeds_and_compares(lab: httpx.Client, failed_run: str, airflow: Airflow
                                                          ) -> None:
    unknown = api_post(lab, "trigger", {"path": "reports/daily.ipynb", "dag_id": DAG_ID, "parameters": {"nope": 1}})
    assert unknown.status_code == 400 and "nope" in unknown.json()["message"]
    resp = api_post(lab, "trigger", {"path": "reports/daily.ipynb", "dag_id": DAG_ID,
                                     "parameters": {"fail": False, "label": "fixed"}})
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]

    def ended() -> str | None:
        state = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")["state"]
        return state if state in ("success", "failed") else None

    assert airflow.wait_for(f"run {run_id} ends", ended, 180) == "success", airflow.tails()
    newest = _runs(lab)["attempts"][0]
    assert (newest["run_id"], newest["state"], newest["parameters"]) == (run_id, "success",
                                                                         {"fail": False, "label": "fixed"})
    compared = api_get(lab, "compare", dag_id=DAG_ID, run_id=failed_run, task_id="daily", map_index=-1,
                       try_number=1, against="last_success")
    assert compared.status_code == 200, compared.text
    body = compared.json()
    assert body["a"]["run_id"] == run_id and "/compare?" in body["viewer_url"]
    changed = {p["name"]: (p["a"], p["b"]) for p in body["comparison"]["parameters"]}
    assert changed == {"fail": (False, True), "label": ("fixed", "broken")}


def test_schedule_writes_a_dag_that_airflow_runs(lab: httpx.Client, airflow: Airflow, places: dict[str, Path]
                                                 ) -> None:
    hostile = "x'); import os; os.system('touch pwned') #\"\"\"\n{{ 7 * 7 }}"
    form = {"path": "reports/daily.ipynb", "dag_id": "jl_scheduled", "schedule": "0 6 * * 1-5",
            "parameters": {"fail": False, "label": hostile}, "folder": "from_lab"}
    bad = api_post(lab, "schedule", {**form, "schedule": "61 * * * *"})
    assert bad.status_code == 400 and "61" in bad.json()["parse_error"], bad.text
    assert not (places["dags"] / "from_lab").exists() or not list((places["dags"] / "from_lab").iterdir())
    for field, value in (("dag_id", "x'); import os #"), ("folder", "../outside"), ("schedule", "'); import os")):
        refused = api_post(lab, "schedule", {**form, field: value})
        assert refused.status_code == 400, (field, refused.text)

    resp = api_post(lab, "schedule", form)
    assert resp.status_code == 200, resp.text
    dag_file = Path(resp.json()["dag_file"])
    assert dag_file == places["dags"] / "from_lab" / "jl_scheduled.py" and dag_file.is_file()
    assert api_post(lab, "schedule", form).status_code == 409  # no overwrite unless asked
    assert not list(places["dags"].rglob("pwned")) and not list(places["root"].rglob("pwned"))

    airflow.wait_for("the dag-processor parses jl_scheduled",
                     lambda: airflow.api("GET", "/api/v2/dags/jl_scheduled")["timetable_summary"], 180)
    run_id, state = trigger_and_wait(airflow, "jl_scheduled")
    assert state == "success", airflow.tails()
    ti = airflow.api("GET", f"/api/v2/dags/jl_scheduled/dagRuns/{quote(run_id, safe='')}/taskInstances/daily")
    assert ti["rendered_fields"]["parameters"] == {"fail": False, "label": hostile}
    assert not list(places["dags"].rglob("pwned")) and not list(places["airflow"].rglob("pwned"))


@pytest.mark.parametrize("wrong", ["password", "url"])
def test_a_wrong_password_or_url_says_the_fix(wrong: str, airflow: Airflow, places: dict[str, Path],
                                              tmp_path: Path) -> None:
    settings = _settings(airflow, places, password="wrong" if wrong == "password" else None)
    if wrong == "url":
        settings["AIRFLOW_NOTEBOOK_API_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with jupyter_server(places["root"], tmp_path, settings) as server:
        with server.browser() as client:
            status = api_get(client, "status").json()
            runs = api_get(client, "runs", path="reports/daily.ipynb")
    assert status["connected"] is False
    if wrong == "password":
        assert "refused the login of user 'analyst'" in status["error"]
        assert "AIRFLOW_NOTEBOOK_API_PASSWORD" in status["fix"]
    else:
        assert status["error"].startswith(f"Cannot reach the Airflow api-server at {settings['AIRFLOW_NOTEBOOK_API_URL']}")
        assert "AIRFLOW_NOTEBOOK_API_URL" in status["fix"]
    assert runs.status_code == 502 and runs.json()["fix"] == status["fix"]


def test_a_user_without_access_to_the_dag_sees_no_attempt(airflow: Airflow, places: dict[str, Path],
                                                          failed_run: str, tmp_path: Path) -> None:
    with jupyter_server(places["root"], tmp_path, _settings(airflow, places, user=OUTSIDER)) as server:
        with server.browser() as client:
            assert api_get(client, "status").json()["connected"] is True
            runs = api_get(client, "runs", path="reports/daily.ipynb").json()
            output = api_get(client, "output", dag_id=DAG_ID, run_id=failed_run, task_id="daily", try_number=1)
    assert runs == {"tasks": [], "attempts": []}
    assert output.status_code == 403

