"""Where each attempt's output notebook goes, and the record that lets it be found again.

An attempt's location is kept three ways, each for a reader that cannot use the others:

- XCom ``output_notebook`` (the location, for downstream tasks) and ``notebook_record`` (an ``LocationRecord``),
  pushed by ``NotebookOutputLink.persist`` before the kernel starts. Airflow clears a task's XComs when a new try
  starts, so XCom knows only the latest attempt.
- ``attempt-<n>.record.json`` under ``[notebook] output_base``, at a place derived from the attempt's identity
  alone: the record of every attempt, for the viewer's attempt list and ``airflow-notebook pull``.
- The notebook's own ``metadata.airflow`` names its attempt.

This module is the writing side (the default layout
``{output_base}/{dag_id}/{run_id}/{task_id}[/map-{i}]/attempt-{n}.ipynb``, the ``.attempt-<n>`` name for a retry
whose configured output is taken, the record file), used by the operator and the link on the worker. Reading an
attempt's notebook back, where a record is data a task wrote and not a trusted path, is ``lookup``'s job.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_notebook_provider import config
from airflow_notebook_provider.engine.storage import is_url, unique_piece
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.notebook.origin import ORIGIN_KEY, NotebookOrigin, parse_origin

RECORD_SUFFIX = ".record.json"

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
class LocationRecord:
    """Where one attempt wrote its notebook, and the connection that reaches it; ``notebook``: which version of a
    bundle's notebook it runs (``notebook.origin``), for a notebook given by a relative path."""

    location: str
    conn_id: str | None
    try_number: int | None
    notebook: NotebookOrigin | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"location": self.location, "conn_id": self.conn_id, "try_number": self.try_number}
        if self.notebook is not None:
            value[ORIGIN_KEY] = self.notebook.to_json()
        return value

    @classmethod
    def parse(cls, value: Any) -> LocationRecord | None:
        """A record from XCom or a record file: a plain JSON object with a non-empty string ``location``, a string
        (or null) ``conn_id`` and an integer (or null) ``try_number``; None for anything else (a serialized class,
        a list, a field of another type), which the viewer then treats as no record."""
        if not isinstance(value, dict) or any(not isinstance(k, str) or k.startswith("__") for k in value):
            return None
        location, conn_id, try_number = value.get("location"), value.get("conn_id"), value.get("try_number")
        if not isinstance(location, str) or not location or not isinstance(conn_id, (str, type(None))):
            return None
        if try_number is not None and (not isinstance(try_number, int) or isinstance(try_number, bool)):
            return None
        return cls(location, conn_id or None, try_number, parse_origin(value.get(ORIGIN_KEY)))


# -- layout ------------------------------------------------------------------------------------------------------


def output_base() -> str:
    """``[notebook] output_base`` (a local ``~`` expanded: records hold absolute paths, which the viewer requires),
    else ``$AIRFLOW_HOME/notebook_outputs``."""
    base = config.get_str("output_base")
    if base:
        return str(base) if is_url(str(base)) else os.path.expanduser(str(base))
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


def write_record_file(hook: NotebookHook, ti: TaskInstanceId, record: LocationRecord) -> None:
    """Keep this attempt's record where a later retry cannot erase it; a failure only costs the attempts list."""
    try:
        assert record.try_number is not None
        hook.write(record_location(ti, record.try_number), json.dumps(record.to_json(), sort_keys=True).encode())
    except Exception as exc:  # noqa: BLE001 - the notebook matters more than its index entry
        log.warning("Could not write the attempt record (%s); the viewer will list this attempt only while it is "
                    "the latest. Make [notebook] output_base writable by workers and readable by the api-server.", exc)


