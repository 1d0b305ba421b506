"""Retention as a maintenance DAG: every day, remove what notebook tasks left under ``[notebook] output_base`` that
is older than 30 days (output notebooks, reports, collected files), as ``airflow-notebook clean`` does: the same
code (``airflow_notebook_provider.maintenance.retention``), the same tombstones (the viewer then says "removed by retention on
<date>" for those attempts).

Trigger it with a config to change the limit, keep failed attempts or make a dry run:
``{"older_than": "90d", "keep_failed": true, "dry_run": true}``. It runs where ``output_base`` is mounted (a worker
that writes notebooks); for object storage use a bucket lifecycle rule instead.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_notebook_provider.maintenance.retention import Removal, clean, human_bytes, parse_age

log = logging.getLogger(__name__)

with DAG(
    dag_id="example_notebook_retention",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "older_than": Param("30d", type="string", pattern=r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$",
                            description="Age limit: 30d, 12h, 2w, ..."),
        "keep_failed": Param(False, type="boolean", description="Keep attempts whose notebook failed."),
        "dry_run": Param(False, type="boolean", description="Only log what would be removed."),
    },
    tags=["example", "notebook", "maintenance"],
) as dag:

    @task
    def clean_outputs(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Remove old outputs; the return value (XCom) sums up what was freed."""
        from airflow_notebook_provider.task.outputs import output_base

        assert params is not None
        verb = "Would remove" if params["dry_run"] else "Removed"

        def logged(removal: Removal) -> None:
            log.info("%s %s (%s)", verb, removal.path, human_bytes(removal.bytes))

        result = clean(output_base(), parse_age(params["older_than"]), keep_failed=params["keep_failed"],
                       dry_run=params["dry_run"], command="example_notebook_retention", on_remove=logged)
        log.info("%s", result.summary())
        summary = result.to_json()
        summary.pop("removed")  # one line per entry is in the log; XCom keeps the totals
        return summary

    clean_outputs()
