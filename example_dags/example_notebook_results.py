"""Results flow downstream, fan out, TaskFlow, and data-aware scheduling.

- ``summarize`` runs ``notebooks/summary.ipynb``, which calls ``record("rows", ...)``; the operator pushes every
  recorded value to XCom under its name (and all of them under ``results``), so ``check`` reads them with
  ``ti.xcom_pull``. It also declares an Asset in ``outlets``: when it succeeds, Airflow marks the asset updated.
- ``by_region`` fans the same notebook out over regions with dynamic task mapping: one output notebook, XCom and
  "Output notebook" link per mapped instance (``.../by_region/map-<i>/attempt-<n>.ipynb``).
- ``weekly`` is a ``@task.notebook``: the function returns the notebook's parameters.
- ``example_notebook_on_new_sales`` is scheduled on the asset: it runs after each successful ``summarize``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"
SALES_SUMMARY = Asset("notebook://example/sales-summary")
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG(
    dag_id="example_notebook_results",
    schedule="@daily",
    start_date=START,
    catchup=False,
    tags=["example", "notebook"],
) as dag:
    summarize = NotebookOperator(
        task_id="summarize",
        notebook=str(NOTEBOOKS / "summary.ipynb"),
        parameters={"day": "{{ ds }}"},
        outlets=[SALES_SUMMARY],
    )

    @task
    def check(ti: Any = None) -> float:
        """Read what the notebook recorded: one value by name, or all of them as ``results``."""
        rows = ti.xcom_pull(task_ids="summarize", key="rows")
        results = ti.xcom_pull(task_ids="summarize", key="results")
        if not rows:
            raise ValueError("The summary notebook found no sales rows")
        return results["total"]

    summarize >> check()

    by_region = NotebookOperator.partial(task_id="by_region", notebook=str(NOTEBOOKS / "summary.ipynb")).expand(
        parameters=[{"region": "eu"}, {"region": "us"}, {"region": "asia"}]
    )

    @task.notebook(notebook=str(NOTEBOOKS / "summary.ipynb"))
    def weekly(ds: str | None = None) -> dict[str, Any]:
        """The returned dict is the notebook's parameters."""
        return {"day": ds, "region": "all"}

    weekly()


with DAG(
    dag_id="example_notebook_on_new_sales",
    schedule=[SALES_SUMMARY],
    start_date=START,
    catchup=False,
    tags=["example", "notebook"],
) as on_new_sales:

    @task
    def announce(triggering_asset_events: Any = None) -> None:
        for asset, events in (triggering_asset_events or {}).items():
            print(f"{asset.uri} updated by {len(events)} run(s)")

    announce()
