"""Finding an attempt's output notebook again, where the metadata DB is reachable (the api-server's viewer, the CLI
with Airflow configured): one lookup, one location check, one identity check.

A record (XCom ``notebook_record``, an ``attempt-<n>.record.json``) is data a task wrote, so it is read as plain JSON,
and a recorded location is read only if it lies under ``[notebook] output_base`` or ``viewer_allowed_locations``
(symbolic links resolved), is one the task writes (its default layout or its ``output_notebook``) and holds a
regular file; with the connection the task's operator names, never one from the record (``safe_read``). Then
``read_output`` serves a notebook only if its ``metadata.airflow`` names the attempt asked for.

What the metadata DB says about the task instance (its XCom record, its operator's fields, an attempt's host) is
read by ``metadata_db``; ``xcom_record`` is also reached from here (the CLI's ``debug`` imports it from this module).
"""

from __future__ import annotations

import json
import posixpath
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from airflow_notebook_provider.engine.storage import is_url
from airflow_notebook_provider.task.outputs import LocationRecord, TaskInstanceId, default_output, record_location
from airflow_notebook_provider.viewer import safe_read
from airflow_notebook_provider.viewer.metadata_db import TaskFacts, attempt_hostname, task_facts, xcom_record
from airflow_notebook_provider.viewer.scan import scan_airflow_metadata

# Seconds a reader (the viewer, the CLI) retries an object store before saying it is unreachable.
READ_RETRY_SECONDS = 3.0


@dataclass(frozen=True)
class Loaded:
    """One attempt's output notebook as stored: the original bytes and the parsed JSON."""

    record: LocationRecord
    data: bytes
    notebook: dict[str, Any]


