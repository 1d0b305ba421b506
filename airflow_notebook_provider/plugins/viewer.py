"""The notebook viewer: an Airflow 3 plugin (FastAPI app in the api-server) that renders output notebooks.

Every route requires an authenticated Airflow user allowed to read the DAG's task instances (Airflow's auth
manager, the same token the UI uses). Only locations recorded by a task attempt are served: the route takes a
task-instance identity, never a path or URL. The notebook HTML comes from users' code, so it is served with a
``Content-Security-Policy: sandbox`` and no scripts: it cannot act with the viewer's Airflow session.
"""

from __future__ import annotations

import html
from types import SimpleNamespace
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse, Response

from airflow_notebook_provider.links.notebook import RECORD_XCOM_KEY, VIEWER_PREFIX

NOTEBOOK_CSP = (
    "sandbox; default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; font-src data:; "
    "script-src 'none'; frame-ancestors 'self'"
)

app = FastAPI(title="Notebook viewer", docs_url=None, redoc_url=None, openapi_url=None)
_can_read = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))


def _record(dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, Any] | None:
    """The attempt record the operator pushed to XCom (location, conn_id, try_number), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == RECORD_XCOM_KEY,
            )
        )
    if row is None:
        return None
    value = XComModel.deserialize_value(SimpleNamespace(value=row))
    return value if isinstance(value, dict) and value.get("location") else None


def _page(status: int, title: str, detail: str) -> HTMLResponse:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;margin:2em'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(detail)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


def render_html(data: bytes) -> str:
    """Notebook bytes to a standalone HTML page (nbconvert's lab template, images inline)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    return body


@app.get("/view", dependencies=[_can_read], response_class=HTMLResponse)
def view(
    dag_id: str = Query(...),
    run_id: str = Query(...),
    task_id: str = Query(...),
    map_index: int = Query(-1),
    try_number: int | None = Query(None),
) -> Response:
    record = _record(dag_id, run_id, task_id, map_index)
    if record is None:
        return _page(404, "No output notebook", f"No output notebook is recorded for {dag_id} / {run_id} / {task_id}.")
    if try_number is not None and record.get("try_number") not in (None, try_number):
        return _page(
            404, "Attempt not recorded",
            f"The latest recorded attempt of this task is {record.get('try_number')}, not {try_number}.",
        )
    from airflow_notebook_provider.engine.errors import NotebookError
    from airflow_notebook_provider.hooks.notebook import NotebookHook

    location = record["location"]
    try:
        data = NotebookHook(conn_id=record.get("conn_id"), retry_seconds=5).read(location)
    except NotebookError as exc:
        return _page(404, "Output notebook not found", str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreachable store is a 502 page, never a stack trace
        return _page(502, "Output notebook unreachable", f"Reading {location} failed: {exc}")
    try:
        body = render_html(data)
    except Exception as exc:  # noqa: BLE001
        return _page(502, "Output notebook unreadable", f"{location} could not be rendered: {exc}")
    return HTMLResponse(body, headers={"Content-Security-Policy": NOTEBOOK_CSP, "X-Content-Type-Options": "nosniff"})


class NotebookViewerPlugin(AirflowPlugin):
    """Registered by the provider (``get_provider_info``); serves the viewer under ``/notebook``."""

    name = "notebook_viewer"
    fastapi_apps = [{"app": app, "url_prefix": VIEWER_PREFIX, "name": "Notebook viewer"}]
