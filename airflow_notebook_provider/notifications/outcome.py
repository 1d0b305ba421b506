"""What a notification says about an attempt: gathered from the callback's context, the attempt's XCom, its output
notebook (the failing cell, read as the viewer and the CLI read it) and its HTML report, with secret values starred.

Everything here is best effort: a notebook or report that cannot be read leaves a note in the message instead of
stopping it, since the notification matters most when something went wrong.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from airflow.providers.common.compat.sdk import redact

from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.links.notebook import task_instance_url, viewer_base_url, viewer_path, viewer_url
from airflow_notebook_provider.notebook.record import FailedCell, read_run
from airflow_notebook_provider.notebook.redact import MIN_LENGTH, PLACEHOLDER, Redactor, secret_strings
from airflow_notebook_provider.results import OUTPUT_XCOM_KEY, RECORD_XCOM_KEY, REPORTS_XCOM_KEY
from airflow_notebook_provider.task.outputs import LocationRecord, TaskInstanceId

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    content_type: str = "text/html"


@dataclass
class Outcome:
    """One attempt's end (or, for a DAG-level callback or a deadline alert, one DAG run's), as a message tells it.

    Available in ``subject`` and ``body`` templates as ``outcome``."""

    dag_id: str
    run_id: str | None
    state: str
    task_id: str | None = None
    map_index: int = -1
    try_number: int | None = None
    logical_date: str | None = None
    output_notebook: str | None = None
    failed_cell: FailedCell | None = None
    error: str | None = None
    """The exception the task failed with (its text, secrets starred), when there is one."""
    viewer_url: str | None = None
    task_url: str | None = None
    run_url: str | None = None
    report: str | None = None
    """Where the attempt's HTML report is, when it published one."""
    report_url: str | None = None
    """The viewer's download link of the HTML report."""
    attachment: Attachment | None = None
    deadline: Mapping[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    """Why something is missing from the message (the notebook could not be read, the report is too large...)."""

    @property
    def title(self) -> str:
        """``dag.task[map]`` or ``dag``: what the message is about."""
        if not self.task_id:
            return self.dag_id
        return f"{self.dag_id}.{self.task_id}" + (f"[{self.map_index}]" if self.map_index >= 0 else "")

    def to_json(self) -> dict[str, Any]:
        """The webhook's facts (the attachment left out: the JSON links the report instead)."""
        cell = self.failed_cell
        return {
            "dag_id": self.dag_id, "task_id": self.task_id, "run_id": self.run_id, "map_index": self.map_index,
            "try_number": self.try_number, "state": self.state, "logical_date": self.logical_date,
            "output_notebook": self.output_notebook,
            "failed_cell": None if cell is None else {
                "position": cell.position, "index": cell.index, "execution_count": cell.execution_count,
                "ename": cell.ename, "evalue": cell.evalue,
            },
            "error": self.error, "viewer_url": self.viewer_url, "task_url": self.task_url, "run_url": self.run_url,
            "report": self.report, "report_url": self.report_url,
            "deadline": dict(self.deadline) if self.deadline else None, "notes": list(self.notes),
        }


# -- secrets ----------------------------------------------------------------------------------------------------


def secret_cleaner(context: Mapping[str, Any]) -> Callable[[str], str]:
    """Stars the attempt's secret parameters in a text: the values the operator kept (``secret_parameters``) and
    whatever Airflow's secrets masker knows in this process (connection passwords, sensitive variables)."""
    task = context.get("task")
    kept = getattr(task, "_secret_values", None)  # NotebookOperator keeps its rendered secrets there (task.secrets)
    values = list(kept.values()) if isinstance(kept, Mapping) else []
    redactor = Redactor.of(values)
    escaped = sorted({html.escape(s) for v in values for s in secret_strings(v)
                      if len(s) >= MIN_LENGTH and html.escape(s) != s}, key=len, reverse=True)

    def clean(text: str) -> str:
        text = redactor.text(text) if redactor else text
        for form in escaped:  # as an HTML report writes it
            text = text.replace(form, PLACEHOLDER)
        masked = redact(text)
        return masked if isinstance(masked, str) else text

    return clean


# -- gathering --------------------------------------------------------------------------------------------------


def outcome_of(context: Mapping[str, Any], *, attach_report: bool, max_attachment_bytes: int, log: Any) -> Outcome:
    """The outcome a callback's ``context`` describes: a task instance's attempt, else its DAG run."""
    ti = context.get("ti")
    if ti is None or not getattr(ti, "task_id", None):
        return _run_outcome(context)
    tid = TaskInstanceId.of(ti)
    base = viewer_base_url()
    state = _state(getattr(ti, "state", None)) or "unknown"
    logical = context.get("logical_date")
    outcome = Outcome(
        dag_id=tid.dag_id, run_id=tid.run_id, task_id=tid.task_id, map_index=tid.map_index,
        try_number=getattr(ti, "try_number", None), state=state,
        logical_date=_iso(logical),
        run_url=f"{base}/dags/{quote(tid.dag_id, safe='')}/runs/{quote(tid.run_id, safe='')}",
    )
    outcome.task_url = task_instance_url(dag_id=tid.dag_id, run_id=tid.run_id, task_id=tid.task_id,
                                         map_index=tid.map_index, try_number=outcome.try_number)
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        outcome.error = f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, str) and exc:
        outcome.error = exc
    location, conn_id = _location(context, ti, outcome)
    if location is None:
        return outcome
    outcome.output_notebook = location
    outcome.viewer_url = viewer_url(dag_id=tid.dag_id, run_id=tid.run_id, task_id=tid.task_id,
                                    map_index=tid.map_index, try_number=outcome.try_number or 0)
    if not base:
        outcome.notes.append("Links are relative: set [api] base_url (or [notebook] viewer_base_url) to the Airflow "
                             "UI's address for full links.")
    hook = NotebookHook(conn_id=conn_id)
    try:
        outcome.failed_cell = read_run(json.loads(hook.read(location))).failed_cell
    except Exception as exc:  # noqa: BLE001 - the message still goes, saying what could not be read
        log.warning("NotebookNotifier: could not read the output notebook %s (%s); the message names no failing "
                    "cell.", location, exc)
        outcome.notes.append(f"The output notebook could not be read ({type(exc).__name__}).")
    _add_report(outcome, ti, hook, attach_report=attach_report, max_bytes=max_attachment_bytes, log=log)
    return outcome


