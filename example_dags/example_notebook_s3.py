"""Input and output notebooks in S3, through an Airflow connection.

Create the connection first, e.g. for a local S3-compatible endpoint::

    airflow connections add notebook_s3 --conn-type aws \
        --conn-extra '{"endpoint_url": "http://127.0.0.1:9000", "region_name": "us-east-1"}'

and upload ``notebooks/hello.ipynb`` to ``s3://analytics/templates/hello.ipynb``. The output lies outside
``[notebook] output_base``, so for the viewer to show it, list the bucket where the api-server reads its settings:
``[notebook] viewer_allowed_locations = s3://analytics/runs`` (the viewer reads it with ``conn_id``, as the task does).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

with DAG(
    dag_id="example_notebook_s3",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook", "s3"],
) as dag:
    NotebookOperator(
        task_id="s3_hello",
        notebook="s3://analytics/templates/hello.ipynb",
        output_notebook="s3://analytics/runs/{{ dag.dag_id }}/{{ ds }}/hello-{{ ti.try_number }}.ipynb",
        parameters={"name": "{{ dag_run.conf.get('name', 'S3') }}", "times": 2},
        conn_id="notebook_s3",
    )
