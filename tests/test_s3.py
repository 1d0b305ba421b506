"""Input and output notebooks in S3 over HTTP (moto's server on 127.0.0.1) through an Airflow ``aws`` connection."""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import kernel_processes, run_dag, s3_client, upload_notebook


def get_nb(client, bucket: str, key: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_s3_input_and_templated_s3_output(airflow_db, moto) -> None:
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="analytics")
    upload_notebook(s3, "analytics", "templates/report.ipynb", "#parameters\nday = ''", "import os\nprint(day, os.getcwd() != '/')")
    with DAG(dag_id="t_s3", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(
            task_id="report",
            notebook="s3://analytics/templates/report.ipynb",
            output_notebook="s3://analytics/runs/{{ dag.dag_id }}/{{ ds }}/report-{{ ti.try_number }}.ipynb",
            parameters={"day": "{{ ds }}"},
            conn_id="moto_s3",
        )
    res = run_dag(dag)
    task = res["report"]
    assert task.state == "success"
    location = task.xcom["return_value"]
    assert location == task.xcom["output_notebook"]
    assert location.startswith("s3://analytics/runs/t_s3/") and location.endswith("/report-1.ipynb")
    assert "moto_s3" not in location
    out = get_nb(s3, "analytics", location.removeprefix("s3://analytics/"))
    day = out["metadata"]["papermill"]["parameters"]["day"]
    assert "".join(out["cells"][2]["outputs"][0]["text"]) == f"{day} True\n"
    assert out["metadata"]["papermill"]["input_path"] == "s3://analytics/templates/report.ipynb"
    assert not kernel_processes()


def test_s3_failure_writes_the_failed_notebook_to_s3(airflow_db, moto) -> None:
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="failing")
    upload_notebook(s3, "failing", "nb.ipynb", "print('a')", "1/0")
    with DAG(dag_id="t_s3_fail", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook="s3://failing/nb.ipynb", output_notebook="s3://failing/out/{{ ti.try_number }}.ipynb",
                         conn_id="moto_s3")
    res = run_dag(dag)
    assert res["nb"].state == "failed"
    assert res["nb"].xcom["_link_NotebookOutputLink"]
    out = get_nb(s3, "failing", "out/1.ipynb")
    assert out["metadata"]["papermill"]["exception"] is True
    assert any(o.get("ename") == "ZeroDivisionError" for c in out["cells"] for o in c.get("outputs", []))


def test_missing_s3_notebook_and_missing_connection(airflow_db, moto, capfd) -> None:
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="empty")
    with DAG(dag_id="t_s3_missing", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="missing", notebook="s3://empty/nope.ipynb", conn_id="moto_s3")
        NotebookOperator(task_id="noconn", notebook="s3://empty/nope.ipynb", conn_id="no_such_conn")
    res = run_dag(dag)
    assert res["missing"].state == "failed" and res["noconn"].state == "failed"
    text = "".join(capfd.readouterr())
    assert "s3://empty/nope.ipynb does not exist" in text
    assert "Connection 'no_such_conn' (conn_id) does not exist" in text
