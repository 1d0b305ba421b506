"""Which attempts a task instance had, and which output notebook each one recorded.

Airflow clears every XCom of a task instance when a new try starts, so XCom (``notebook_record``) only knows the
latest attempt. The tries themselves, with their states and times, are in Airflow's ``task_instance`` (the latest
try) and ``task_instance_history`` (earlier tries) tables. For the notebook of an earlier try, the viewer reads the
record the operator wrote for that attempt under ``[notebook] output_base`` (``attempt-<n>.record.json``, beside
the default output location), and for notebooks written before records existed, the default location itself.

Whatever record is used, the viewer serves a notebook only if its own ``metadata.airflow`` names the requested
task instance and try: a location that holds anything else is refused as "not recorded".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from airflow_notebook_provider.engine import paths
from airflow_notebook_provider.engine.errors import NotebookInputError
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.links.notebook import RECORD_XCOM_KEY, record_location

# States in which the latest try's notebook is a checkpoint of a run that has not ended.
IN_PROGRESS_STATES = frozenset({"running", "queued", "scheduled", "deferred", "restarting", "up_for_reschedule"})
# Seconds the viewer retries an object store before saying it is unreachable (a page must answer quickly).
READ_RETRY_SECONDS = 3.0


class ViewerError(Exception):
    """A reason to answer with an error page instead of a notebook: HTTP status, title, what to do."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class TaskInstanceId:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int

    def describe(self) -> str:
        mapped = f" [map index {self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id} / {self.run_id} / {self.task_id}{mapped}"


@dataclass(frozen=True)
class Attempt:
    try_number: int
    state: str | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    latest: bool

    @property
    def in_progress(self) -> bool:
        return self.latest and (self.state or "") in IN_PROGRESS_STATES


@dataclass(frozen=True)
class Loaded:
    """One attempt's output notebook as stored: the original bytes and the parsed JSON."""

    record: dict[str, Any]
    data: bytes
    notebook: dict[str, Any]


def list_attempts(ti: TaskInstanceId) -> list[Attempt]:
    """Every try of the task instance, oldest first, from Airflow's task_instance and task_instance_history."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    tries: dict[int, Attempt] = {}
    with create_session() as session:
        for model in (TaskInstanceHistory, TaskInstance):  # the live row wins over a history row of the same try
            rows = session.execute(
                select(model.try_number, model.state, model.start_date, model.end_date, model.duration).where(
                    model.dag_id == ti.dag_id,
                    model.run_id == ti.run_id,
                    model.task_id == ti.task_id,
                    model.map_index == ti.map_index,
                )
            ).all()
            for try_number, state, start, end, duration in rows:
                if try_number and try_number > 0:
                    tries[try_number] = Attempt(try_number, str(state) if state else None, start, end, duration,
                                                latest=model is TaskInstance)
    return [tries[n] for n in sorted(tries)]


def xcom_record(ti: TaskInstanceId) -> dict[str, Any] | None:
    """The record the latest attempt pushed to XCom (location, conn_id, try_number), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == ti.dag_id,
                XComModel.run_id == ti.run_id,
                XComModel.task_id == ti.task_id,
                XComModel.map_index == ti.map_index,
                XComModel.key == RECORD_XCOM_KEY,
            )
        )
    if row is None:
        return None
    return _valid_record(XComModel.deserialize_value(SimpleNamespace(value=row)))


def _valid_record(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and isinstance(value.get("location"), str) and value["location"]:
        conn_id = value.get("conn_id")
        return {"location": value["location"], "conn_id": conn_id if isinstance(conn_id, str) else None,
                "try_number": value.get("try_number")}
    return None


def _hook(conn_id: str | None) -> NotebookHook:
    return NotebookHook(conn_id=conn_id, retry_seconds=READ_RETRY_SECONDS)


def find_record(ti: TaskInstanceId, try_number: int) -> dict[str, Any] | None:
    """Where attempt ``try_number`` wrote its notebook: XCom, else its record file, else the default location."""
    latest = xcom_record(ti)
    if latest is not None and latest.get("try_number") == try_number:
        return latest
    # The record file lives in output_base, which the task reached with its own connection.
    hook = _hook(latest["conn_id"] if latest else None)
    base = NotebookHook.default_output_base()
    ident = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index,
             "try_number": try_number}
    try:
        record = _read_record_file(hook, record_location(base, **ident))
        if record is not None and record.get("try_number") in (None, try_number):
            return record
        default = paths.default_output(base, **ident)
        if hook.exists(default):
            return {"location": default, "conn_id": hook.conn_id, "try_number": try_number}
    except Exception:  # noqa: BLE001 - an unreachable output_base: the try is listed, without a notebook
        return None
    return None


def _read_record_file(hook: NotebookHook, location: str) -> dict[str, Any] | None:
    try:
        return _valid_record(json.loads(hook.read(location)))
    except (NotebookInputError, ValueError):  # no record there, or not JSON
        return None


def load(ti: TaskInstanceId, try_number: int) -> Loaded:
    """Read attempt ``try_number``'s output notebook and check it is that attempt's; else a ViewerError."""
    record = find_record(ti, try_number)
    if record is None:
        raise ViewerError(
            404, "No output notebook recorded",
            f"Attempt {try_number} of {ti.describe()} recorded no output notebook: the task is not a "
            "NotebookOperator, the attempt failed before its notebook was written (see the task log), or its "
            "record is not readable by the api-server (make [notebook] output_base shared storage).",
        )
    location = record["location"]
    try:
        data = _hook(record["conn_id"]).read(location)
    except NotebookInputError:
        raise ViewerError(
            404, "Output notebook not found",
            f"Attempt {try_number} recorded {location}, but nothing is there any more (deleted or moved?).",
        ) from None
    except Exception as exc:  # noqa: BLE001 - an unreachable store is a 502 page, never a stack trace
        raise ViewerError(
            502, "Output notebook unreachable",
            f"Reading {location} (connection {record['conn_id']!r}) failed: {exc}. Check that the api-server can "
            "reach the store and that the connection is valid.",
        ) from None
    try:
        notebook = json.loads(data)
        meta = notebook["metadata"]["airflow"]
        claimed = (meta["dag_id"], meta["run_id"], meta["task_id"], int(meta.get("map_index", -1)),
                   int(meta["try_number"]))
    except (ValueError, KeyError, TypeError):
        raise ViewerError(
            404, "Not an output notebook",
            f"{location} is not an output notebook written by a notebook task, so it is not shown.",
        ) from None
    if claimed != (ti.dag_id, ti.run_id, ti.task_id, ti.map_index, try_number):
        raise ViewerError(
            404, "Not this attempt's notebook",
            f"{location} holds the output of another task attempt ({' / '.join(map(str, claimed))}), so it is not "
            f"shown as attempt {try_number} of {ti.describe()}.",
        )
    return Loaded(record, data, notebook)
