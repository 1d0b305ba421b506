"""A templated daily report: parameters rendered from the DAG context, one output notebook per attempt.

Run it end to end on the embedded default (SQLite, local output folder): ``make demo``.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"

with DAG(
    dag_id="example_notebook_daily_report",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook"],
) as dag:
    NotebookOperator(
        task_id="daily_report",
        notebook=str(NOTEBOOKS / "report.ipynb"),
        # No output_notebook: the default is {output_base}/{dag_id}/{run_id}/{task_id}/attempt-{try_number}.ipynb
        parameters={"day": "{{ ds }}", "limit": 100, "regions": ["eu", "us"]},
        env={"MODE": "prod"},
        cell_timeout=300,
    )
