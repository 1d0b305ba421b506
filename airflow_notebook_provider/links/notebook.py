"""The "Output notebook" button on a task instance: a browser URL of this provider's viewer for that attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom, conf

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

XCOM_KEY = "output_notebook"
# What the viewer needs to read the notebook back: {"location", "conn_id", "try_number"}.
RECORD_XCOM_KEY = "notebook_record"
VIEWER_PREFIX = "/notebook"


def viewer_base_url() -> str:
    """``[notebook] viewer_base_url``, else ``[api] base_url``; empty gives a root-relative link."""
    base = conf.get("notebook", "viewer_base_url", fallback="") or conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/")


def viewer_url(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    query = urlencode(
        {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "try_number": try_number}
    )
    return f"{viewer_base_url()}{VIEWER_PREFIX}/view?{query}"


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
