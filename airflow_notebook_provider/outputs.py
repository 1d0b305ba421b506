"""Where each attempt's output notebook is, and how it is found again: one record, one lookup, one identity check.

An attempt's location is kept three ways, each for a reader that cannot use the others:

- XCom ``output_notebook`` (the location, for downstream tasks) and ``notebook_record`` (an ``AttemptRecord``),
  pushed by ``NotebookOutputLink.persist`` before the kernel starts. Airflow clears a task's XComs when a new try
  starts, so XCom knows only the latest attempt.
- ``attempt-<n>.record.json`` under ``[notebook] output_base``, at a place derived from the attempt's identity
  alone: the record of every attempt, for the viewer's attempt list and ``airflow-notebook pull``.
- The notebook's own ``metadata.airflow`` names its attempt. ``load`` serves a notebook only if it names the
  attempt asked for, whichever record pointed to it: a record is data a task wrote, not a trusted path.

The default layout (``{output_base}/{dag_id}/{run_id}/{task_id}[/map-{i}]/attempt-{n}.ipynb``) and the
``.attempt-<n>`` name for a retry whose configured output is taken are defined here too. The link, the viewer,
the operator and the CLI all use this module.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_notebook_provider.engine.errors import NotebookInputError
from airflow_notebook_provider.engine.storage import is_url, unique_piece
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.results import OUTPUT_XCOM_KEY, RECORD_XCOM_KEY

XCOM_KEY = OUTPUT_XCOM_KEY
RECORD_SUFFIX = ".record.json"
# Seconds a reader (the viewer, the CLI) retries an object store before saying it is unreachable.
READ_RETRY_SECONDS = 3.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskInstanceId:
    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, ti: Any) -> TaskInstanceId:
        return cls(ti.dag_id, ti.run_id, ti.task_id, ti.map_index if ti.map_index is not None else -1)

    def describe(self) -> str:
        mapped = f" [map index {self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id} / {self.run_id} / {self.task_id}{mapped}"


@dataclass(frozen=True)
class AttemptRecord:
    """Where one attempt wrote its notebook, and the connection that reaches it."""

    location: str
    conn_id: str | None
    try_number: int | None

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "conn_id": self.conn_id, "try_number": self.try_number}

    @classmethod
    def parse(cls, value: Any) -> AttemptRecord | None:
        """A record from XCom or a record file; None for anything else."""
        if not isinstance(value, dict) or not isinstance(value.get("location"), str) or not value["location"]:
            return None
        conn_id, try_number = value.get("conn_id"), value.get("try_number")
        return cls(value["location"], conn_id if isinstance(conn_id, str) else None,
                   try_number if isinstance(try_number, int) else None)


@dataclass(frozen=True)
class Loaded:
    """One attempt's output notebook as stored: the original bytes and the parsed JSON."""

    record: AttemptRecord
    data: bytes
    notebook: dict[str, Any]


