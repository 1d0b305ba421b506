"""The "Output notebook" button on a task instance: a browser URL of this provider's viewer for that attempt."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom, conf

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "output_notebook"
# What the viewer needs to read the notebook back: {"location", "conn_id", "try_number"}.
RECORD_XCOM_KEY = "notebook_record"
VIEWER_PREFIX = "/notebook"
# Airflow clears every XCom of a task instance when a new try starts, so XCom knows only the latest attempt. Each
# attempt therefore also writes its record as a small JSON file at a location derived from the task-instance
# identity alone, under [notebook] output_base, where the viewer finds it for every attempt.
RECORD_SUFFIX = ".record.json"

log = logging.getLogger(__name__)


def record_location(base: str, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """``{base}/{dag_id}/{run_id}/{task_id}[/map-{i}]/attempt-{n}.record.json``: beside the default output."""
    from airflow_notebook_provider.engine import paths

    notebook = paths.default_output(
        base, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    return notebook[: -len(".ipynb")] + RECORD_SUFFIX


def persist_record(hook: Any, ti: Any, record: dict[str, Any]) -> None:
    """Keep this attempt's record where a later retry cannot erase it; a failure only costs the attempts list."""
    try:
        location = record_location(
            hook.default_output_base(),
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index, try_number=ti.try_number,
        )
        hook.write(location, json.dumps(record, sort_keys=True).encode())
    except Exception as exc:  # noqa: BLE001 - the notebook matters more than its index entry
        log.warning("Could not write the attempt record (%s); the viewer will list this attempt only while it is "
                    "the latest. Make [notebook] output_base writable by workers and readable by the api-server.", exc)


def viewer_base_url() -> str:
    """``[notebook] viewer_base_url``, else ``[api] base_url``; empty gives a root-relative link."""
    base = conf.get("notebook", "viewer_base_url", fallback="") or conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/")


def viewer_url(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    query = urlencode(
        {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "try_number": try_number}
    )
    return f"{viewer_base_url()}{VIEWER_PREFIX}/view?{query}"


def task_instance_url(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None = None) -> str:
    """The task instance's page in the Airflow UI (the "back to Airflow" link of the viewer)."""
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index >= 0:
        path += f"/mapped/{map_index}"
    query = f"?try_number={try_number}" if try_number else ""
    return f"{viewer_base_url()}{path}{query}"


class NotebookOutputLink(BaseOperatorLink):
    """Links to the rendered output notebook of the attempt, on success and on failure alike.

    The operator pushes the output location to XCom before the kernel starts, so the link exists for every
    attempt that got that far; Airflow computes the link in the worker when the attempt ends and stores it.
    """

    name = "Output notebook"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            location = XCom.get_value(key=XCOM_KEY, ti_key=ti_key)
        except Exception:  # noqa: BLE001 - a link must never break the task or the UI
            return ""
        if not location:
            return ""
        return viewer_url(
            dag_id=ti_key.dag_id,
            run_id=ti_key.run_id,
            task_id=ti_key.task_id,
            map_index=ti_key.map_index,
            try_number=ti_key.try_number,
        )
