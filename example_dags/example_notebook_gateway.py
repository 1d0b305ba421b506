"""A notebook whose kernel runs on a Jupyter gateway (Kernel Gateway or Enterprise Gateway), not on the worker.

The connection ``jupyter_gateway_default`` (type ``jupyter_gateway``) names the gateway: its base URL as host, its
token as password. On Enterprise Gateway with Kubernetes, each attempt's kernel is a pod of its own; the
connection's ``env`` extra (or the task's ``env``) chooses where and what, e.g.
``{"KERNEL_NAMESPACE": "notebooks", "KERNEL_IMAGE": "my-org/notebook-gpu:1.4"}``. For example::

    export AIRFLOW_CONN_JUPYTER_GATEWAY_DEFAULT='{"conn_type": "jupyter_gateway", "host": "http://127.0.0.1:8888",
        "password": "<EG_AUTH_TOKEN>", "extra": {"request_timeout": 300}}'

Everything else is the same as with a local kernel: one output notebook per attempt (written by the worker),
the "Output notebook" link, retries, and the kernel deleted on the gateway when the attempt ends.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"

with DAG(
    dag_id="example_notebook_gateway",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook", "gateway"],
) as dag:
    NotebookOperator(
        task_id="hello_on_gateway",
        notebook=str(NOTEBOOKS / "hello.ipynb"),
        parameters={"name": "gateway run of {{ ds }}", "times": 2},
        kernel_conn_id="jupyter_gateway_default",
        kernel_name="python3",  # a kernelspec the gateway offers (GET /api/kernelspecs)
        cell_timeout=600,
        retries=1,
    )