def _iso(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value.isoformat()) if hasattr(value, "isoformat") else str(value)


def _state(value: Any) -> str | None:
    value = getattr(value, "value", value)
    return str(value) if value else None


def _pull(ti: Any, key: str) -> Any:
    return ti.xcom_pull(task_ids=ti.task_id, key=key, map_indexes=TaskInstanceId.of(ti).map_index)


def _location(context: Mapping[str, Any], ti: Any, outcome: Outcome) -> tuple[str | None, str | None]:
    """This attempt's output location and the connection that reaches it: XCom, pushed before the kernel started
    (Airflow clears a task's XComs when a try starts, so what is there is this try's); None when the attempt ended
    before it chose one."""
    try:
        record = LocationRecord.parse(_pull(ti, RECORD_XCOM_KEY))
        location = record.location if record else _pull(ti, OUTPUT_XCOM_KEY)
    except Exception as exc:  # noqa: BLE001 - no XCom is no notebook, not a reason to stay silent
        outcome.notes.append(f"XCom could not be read ({type(exc).__name__}).")
        return None, None
    if not isinstance(location, str) or not location:
        outcome.notes.append("The attempt wrote no output notebook (it ended before its kernel started).")
        return None, None
    if record and record.try_number not in (None, outcome.try_number):
        outcome.notes.append(f"The output notebook is attempt {record.try_number}'s; this attempt wrote none.")
        return None, None
    # The operator's connection (rendered for this try) first, as the viewer does; the record's otherwise.
    task_conn = getattr(context.get("task"), "conn_id", None)
    return location, task_conn if isinstance(task_conn, str) and task_conn else (record.conn_id if record else None)


def _add_report(outcome: Outcome, ti: Any, hook: NotebookHook, *, attach_report: bool, max_bytes: int,
                log: Any) -> None:
    try:
        reports = _pull(ti, REPORTS_XCOM_KEY)
    except Exception:  # noqa: BLE001 - no reports XCom: none published
        return
    location = reports.get("html") if isinstance(reports, Mapping) else None
    if not isinstance(location, str) or not location:
        return
    outcome.report = location
    query = {"run_id": outcome.run_id, "task_id": outcome.task_id, "map_index": outcome.map_index,
             "try_number": outcome.try_number, "format": "html"}
    outcome.report_url = f"{viewer_base_url()}{viewer_path(outcome.dag_id, 'report')}?{urlencode(query)}"
    if not attach_report:
        return
    try:
        size = _size(hook, location)
        if size is not None and size > max_bytes:
            outcome.notes.append(f"The HTML report ({size:,} bytes) is over the attachment limit ({max_bytes:,}); "
                                 "it is linked instead.")
            return
        data = hook.read(location)
    except Exception as exc:  # noqa: BLE001 - linked instead
        log.warning("NotebookNotifier: could not read the HTML report %s (%s); it is linked instead.", location, exc)
        outcome.notes.append(f"The HTML report could not be read ({type(exc).__name__}); it is linked instead.")
        return
    if len(data) > max_bytes:
        outcome.notes.append(f"The HTML report ({len(data):,} bytes) is over the attachment limit ({max_bytes:,}); "
                             "it is linked instead.")
        return
    outcome.attachment = Attachment(location.rstrip("/").rsplit("/", 1)[-1] or "report.html", data)