class OutputNotFound(Exception):
    """An attempt's notebook cannot be shown: ``reason`` (``missing`` or ``unreachable``), a title and what to do."""

    def __init__(self, reason: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.title, self.detail = reason, title, detail


# -- layout ------------------------------------------------------------------------------------------------------


def output_base() -> str:
    """``[notebook] output_base``, else ``$AIRFLOW_HOME/notebook_outputs``."""
    base = conf.get("notebook", "output_base", fallback="") or ""
    if base:
        return str(base)
    home = os.environ.get("AIRFLOW_HOME") or conf.get("core", "airflow_home", fallback=None) or "~/airflow"
    return str(Path(os.path.expanduser(home)) / "notebook_outputs")


def default_output(ti: TaskInstanceId, try_number: int, base: str | None = None) -> str:
    """``{base}/{dag_id}/{run_id}/{task_id}[/map-{map_index}]/attempt-{try_number}.ipynb``, each piece made safe."""
    pieces = [unique_piece(ti.dag_id), unique_piece(ti.run_id), unique_piece(ti.task_id)]
    if ti.map_index >= 0:
        pieces.append(f"map-{int(ti.map_index)}")
    pieces.append(f"attempt-{int(try_number)}.ipynb")
    return "/".join([(base or output_base()).rstrip("/"), *pieces])


def record_location(ti: TaskInstanceId, try_number: int, base: str | None = None) -> str:
    """``…/attempt-{n}.record.json``: beside the default output."""
    return default_output(ti, try_number, base)[: -len(".ipynb")] + RECORD_SUFFIX


def attempt_variant(location: str, try_number: int, n: int = 0) -> str:
    """``x/report.ipynb`` -> ``x/report.attempt-2.ipynb`` (then ``...attempt-2-1.ipynb``): a name for a retry
    whose configured output already holds an earlier attempt's notebook, which must not be overwritten."""
    head, slash, name = location.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    suffix = f".attempt-{try_number}" + (f"-{n}" if n else "")
    return f"{head}{slash}{stem}{suffix}.{ext}" if ext else f"{head}{slash}{stem}{suffix}"


def choose_output(hook: NotebookHook, ti: TaskInstanceId, try_number: int, configured: str | None) -> str:
    """The location this attempt writes: ``configured`` or the default, made fresh if it already holds a notebook."""
    output = configured or default_output(ti, try_number)
    candidate, n = output, 0
    while hook.exists(candidate):
        n += 1
        candidate = attempt_variant(output, try_number, n - 1)
    if candidate != output:
        log.warning(
            "%s already holds a notebook (an earlier attempt's?); this attempt writes %s so nothing is "
            "overwritten. Put {{ ti.try_number }} in `output_notebook` to choose the name yourself.", output, candidate,
        )
    return candidate


def write_record_file(hook: NotebookHook, ti: TaskInstanceId, record: AttemptRecord) -> None:
    """Keep this attempt's record where a later retry cannot erase it; a failure only costs the attempts list."""
    try:
        assert record.try_number is not None
        hook.write(record_location(ti, record.try_number), json.dumps(record.to_json(), sort_keys=True).encode())
    except Exception as exc:  # noqa: BLE001 - the notebook matters more than its index entry
        log.warning("Could not write the attempt record (%s); the viewer will list this attempt only while it is "
                    "the latest. Make [notebook] output_base writable by workers and readable by the api-server.", exc)


# -- lookup (where the metadata DB is reachable: the api-server, or the CLI with Airflow configured) --------------


def xcom_record(ti: TaskInstanceId) -> AttemptRecord | None:
    """The record the latest attempt pushed to XCom, read from the metadata DB, or None."""
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
    return None if row is None else AttemptRecord.parse(XComModel.deserialize_value(SimpleNamespace(value=row)))


def _hook(conn_id: str | None) -> NotebookHook:
    return NotebookHook(conn_id=conn_id, retry_seconds=READ_RETRY_SECONDS)


def find(ti: TaskInstanceId, try_number: int | None) -> AttemptRecord | None:
    """Where attempt ``try_number`` (None: the latest) wrote its notebook: XCom, else its record file under
    ``output_base``, else the default location; None if none of them knows."""
    latest = xcom_record(ti)
    if try_number is None or (latest is not None and latest.try_number == try_number):
        return latest
    # The record file lives in output_base, which the task reached with its own connection.
    hook = _hook(latest.conn_id if latest else None)
    try:
        try:
            found = AttemptRecord.parse(json.loads(hook.read(record_location(ti, try_number))))
        except (NotebookInputError, ValueError):  # no record there, or not JSON
            found = None
        if found is not None and found.try_number in (None, try_number):
            return found
        default = default_output(ti, try_number)
        if hook.exists(default):
            return AttemptRecord(default, hook.conn_id, try_number)
    except Exception:  # noqa: BLE001 - an unreachable output_base: the try is listed, without a notebook
        return None
    return None


def attempt_hostname(ti: TaskInstanceId, try_number: int | None) -> str | None:
    """The host an attempt ran on, as Airflow recorded it (``task_instance`` or ``task_instance_history``)."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            for model in (TaskInstance, TaskInstanceHistory):
                query = select(model.hostname).where(
                    model.dag_id == ti.dag_id, model.run_id == ti.run_id, model.task_id == ti.task_id,
                    model.map_index == ti.map_index,
                )
                if try_number is not None:
                    query = query.where(model.try_number == try_number)
                host = session.scalar(query.limit(1))
                if host:
                    return str(host)
    except Exception:  # noqa: BLE001 - without the host, the page still names the path
        return None
    return None


def _here() -> str:
    from airflow.utils.net import get_hostname

    return str(get_hostname())


def load(ti: TaskInstanceId, try_number: int | None) -> tuple[int, Loaded]:
    """Read an attempt's output notebook (None: the latest) and check that it is that attempt's own.

    Returns the try number and the notebook; raises ``OutputNotFound`` saying why nothing can be shown.
    """
    record = find(ti, try_number)
    what = f"Attempt {try_number}" if try_number is not None else "The latest attempt"
    if record is None:
        raise OutputNotFound(
            "missing", "No output notebook recorded",
            f"{what} of {ti.describe()} recorded no output notebook: the task is not a NotebookOperator, the attempt "
            "failed before its notebook was written (see the task log), or its record is not readable here (make "
            "[notebook] output_base shared storage).",
        )
    wanted = try_number if try_number is not None else record.try_number
    location = record.location
    try:
        data = _hook(record.conn_id).read(location)
    except NotebookInputError:
        host = None if is_url(location) else attempt_hostname(ti, wanted)
        if host and host != _here():
            raise OutputNotFound(
                "missing", "Output notebook on a worker's disk",
                f"{what} wrote {location} on worker {host}: a local file, which the api-server (on {_here()}) "
                "cannot read. Set [notebook] output_base (or the task's output_notebook) to object storage, e.g. "
                "s3://aws_default@bucket/notebooks, or to a folder shared by the workers and the api-server; "
                "attempts run after the change can be viewed here.",
            ) from None
        raise OutputNotFound(
            "missing", "Output notebook not found",
            f"{what} recorded {location}, but nothing is there any more (deleted or moved?).",
        ) from None
    except Exception as exc:  # noqa: BLE001 - an unreachable store is an answer, never a stack trace
        raise OutputNotFound(
            "unreachable", "Output notebook unreachable",
            f"Reading {location} (connection {record.conn_id!r}) failed: {exc}. Check that the store is reachable "
            "from here and that the connection is valid.",
        ) from None
    try:
        notebook = json.loads(data)
        meta = notebook["metadata"]["airflow"]
        claimed = (meta["dag_id"], meta["run_id"], meta["task_id"], int(meta.get("map_index", -1)),
                   int(meta["try_number"]))
    except (ValueError, KeyError, TypeError):
        raise OutputNotFound(
            "missing", "Not an output notebook",
            f"{location} is not an output notebook written by a notebook task, so it is not shown.",
        ) from None
    if claimed[:4] != (ti.dag_id, ti.run_id, ti.task_id, ti.map_index) or (
        wanted is not None and claimed[4] != wanted
    ):
        raise OutputNotFound(
            "missing", "Not this attempt's notebook",
            f"{location} holds the output of another task attempt ({' / '.join(map(str, claimed))}), so it is not "
            f"shown as attempt {wanted} of {ti.describe()}.",
        )
    return claimed[4], Loaded(record, data, notebook)
