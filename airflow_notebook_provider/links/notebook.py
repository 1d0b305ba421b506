"""The "Output notebook" button on a task instance: a browser URL of this provider's viewer for that attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom, conf

from airflow_notebook_provider import config
from airflow_notebook_provider.results import OUTPUT_XCOM_KEY, RECORD_XCOM_KEY
from airflow_notebook_provider.task import outputs

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey
    from airflow.sdk import Context

    from airflow_notebook_provider.hooks.notebook import NotebookHook
    from airflow_notebook_provider.notebook.origin import NotebookOrigin

VIEWER_PREFIX = "/notebook"


def viewer_base_url() -> str:
    """``[notebook] viewer_base_url``, else ``[api] base_url``; empty gives a root-relative link."""
    base = config.get_str("viewer_base_url") or conf.get("api", "base_url", fallback="") or ""
    return str(base).rstrip("/")


def viewer_path(dag_id: str, route: str) -> str:
    """``/notebook/dags/<dag_id>/<route>``: the DAG is in the path, where every Airflow 3 release's access check
    and the viewer's own (``viewer.app``) read it; the rest of the task instance is in the query string."""
    return f"{VIEWER_PREFIX}/dags/{quote(dag_id, safe='')}/{route}"


def viewer_url(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    query = urlencode({"run_id": run_id, "task_id": task_id, "map_index": map_index, "try_number": try_number})
    return f"{viewer_base_url()}{viewer_path(dag_id, 'view')}?{query}"


def task_instance_url(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int | None = None) -> str:
    """The task instance's page in the Airflow UI (the "back to Airflow" link of the viewer)."""
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    if map_index >= 0:
        path += f"/mapped/{map_index}"
    query = f"?try_number={try_number}" if try_number else ""
    return f"{viewer_base_url()}{path}{query}"


class NotebookOutputLink(BaseOperatorLink):
    """Links to the rendered output notebook of the attempt, on success and on failure alike.

    The operator calls ``persist`` before the kernel starts, so the link exists for every attempt that got that
    far; Airflow computes the link in the worker when the attempt ends and stores it.
    """

    name = "Output notebook"

    @classmethod
    def persist(cls, context: Context, *, hook: NotebookHook, location: str, origin: NotebookOrigin | None = None) -> None:
        """Record where this attempt writes its notebook: XCom for the link and downstream tasks, and the attempt
        record file (``outputs``), which outlives the XCom Airflow clears when the next try starts. ``origin``: the
        bundle version of a notebook given by a relative path."""
        ti = context["ti"]
        record = outputs.LocationRecord(location, hook.conn_id, ti.try_number, origin)
        ti.xcom_push(key=OUTPUT_XCOM_KEY, value=location)
        ti.xcom_push(key=RECORD_XCOM_KEY, value=record.to_json())
        outputs.write_record_file(hook, outputs.TaskInstanceId.of(ti), record)

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            location = XCom.get_value(key=OUTPUT_XCOM_KEY, ti_key=ti_key)
        except Exception:  # noqa: BLE001 - a link must never break the task or the UI
            return ""
        if not location:
            return ""
        return viewer_url(dag_id=ti_key.dag_id, run_id=ti_key.run_id, task_id=ti_key.task_id,
                          map_index=ti_key.map_index, try_number=ti_key.try_number)