def _size(hook: NotebookHook, location: str) -> int | None:
    """The report's size without reading it, where the store says (a report may be large)."""
    try:
        return int(hook.path(location).stat().st_size)
    except Exception:  # noqa: BLE001 - read it and count
        return None


def _run_outcome(context: Mapping[str, Any]) -> Outcome:
    """A DAG run's outcome: a DAG-level callback (``dag_run`` an object) or a deadline alert (``dag_run`` the API's
    JSON, with ``deadline``)."""
    run = context.get("dag_run")
    get = run.get if isinstance(run, Mapping) else (lambda k, d=None: getattr(run, k, d))
    dag_id = str(get("dag_id") or getattr(context.get("dag"), "dag_id", "") or "?")
    run_id = get("run_id") or get("dag_run_id")
    deadline = context.get("deadline")
    state = "deadline missed" if deadline else (_state(get("state")) or "unknown")
    logical = get("logical_date")
    outcome = Outcome(dag_id=dag_id, run_id=str(run_id) if run_id else None, state=state,
                      logical_date=_iso(logical),
                      deadline={k: str(v) for k, v in deadline.items()} if isinstance(deadline, Mapping) else None)
    if run_id:
        outcome.run_url = f"{viewer_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(str(run_id), safe='')}"
    reason = context.get("reason")
    if isinstance(reason, str) and reason:
        outcome.error = reason
    return outcome


# -- the default texts ------------------------------------------------------------------------------------------


def default_subject(o: Outcome) -> str:
    """``[Airflow] failed: dag.task, attempt 2, run manual__...: ZeroDivisionError at cell 3``."""
    attempt = f", attempt {o.try_number}" if o.try_number else ""
    subject = f"[Airflow] {o.state}: {o.title}{attempt}, run {o.run_id or '?'}"
    if o.failed_cell is not None and o.failed_cell.ename:
        subject += f": {o.failed_cell.ename} at cell {o.failed_cell.position}"
    return subject


def default_body(o: Outcome) -> str:
    """A plain-text message a person can act on: what ran, how it ended, where it failed, where to look."""
    lines = [f"DAG:      {o.dag_id}"]
    if o.task_id:
        lines.append(f"Task:     {o.task_id}" + (f" (map index {o.map_index})" if o.map_index >= 0 else ""))
    lines.append(f"Run:      {o.run_id or '?'}")
    if o.logical_date:
        lines.append(f"Logical date: {o.logical_date}")
    if o.try_number:
        lines.append(f"Attempt:  {o.try_number}")
    lines.append(f"State:    {o.state}")
    if o.deadline:
        lines.append(f"Deadline: {o.deadline.get('deadline_time', '?')}")
    cell = o.failed_cell
    if cell is not None:
        count = f" (In [{cell.execution_count}])" if cell.execution_count else ""
        error = ": ".join(x for x in (cell.ename, cell.evalue) if x) or "the run stopped"
        lines += ["", f"Failed at cell {cell.position}{count}: {error}"]
    elif o.error:
        lines += ["", f"Error: {o.error}"]
    lines.append("")
    if o.viewer_url:
        lines.append(f"Output notebook (viewer): {o.viewer_url}")
    if o.output_notebook:
        lines.append(f"Output notebook location: {o.output_notebook}")
    if o.report:
        lines.append("HTML report: " + ("attached" if o.attachment else (o.report_url or o.report)))
    if o.task_url:
        lines.append(f"Task instance: {o.task_url}")
    if o.run_url:
        lines.append(f"DAG run: {o.run_url}")
    if o.notes:
        lines += ["", *(f"Note: {note}" for note in o.notes)]
    return "\n".join(lines) + "\n"
