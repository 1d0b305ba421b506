"""A misspelled parameter no longer runs the notebook on its default unnoticed: ``unknown_parameters``; and
``airflow-notebook params`` lists what a notebook declares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
EXE = AIRFLOW_NOTEBOOK


def test_warn_fail_ignore(airflow_db, make_notebook, capfd) -> None:
    nb = make_notebook("#parameters\nregion = 'eu'  # sales region\nlimit = 10", "print(region, limit)")
    typo = {"regoin": "us"}
    with DAG(dag_id="t_unknown_params", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="warn", notebook=str(nb), parameters=typo)
        NotebookOperator(task_id="fail", notebook=str(nb), parameters=typo, unknown_parameters="fail", retries=2)
        NotebookOperator(task_id="ignore", notebook=str(nb), parameters=typo, unknown_parameters="ignore")
        NotebookOperator(task_id="known", notebook=str(nb), parameters={"region": "us"}, unknown_parameters="fail")
    res = run_dag(dag)
    log = "".join(capfd.readouterr())
    expected = "does not declare 'regoin' in its parameters cell (it declares: region, limit); did you mean `region`"
    # warn: the task runs (on the default, as the notebook says) and the log names the typo and the fix.
    assert res["warn"].state == "success" and expected in log and "Injected anyway" in log
    assert stream_text(code_cells(read_nb(res["warn"].xcom["output_notebook"]))[2]) == "eu 10\n"
    # fail: before any cell runs, without retries, nothing written.
    assert (res["fail"].state, res["fail"].try_number) == ("failed", 1) and "output_notebook" not in res["fail"].xcom
    assert "NotebookTaskConfigError" in log and "set unknown_parameters='warn'" in log
    assert res["ignore"].state == "success" and res["known"].state == "success"
    assert log.count(expected) == 2  # warn and fail name it; ignore does not


def test_params_command(make_notebook) -> None:
    nb = make_notebook("#parameters\nregion = 'eu'  # sales region\nlimit: int = 10", "print(region)")
    text = subprocess.run([EXE, "params", str(nb)], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "region  str   'eu'     sales region" in text.stdout and "limit   int   10" in text.stdout
    js = json.loads(subprocess.run([EXE, "params", str(nb), "--json"], capture_output=True, text=True,
                                   timeout=60).stdout)
    assert [(p["name"], p["value"], p["type"], p["help"]) for p in js["parameters"]] == [
        ("region", "eu", "str", "sales region"), ("limit", 10, "int", "")]


def test_trigger_form_from_the_notebook(airflow_db, output_base: Path) -> None:
    """The example DAG as shipped: a conf of the right types reaches the notebook with its types; a wrong type is
    refused by Airflow before a task runs."""
    from airflow.exceptions import ParamValidationError

    from tests.helpers import load_example

    dag = load_example("example_notebook_trigger_form").dag
    assert {name: p.schema.get("type") for name, p in dag.params.items()} == {
        "day": "string", "limit": "integer", "regions": "array"}
    res = run_dag(dag, run_conf={"day": "2024-02-03", "limit": 2, "regions": ["us", "asia"]})
    assert res["report"].state == "success"
    out = read_nb(res["report"].xcom["output_notebook"])
    assert out["metadata"]["papermill"]["parameters"] == {"day": "2024-02-03", "limit": 2, "regions": ["us", "asia"]}
    with pytest.raises(ParamValidationError, match="limit"):
        run_dag(dag, run_conf={"limit": "many"})
