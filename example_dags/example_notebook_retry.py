"""A notebook that fails on its first attempt and succeeds when Airflow retries it.

Both attempts keep their own output notebook (attempt-1.ipynb with the error banner, attempt-2.ipynb clean);
the "Output notebook" link of each attempt opens its own.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"

with DAG(
    dag_id="example_notebook_retry",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook"],
) as dag:
    NotebookOperator(
        task_id="flaky",
        notebook=str(NOTEBOOKS / "flaky.ipynb"),
        parameters={"attempt": "{{ ti.try_number }}", "fail_before_attempt": 2},
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
