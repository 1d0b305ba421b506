"""What a run publishes: an HTML report without code, the files the notebook wrote, lineage, and an asset event.

- ``report_formats=["html"]`` with ``report_mode=True``: ``attempt-<n>.html`` beside each output notebook (failed
  attempts too), outputs and markdown only; its location in XCom under ``reports``.
- ``collect_files``: the notebook's ``out/summary-<region>.csv`` is copied to ``attempt-<n>.files/out/...``; the
  locations in XCom under ``files`` and in the notebook's ``metadata.airflow.files``.
- Lineage: with ``apache-airflow-providers-openlineage`` configured, the task's OpenLineage events name the input
  notebook, the sales data and summary the notebook declared (``record_lineage``), the output notebook, the report
  and the collected file.
- ``outlets``: the asset event's ``extra`` says where the output notebook and report are; the downstream DAG,
  scheduled on the asset, reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_notebook_provider.operators.notebook import NotebookOperator

NOTEBOOKS = Path(__file__).parent / "notebooks"
SUMMARY = Asset("notebook://example/regional_summary")

with DAG(
    dag_id="example_notebook_publish",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook", "reports"],
) as dag:
    NotebookOperator(
        task_id="regional_summary",
        notebook=str(NOTEBOOKS / "regional_summary.ipynb"),
        parameters={"day": "{{ ds }}", "region": "eu"},
        report_formats=["html"],
        report_mode=True,
        collect_files=["out/*.csv"],
        outlets=[SUMMARY],
    )

with DAG(
    dag_id="example_notebook_publish_consumer",
    schedule=[SUMMARY],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook", "reports"],
) as consumer:

    @task
    def announce(triggering_asset_events: Any = None) -> list[str]:
        """The producer's notebooks and reports, from the asset events that started this run (Airflow may gather
        several updates of the asset into one run)."""
        locations = []
        for events in triggering_asset_events.values():
            for event in events:
                extra = event.extra
                print(f"New summary: {extra['output_notebook']} (report: {extra.get('reports', {}).get('html')})")
                locations.append(str(extra["output_notebook"]))
        return locations

    announce()