class OutputNotFound(Exception):
    """An attempt's notebook cannot be shown: ``reason`` (``missing``, ``unreachable`` or ``too_large``), a title
    and what to do."""

    def __init__(self, reason: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.title, self.detail = reason, title, detail


class OutputTooLarge(OutputNotFound):
    """The attempt's notebook is larger than the viewer renders (``[notebook] viewer_max_bytes``): download it."""

    def __init__(self, try_number: int | None, location: str, size: int, limit: int) -> None:
        self.try_number, self.location, self.size, self.limit = try_number, location, size, limit
        super().__init__(
            "too_large", "Notebook too large to show here",
            f"{location} is {_mb(size)}, more than this viewer renders ([notebook] viewer_max_bytes, {_mb(limit)}): "
            "rendering it would hold the api-server for long and take several times its size in memory. Download "
            "it to open it in Jupyter, or ask an administrator to raise viewer_max_bytes.",
        )


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB ({size} bytes)"


_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def _comparable(location: str) -> str:
    """A location as compared with the task's outputs: a URL without its ``conn@``, a path normalized."""
    if is_url(location):
        scheme, _, rest = location.partition("://")
        netloc, slash, key = rest.partition("/")
        return f"{scheme.lower()}://{netloc.rpartition('@')[2]}{slash}{key}"
    text = location[len("file://"):] if location.startswith("file://") else location
    return posixpath.normpath(text) if text.startswith("/") else text


def _could_have_written(ti: TaskInstanceId, try_number: int | None, location: str, facts: TaskFacts) -> bool:
    """``location`` is one the task writes: the default layout for this try, or the task's ``output_notebook``
    (rendered, or its template with each ``{{ ... }}`` matching anything), or one of their ``.attempt-<n>`` names
    (``choose_output``)."""
    here = _comparable(location)
    # ``x/report.attempt-2-1.ipynb`` -> ``x/report.ipynb``: the configured name a retry found taken.
    plain = re.sub(r"\.attempt-\d+(?:-\d+)?(?=(\.[^./]*)?$)", "", here, count=1)
    candidates = {here, plain}
    if try_number is not None and _comparable(default_output(ti, try_number)) in candidates:
        return True
    return any(re.fullmatch(_pattern(configured), c, re.S) for configured in facts.output_notebook
               for c in candidates)


def _pattern(configured: str) -> str:
    """A regular expression for a configured output: its literal text, each template expression matching anything
    (the rendered value of an earlier try is not kept by Airflow)."""
    marked = _comparable(_TEMPLATE.sub("\x00", configured))
    return ".*".join(re.escape(part) for part in marked.split("\x00"))


def read_record_file(ti: TaskInstanceId, try_number: int, conn_id: str | None) -> Any:
    """The parsed record file of an attempt (a tombstone, after retention), or None: read as any recorded
    location is (an allowed, regular, small file), with the task's own connection."""
    try:
        data = safe_read.read_small(record_location(ti, try_number), conn_id, safe_read.RECORD_MAX_BYTES,
                                    READ_RETRY_SECONDS)
        return json.loads(data)
    except Exception:  # noqa: BLE001 - no record, not JSON, not readable: no record
        return None


def find(ti: TaskInstanceId, try_number: int | None, facts: TaskFacts | None = None) -> LocationRecord | None:
    """Where attempt ``try_number`` (None: the latest) wrote its notebook: XCom, else its record file under
    ``output_base``, else the default location; None if none of them knows."""
    latest = xcom_record(ti)
    if try_number is None or (latest is not None and latest.try_number == try_number):
        return latest
    # The record file lives in output_base, which the task reached with its own connection (its operator's).
    facts = facts if facts is not None else task_facts(ti)
    found = LocationRecord.parse(read_record_file(ti, try_number, facts.conn_id))
    if found is not None and found.try_number in (None, try_number):
        return found
    default = default_output(ti, try_number)
    try:
        safe_read.open_checked(safe_read.resolve(default, facts.conn_id), READ_RETRY_SECONDS).close()
    except Exception:  # noqa: BLE001 - nothing readable there: the try is listed, without a notebook
        return None
    return LocationRecord(default, facts.conn_id, try_number)


def _here() -> str:
    from airflow.utils.net import get_hostname

    return str(get_hostname())


_NOT_ALLOWED = (
    "{what} of {ti} recorded {location}, which is not a file under [notebook] output_base or [notebook] "
    "viewer_allowed_locations, so it is not read. If the task writes there on purpose, an administrator can add "
    "that folder or bucket prefix to viewer_allowed_locations."
)


def _on_a_workers_disk(ti: TaskInstanceId, wanted: int | None, location: str, what: str) -> str | None:
    """What to say when a local location was written on another host (from Airflow's records, not the file): the
    api-server cannot read it whatever the allowed locations, and the fix is shared or object storage."""
    host = None if is_url(location) else attempt_hostname(ti, wanted)
    if not host or host == _here():
        return None
    return (f"{what} wrote {location} on worker {host}: a local file, which the api-server (on {_here()}) cannot "
            "read. Set [notebook] output_base (or the task's output_notebook) to object storage, e.g. "
            "s3://aws_default@bucket/notebooks, or to a folder shared by the workers and the api-server; attempts run "
            "after the change can be viewed here.")


def _opened(ti: TaskInstanceId, try_number: int | None) -> tuple[int | None, LocationRecord, safe_read.Opened]:
    """Find an attempt's notebook, check where it is, and open it: (the try it must name, its record, the file).

    Raises ``OutputNotFound``. Whether a location is allowed is decided before anything at it is looked at, and the
    refusal reads the same whatever is there.
    """
    facts = task_facts(ti)
    record = find(ti, try_number, facts)
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
    refused = OutputNotFound("missing", "Output notebook not shown",
                             _NOT_ALLOWED.format(what=what, ti=ti.describe(), location=location))
    try:
        target = safe_read.resolve(location, facts.conn_id)
    except safe_read.NotAllowed:
        elsewhere = _on_a_workers_disk(ti, wanted, location, what)
        if elsewhere:  # decided from Airflow's records of the attempt, never by looking at the location
            raise OutputNotFound("missing", "Output notebook on a worker's disk",
                                 f"{elsewhere} (It is not under [notebook] output_base or viewer_allowed_locations "
                                 "either, so the viewer would not read it here.)") from None
        raise refused from None
    if not _could_have_written(ti, wanted, location, facts):
        raise OutputNotFound(
            "missing", "Output notebook not shown",
            f"{what} of {ti.describe()} recorded {location}, which is neither the default output of that attempt nor "
            "the task's output_notebook, so it is not read.",
        )
    try:
        return wanted, LocationRecord(location, target.conn_id, wanted), safe_read.open_checked(target,
                                                                                             READ_RETRY_SECONDS)
    except safe_read.NotAllowed:
        raise refused from None
    except safe_read.NotRegular:
        raise OutputNotFound("missing", "Not an output notebook",
                             f"{location} is not a regular file (a folder, device, pipe or socket), so it is not "
                             "read.") from None
    except safe_read.Missing:
        elsewhere = _on_a_workers_disk(ti, wanted, location, what)
        if elsewhere:
            raise OutputNotFound("missing", "Output notebook on a worker's disk", elsewhere) from None
        raise OutputNotFound(
            "missing", "Output notebook not found",
            f"{what} recorded {location}, but nothing is there any more (deleted or moved?).",
        ) from None
    except Exception as exc:  # noqa: BLE001 - an unreachable store is an answer, never a stack trace
        raise OutputNotFound(
            "unreachable", "Output notebook unreachable",
            f"Reading {location} (connection {target.conn_id!r}) failed: {exc}. Check that the store is reachable "
            f"from here and that the connection is valid; the viewer waits [notebook] viewer_read_timeout "
            f"({safe_read.read_timeout():g} s) per request.",
        ) from None


def claimed_identity(meta: Any) -> tuple[str, str, str, int, int] | None:
    """(dag_id, run_id, task_id, map_index, try_number) that ``metadata.airflow`` names, each of its JSON type
    (strings, integers: not ``"1"``, not ``true``); None if it names none."""
    if not isinstance(meta, dict):
        return None
    ids = [meta.get(k) for k in ("dag_id", "run_id", "task_id")]
    map_index, try_number = meta.get("map_index", -1), meta.get("try_number")
    if not all(isinstance(v, str) for v in ids):
        return None
    if not isinstance(map_index, int) or not isinstance(try_number, int) or isinstance(map_index, bool) \
            or isinstance(try_number, bool):
        return None
    return str(ids[0]), str(ids[1]), str(ids[2]), map_index, try_number


def _check_identity(ti: TaskInstanceId, wanted: int | None, location: str, meta: Any) -> int:
    claimed = claimed_identity(meta)
    if claimed is None:
        raise OutputNotFound(
            "missing", "Not an output notebook",
            f"{location} is not an output notebook written by a notebook task (its metadata.airflow does not name a "
            "task attempt with string ids and integer map_index and try_number), so it is not shown.",
        )
    if claimed[:4] != (ti.dag_id, ti.run_id, ti.task_id, ti.map_index) or (
        wanted is not None and claimed[4] != wanted
    ):
        raise OutputNotFound(
            "missing", "Not this attempt's notebook",
            f"{location} holds the output of another task attempt ({' / '.join(map(str, claimed))}), so it is not "
            f"shown as attempt {wanted} of {ti.describe()}.",
        )
    return claimed[4]


def read_output(ti: TaskInstanceId, try_number: int | None, max_bytes: int | None = None) -> tuple[int, Loaded]:
    """Read an attempt's output notebook (None: the latest) and check that it is that attempt's own.

    Returns the try number and the notebook; raises ``OutputNotFound`` saying why nothing can be shown, ``OutputTooLarge``
    when the file is larger than ``max_bytes`` (checked before reading it).
    """
    wanted, record, opened = _opened(ti, try_number)
    location = record.location
    if max_bytes is not None and opened.size > max_bytes:
        opened.close()
        raise OutputTooLarge(wanted, location, opened.size, max_bytes)
    try:
        data = opened.read_all()
    except Exception as exc:  # noqa: BLE001
        raise OutputNotFound("unreachable", "Output notebook unreachable",
                             f"Reading {location} (connection {record.conn_id!r}) failed: {exc}.") from None
    try:
        notebook = json.loads(data)
    except ValueError:
        notebook = None
    meta = ((notebook.get("metadata") if isinstance(notebook, dict) else None) or {})
    number = _check_identity(ti, wanted, location, meta.get("airflow") if isinstance(meta, dict) else None)
    return number, Loaded(record, data, notebook)


# Versions of files whose identity a streaming scan has checked: a second download does not scan again.
_verified: OrderedDict[tuple[Any, ...], int] = OrderedDict()
_verified_lock = threading.Lock()


def open_download(ti: TaskInstanceId, try_number: int | None) -> tuple[int, LocationRecord, safe_read.Opened]:
    """An attempt's notebook, checked to be that attempt's own, opened at its start to be streamed as it is.

    The check reads the file once in chunks (``scan_airflow_metadata``: bounded memory whatever the size); a local
    file is then streamed from the same open file, an object from a second read.
    """
    wanted, record, opened = _opened(ti, try_number)
    with _verified_lock:
        number = _verified.get((record.location,) + opened.identity)
    if number is None or (wanted is not None and number != wanted):
        try:
            meta = scan_airflow_metadata(opened.file)
        except OSError as exc:
            opened.close()
            raise OutputNotFound("unreachable", "Output notebook unreachable",
                                 f"Reading {record.location} failed: {exc}.") from None
        except Exception as exc:  # noqa: BLE001 - a store that failed half-way
            opened.close()
            raise OutputNotFound("unreachable", "Output notebook unreachable",
                                 f"Reading {record.location} (connection {record.conn_id!r}) failed: {exc}.") from None
        try:
            number = _check_identity(ti, wanted, record.location, meta)
        except OutputNotFound:
            opened.close()
            raise
        with _verified_lock:
            _verified[(record.location,) + opened.identity] = number
            while len(_verified) > 512:
                _verified.popitem(last=False)
        try:
            opened.file.seek(0)
        except Exception:  # noqa: BLE001 - a file that cannot seek: open it again
            opened.close()
            _, _, opened = _opened(ti, try_number)
    return number, record, opened


def load_airflow_metadata(ti: TaskInstanceId, try_number: int | None) -> Loaded:
    """An attempt's notebook with only its ``metadata.airflow`` (scanned in bounded memory, identity checked), for a
    notebook too large to parse whole: what it published is listed there."""
    wanted, record, opened = _opened(ti, try_number)
    try:
        meta = scan_airflow_metadata(opened.file)
    except Exception as exc:  # noqa: BLE001
        raise OutputNotFound("unreachable", "Output notebook unreachable",
                             f"Reading {record.location} failed: {exc}.") from None
    finally:
        opened.close()
    _check_identity(ti, wanted, record.location, meta)
    return Loaded(record, b"", {"metadata": {"airflow": meta}})
