"""The "Output notebook" link leads to a rendered notebook served by the provider's plugin inside the real
api-server app (Airflow's auth manager and metadata DB), for local and S3 outputs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag, s3_client
from tests.test_s3 import upload_notebook


@pytest.fixture(scope="module")
def api(airflow_db):
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    client = TestClient(app)
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return client, token


def link_path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_link_renders_a_local_failed_notebook(api, make_notebook) -> None:
    client, token = api
    nb = make_notebook("print('visible output 123')", "raise RuntimeError('shown in viewer')")
    with DAG(dag_id="t_view_local", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb))
    res = run_dag(dag)
    link = res["nb"].xcom["_link_NotebookOutputLink"]
    assert client.get(link_path(link)).status_code == 401
    page = client.get(link_path(link), headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    assert "visible output 123" in page.text and "shown in viewer" in page.text
    assert "sandbox" in page.headers["content-security-policy"]


def test_link_renders_an_s3_notebook(api, moto) -> None:
    client, token = api
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="viewer")
    upload_notebook(s3, "viewer", "in.ipynb", "print('from s3 ' + 'rendered')")
    with DAG(dag_id="t_view_s3", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook="s3://viewer/in.ipynb", output_notebook="s3://viewer/out.ipynb", conn_id="moto_s3")
    res = run_dag(dag)
    page = client.get(link_path(res["nb"].xcom["_link_NotebookOutputLink"]), headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "from s3 rendered" in page.text


def test_unknown_task_is_a_404_page(api) -> None:
    client, token = api
    page = client.get("/notebook/view?dag_id=nope&run_id=r&task_id=t", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 404 and "No output notebook" in page.text
