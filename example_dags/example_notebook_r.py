"""An R notebook as a task: parameters written as R literals, values recorded in R read downstream from XCom.

Needs an R kernel where the task runs (Debian/Ubuntu: ``apt-get install r-cran-irkernel``, kernelspec ``ir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"

with DAG(
    dag_id="example_notebook_r",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook", "r"],
) as dag:
    report = NotebookOperator(
        task_id="r_report",
        notebook=str(NOTEBOOKS / "sales_report_r.ipynb"),  # its kernelspec is `ir`; kernel_name="ir" says so too
        parameters={"day": "{{ ds }}", "regions": ["eu", "us"], "min_amount": 2},
    )

    @task
    def total(ti: Any = None) -> float:
        """What the R notebook recorded, as any other XCom."""
        return float(ti.xcom_pull(task_ids="r_report", key="total"))

    report >> total()
