"""The notebook viewer: an Airflow 3 plugin (FastAPI app in the api-server) that shows each attempt's output notebook.

Routes (under ``/notebook/dags/<dag_id>``), all identified by a task instance and a try (``run_id``, ``task_id``,
``map_index``, ``try_number`` in the query string), never by a path or URL:

- ``/view``: the attempt's page: a header (state, parameters, failure, attempts list, links) and the notebook in a
  sandboxed frame, loaded from ``/render``;
- ``/render``: the notebook rendered by nbconvert (``view=report``: as the HTML report), the frame's document;
- ``/download``: the output notebook's original bytes, to open in Jupyter;
- ``/attempts``: the task instance's attempts as JSON;
- ``/report`` (``format=html|markdown|pdf``) and ``/file`` (``path=out/a.csv``): what the attempt published beside its
  notebook (``engine.publish``), as attachments: only what its notebook lists in ``metadata.airflow.reports`` /
  ``files``, and only at the location derived from the attempt's own output location (never a recorded path
  elsewhere);
- ``/compare``: this attempt against the previous one, the task's last successful run, or any try picked from a list
  (``notebook.compare``, the comparison ``airflow-notebook diff`` prints).

``/notebook/static/viewer.css`` is the pages' one stylesheet.

An attempt whose notebook ``airflow-notebook clean`` removed shows "removed by retention on <date>" (its record file
is kept as a tombstone, see ``retention``), not an error.

Airflow does not authenticate plugin apps: every route depends on ``may_read_notebooks``, which takes the user as
Airflow's own routes do (the UI's token, from the ``Authorization`` header or the UI's cookie) and asks the auth
manager about the DAG named in the path: reading its task instances and its task logs (what Airflow's log route
requires; the notebook is the task's output). No user: 401; not allowed: 403. The check does not rely on
``requires_access_dag``, which reads a ``dag_id`` from the query string only in releases with apache/airflow#60935.

The notebook's HTML and JavaScript come from users' code, so it is never part of the header page. ``/render`` is
served with ``Content-Security-Policy: sandbox ...; script-src 'none'`` (``NOTEBOOK_CSP``) and framed with a
``sandbox`` attribute: the browser gives it an opaque origin (no access to Airflow's cookies, storage or API
responses) and runs no script, so nothing in a notebook can act with the viewer's Airflow session, and, drawn inside
its frame, it cannot cover or restyle the header above it. The header, compare and error pages (``PAGE_CSP``) run no
script and allow no inline style: their only stylesheet is the viewer's. Reports and files are downloads served
with ``Content-Security-Policy: sandbox; default-src 'none'``.
"""

from __future__ import annotations

import inspect
import mimetypes
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from airflow_notebook_provider.engine.publish import REPORT_FORMATS
from airflow_notebook_provider.links.notebook import task_instance_url, viewer_path
from airflow_notebook_provider.maintenance.retention import removal_note
from airflow_notebook_provider.notebook.compare import compare
from airflow_notebook_provider.notebook.record import read_run
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import compare_page, lookup, page, safe_read
from airflow_notebook_provider.viewer.attempts import (
    Attempt,
    TaskTry,
    ViewerError,
    last_success,
    list_attempts,
    task_tries,
)
from airflow_notebook_provider.viewer.lookup import Loaded, OutputNotFound
from airflow_notebook_provider.viewer.plugin import base_path
from airflow_notebook_provider.viewer.published import attachment, file_stem, published_files, published_reports

NOTEBOOK_CSP = (
    "sandbox allow-downloads allow-popups allow-popups-to-escape-sandbox; default-src 'none'; script-src 'none'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": NOTEBOOK_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}
# The header, compare and error pages: our own escaped HTML, no script, no inline style, the notebook only framed.
PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; frame-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}
DOWNLOAD_CSP = "sandbox; default-src 'none'"
DOWNLOAD_HEADERS = {
    "Content-Security-Policy": DOWNLOAD_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}
REPORT_TYPES = {"html": "text/html; charset=utf-8", "markdown": "text/markdown; charset=utf-8",
                "pdf": "application/pdf"}
# The UI substitutes {MAP_INDEX} only on a mapped task instance's page; elsewhere the placeholder stays as is.
_MAP_INDEX = re.compile(r"-?\d{1,9}")

app = FastAPI(title="Notebook viewer", docs_url=None, redoc_url=None, openapi_url=None)
# What Airflow requires to read a task instance and its log (the log route): both, as the notebook is its output.
NEEDED = (DagAccessEntity.TASK_INSTANCE, DagAccessEntity.TASK_LOGS)


def _dag_details(dag_id: str) -> DagDetails:
    """The DAG as the auth manager wants it: with its team on releases that have teams (3.1+), as
    ``requires_access_dag`` builds it; only the id on 3.0."""
    if "team_name" in inspect.signature(DagDetails).parameters:
        from airflow.models.dag import DagModel

        team_of = getattr(DagModel, "get_team_name", None)
        return DagDetails(id=dag_id, team_name=team_of(dag_id) if team_of else None)
    return DagDetails(id=dag_id)


def may_read_notebooks(dag_id: Annotated[str, PathParam()], user: Annotated[BaseUser, Depends(get_user)]) -> None:
    """Every route's access check: the user (``get_user``: 401 without one) may read the task instances and the task
    logs of the DAG in the path; else 403. The path's DAG is the one served: the query string names none."""
    manager = get_auth_manager()
    details = _dag_details(dag_id)
    for entity in NEEDED:
        if not manager.is_authorized_dag(method="GET", access_entity=entity, details=details, user=user):
            raise HTTPException(403, f"Forbidden: reading the notebooks of DAG {dag_id!r} needs read access to its "
                                     "task instances and task logs; ask an admin for them.")


_can_read = Depends(may_read_notebooks)
DAG_ROUTE = "/dags/{dag_id}"


def _error(exc: ViewerError, links: list[tuple[str, str]] | None = None) -> HTMLResponse:
    return HTMLResponse(page.error_page(exc.status, exc.title, exc.detail, links), status_code=exc.status,
                        headers=PAGE_HEADERS)


def _identity(dag_id: str, run_id: str, task_id: str, map_index: str) -> TaskInstanceId:
    """The task instance a request names; the viewer takes nothing else (no path, no URL)."""
    if not (dag_id and run_id and task_id):
        raise ViewerError(404, "No such task instance",
                          "The viewer shows a task attempt's notebook: give dag_id, run_id, task_id (and map_index, "
                          "try_number); follow the task's \"Output notebook\" link.")
    if map_index in ("", "{MAP_INDEX}"):
        return TaskInstanceId(dag_id, run_id, task_id, -1)
    if not _MAP_INDEX.fullmatch(map_index):
        raise ViewerError(404, "No such task instance", f"map_index must be an integer, got {map_index!r}.")
    return TaskInstanceId(dag_id, run_id, task_id, int(map_index))


@dataclass
class _Query:
    """What every route takes: a task-instance identity (never a path or URL): the DAG from the path (the one
    ``may_read_notebooks`` checked), the rest from the query string."""

    dag_id: str = PathParam()
    run_id: str = Query("")
    task_id: str = Query("")
    map_index: str = Query("-1")

    def identity(self) -> TaskInstanceId:
        return _identity(self.dag_id, self.run_id, self.task_id, self.map_index)


_Named = Annotated[_Query, Depends()]


def _choose(ti: TaskInstanceId, try_number: int | None) -> tuple[Attempt, list[Attempt]]:
    attempts = list_attempts(ti)
    if not attempts:
        raise ViewerError(404, "No such task instance",
                          f"{ti.describe()} has no attempt: check the DAG, run and task, or wait until it starts.")
    if try_number is None:
        return attempts[-1], attempts
    for attempt in attempts:
        if attempt.try_number == try_number:
            return attempt, attempts
    raise ViewerError(404, "No such attempt", f"{ti.describe()} has attempts "
                      f"{', '.join(str(a.try_number) for a in attempts)}, not {try_number}.")


class Removed(ViewerError):
    """The attempt's notebook was removed by retention (``airflow-notebook clean``): a fact to show, not a fault."""

    def __init__(self, ti: TaskInstanceId, try_number: int, note: dict[str, Any]) -> None:
        self.when = str(note.get("at") or "an unknown date")
        super().__init__(410, f"Removed by retention on {self.when[:10]}",
                         f"The output notebook of attempt {try_number} of {ti.describe()} was removed by retention on "
                         f"{self.when} ({note.get('by') or 'airflow-notebook clean'}; {note.get('bytes', '?')} bytes). "
                         "Its record is kept; the task log still holds what the run printed.")


def removed_by_retention(ti: TaskInstanceId, try_number: int) -> dict[str, Any] | None:
    """The tombstone ``retention.clean`` left in the attempt's record file, or None: read as any recorded location
    (an allowed, regular, small file), with the connection of the task's operator."""
    try:
        return removal_note(lookup.read_record_file(ti, try_number, lookup.task_facts(ti).conn_id))
    except Exception:  # noqa: BLE001 - no record, unreadable store: no tombstone, the original error stands
        return None


class TooLarge(ViewerError):
    """The notebook is larger than ``[notebook] viewer_max_bytes``: a fact with a way out (the download)."""

    def __init__(self, exc: lookup.TooLarge) -> None:
        super().__init__(200, exc.title, exc.detail)
        self.size, self.limit, self.try_number = exc.size, exc.limit, exc.try_number


def _viewer_error(ti: TaskInstanceId, try_number: int, exc: OutputNotFound) -> ViewerError:
    if isinstance(exc, lookup.TooLarge):
        return TooLarge(exc)
    if exc.reason == "missing" and (note := removed_by_retention(ti, try_number)) is not None:
        return Removed(ti, try_number, note)
    return ViewerError(502 if exc.reason == "unreachable" else 404, exc.title, exc.detail)


def load(ti: TaskInstanceId, try_number: int) -> Loaded:
    """The attempt's notebook, checked to be that attempt's own (``lookup.load``), if it is at most
    ``[notebook] viewer_max_bytes`` (checked before reading it); else an error page's reason."""
    try:
        return lookup.load(ti, try_number, max_bytes=safe_read.max_bytes())[1]
    except OutputNotFound as exc:
        raise _viewer_error(ti, try_number, exc) from None


def open_published(loaded: Loaded, location: str) -> safe_read.Opened:
    """A file the attempt published, opened to be streamed: at an allowed location, a regular file, read with the
    connection its notebook was read with (the task operator's)."""
    try:
        return safe_read.open_checked(safe_read.resolve(location, loaded.record.conn_id), lookup.READ_RETRY_SECONDS)
    except (safe_read.NotAllowed, safe_read.NotRegular):
        raise ViewerError(404, "Not served", f"{location} is listed in the notebook, but it is not a regular file "
                          "under [notebook] output_base or viewer_allowed_locations, so it is not read.") from None
    except safe_read.Missing:
        raise ViewerError(404, "Not found", f"{location} is listed in the notebook, but nothing is there any more "
                          "(deleted or moved?).") from None
    except Exception as exc:  # noqa: BLE001 - an unreachable store is an answer, never a stack trace
        raise ViewerError(502, "Unreachable", f"Reading {location} (connection {loaded.record.conn_id!r}) failed: "
                          f"{exc}. Check that the store is reachable from here.") from None


def _attachment(opened: safe_read.Opened, media_type: str, name: str) -> Response:
    """The file streamed in chunks (never whole in memory), as a download."""
    return StreamingResponse(opened.chunks(), media_type=media_type,
                             headers={**DOWNLOAD_HEADERS, "Content-Disposition": attachment(name),
                                      "Content-Length": str(opened.size)})


def _url(route: str, ti: TaskInstanceId, try_number: int | None, **extra: Any) -> str:
    query: dict[str, Any] = {"run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}
    if try_number is not None:
        query["try_number"] = try_number
    query.update(extra)
    # Root-relative: the page works whichever host name the browser used, in the UI's iframe too.
    return f"{base_path()}{viewer_path(ti.dag_id, route)}?{urlencode(query)}"


def _notebook_of(ti: TaskInstanceId, attempt: Attempt) -> Loaded:
    """The attempt's notebook (``load``); a running attempt without one yet is said so."""
    try:
        return load(ti, attempt.try_number)
    except ViewerError as exc:
        if attempt.in_progress and exc.status == 404:
            raise ViewerError(404, "Notebook not written yet",
                              f"Attempt {attempt.try_number} of {ti.describe()} is {attempt.state}; its notebook "
                              "appears when the kernel starts. Reload in a few seconds.") from None
        raise


@app.get(DAG_ROUTE + "/view", dependencies=[_can_read], response_class=HTMLResponse)
def view(named: _Named, try_number: int | None = Query(None, ge=1), view: str = Query("")) -> Response:
    """The attempt's page; without ``try_number``, the latest attempt; ``view=report``: as the HTML report.

    The header is built here; the notebook is the frame's document, from ``/render`` (never inlined)."""
    report = view == "report"
    attempts: list[Attempt] = []
    try:
        ti = named.identity()
        attempt, attempts = _choose(ti, try_number)
        loaded = _notebook_of(ti, attempt)
        run = read_run(loaded.notebook)
    except ViewerError as exc:
        shown = try_number if try_number is not None else (attempts[-1].try_number if attempts else None)
        others = [(f"Attempt {a.try_number} ({a.state or 'no state'})", _url("view", ti, a.try_number))
                  for a in attempts if a.try_number != shown]
        if isinstance(exc, Removed):  # what happened to it, on a normal page: not an error
            return HTMLResponse(page.error_page(200, exc.title, exc.detail, others, show_status=False),
                                headers=PAGE_HEADERS)
        if isinstance(exc, TooLarge):  # said, with the way to open it: the download streams it
            return HTMLResponse(page.error_page(200, exc.title, exc.detail, others, show_status=False,
                                                download=_url("download", ti, exc.try_number)),
                                headers=PAGE_HEADERS)
        return _error(exc, others)
    mode = {"view": "report"} if report else {}
    urls = {
        "self": _url("view", ti, attempt.try_number, **mode),
        "notebook": _url("render", ti, attempt.try_number, **mode),
        "download": _url("download", ti, attempt.try_number),
        "airflow": _root_relative(task_instance_url(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                                                    map_index=ti.map_index, try_number=attempt.try_number)),
    }
    compare_links = [("previous attempt", _url("compare", ti, attempt.try_number, against="previous"))
                     ] if attempt.try_number > 1 else []
    compare_links += [("last successful run", _url("compare", ti, attempt.try_number, against="last_success")),
                      ("an attempt from the list…", _url("compare", ti, attempt.try_number, against="pick"))]
    reports = [(fmt, _url("report", ti, attempt.try_number, format=fmt)) for fmt in published_reports(loaded)]
    files = [(path, _url("file", ti, attempt.try_number, path=path), size)
             for path, _, size in published_files(loaded)]
    toggle = (("Full notebook", _url("view", ti, attempt.try_number)) if report
              else ("Report view", _url("view", ti, attempt.try_number, view="report")))
    head = page.header(ti=ti, attempt=attempt, attempts=attempts, loaded=loaded, run=run, urls=urls,
                       attempt_url=lambda n: _url("view", ti, n, **mode), compare_links=compare_links,
                       reports=reports, files=files, toggle=toggle)
    body = page.page(head, urls["notebook"], f"{ti.task_id} attempt {attempt.try_number} — {ti.dag_id}")
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(DAG_ROUTE + "/render", dependencies=[_can_read], response_class=HTMLResponse)
def render(named: _Named, try_number: int | None = Query(None, ge=1), view: str = Query("")) -> Response:
    """The notebook alone, rendered by nbconvert with the failing cell framed: the document of ``/view``'s
    sandboxed frame, served with ``NOTEBOOK_CSP`` (opaque origin, no script). ``view=report``: as the report."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = _notebook_of(ti, attempt)
        run = read_run(loaded.notebook)
        started = time.perf_counter()
        try:
            rendered = page.render_notebook(loaded.notebook, run.failed_cell, loaded.data, report=view == "report")
        except Exception as exc:  # noqa: BLE001 - a notebook nbconvert cannot render is a page, not a trace
            raise ViewerError(502, "Output notebook unreadable",
                              f"{loaded.record.location} could not be rendered: {exc}") from None
        render_seconds = time.perf_counter() - started
    except ViewerError as exc:
        return _error(exc)
    body = page.notebook_document(rendered, f"{ti.task_id} attempt {attempt.try_number} — {ti.dag_id}")
    headers = {**SECURITY_HEADERS, "Server-Timing": f"render;dur={render_seconds * 1000:.0f}"}
    return HTMLResponse(body, headers=headers)


def _other_side(ti: TaskInstanceId, attempt: Attempt, attempts: list[Attempt], against: str, against_run_id: str,
                against_try: int | None) -> tuple[TaskInstanceId, int, str]:
    """The try to compare with: (its task instance, its try number, how the page names it)."""
    if against_try is not None:
        other = TaskInstanceId(ti.dag_id, against_run_id or ti.run_id, ti.task_id, ti.map_index)
        same_run = other.run_id == ti.run_id
        return other, against_try, f"attempt {against_try}" + ("" if same_run else f" of run {other.run_id}")
    if against == "previous":
        earlier = [a for a in attempts if a.try_number < attempt.try_number]
        if not earlier:
            raise ViewerError(404, "No previous attempt",
                              f"Attempt {attempt.try_number} is the first attempt of {ti.describe()}: compare it "
                              "with the last successful run, or pick an attempt from the list below.")
        return ti, earlier[-1].try_number, f"previous attempt ({earlier[-1].try_number})"
    if against == "last_success":
        found = last_success(ti.dag_id, ti.task_id, ti.map_index, other_than=(ti.run_id, attempt.try_number))
        if found is None:
            raise ViewerError(404, "No successful run to compare with",
                              f"Task {ti.task_id} of {ti.dag_id} has no successful attempt other than this one; "
                              "pick an attempt from the list below.")
        other = TaskInstanceId(ti.dag_id, found.run_id, ti.task_id, ti.map_index)
        return other, found.try_number, f"last successful run ({found.run_id}, attempt {found.try_number})"
    raise ViewerError(404, "Pick an attempt to compare with", "Choose one of the attempts listed below.")


@app.get(DAG_ROUTE + "/compare", dependencies=[_can_read], response_class=HTMLResponse)
def compare_view(
    named: _Named,
    try_number: int | None = Query(None, ge=1),
    against: str = Query("previous"),
    against_run_id: str = Query(""),
    against_try: int | None = Query(None, ge=1),
) -> Response:
    """This attempt (B) against another try of the same task (A): ``against`` = ``previous`` or
    ``last_success``, or ``against_run_id`` / ``against_try`` for any try. Both are the same DAG's, so the one
    access check covers both."""
    choices: list[tuple[str, str, bool]] = []
    try:
        ti = named.identity()
        attempt, attempts = _choose(ti, try_number)
        this = attempt.try_number
        tries = task_tries(ti.dag_id, ti.task_id, ti.map_index)

        def pick(t: TaskTry) -> tuple[str, str, bool]:
            run = "this run" if t.run_id == ti.run_id else f"run {t.run_id}"
            current = t.run_id == (against_run_id or ti.run_id) and t.try_number == against_try
            return (f"{run}, attempt {t.try_number} ({t.state or 'no state'})",
                    _url("compare", ti, this, against_run_id=t.run_id, against_try=t.try_number), current)

        choices = [("previous attempt", _url("compare", ti, this, against="previous"),
                    against_try is None and against == "previous"),
                   ("last successful run", _url("compare", ti, this, against="last_success"),
                    against_try is None and against == "last_success")]
        choices += [pick(t) for t in tries if (t.run_id, t.try_number) != (ti.run_id, this)]
        other_ti, other_try, other_label = _other_side(ti, attempt, attempts, against, against_run_id, against_try)
        loaded_b = load(ti, this)
        loaded_a = load(other_ti, other_try)
        other_state = next((t.state for t in tries if (t.run_id, t.try_number) == (other_ti.run_id, other_try)), None)
    except ViewerError as exc:
        return HTMLResponse(page.error_page(exc.status, exc.title, exc.detail, [(c[0], c[1]) for c in choices]),
                            status_code=exc.status, headers=PAGE_HEADERS)
    result = compare(loaded_a.notebook, loaded_b.notebook, label_a=loaded_a.record.location,
                     label_b=loaded_b.record.location)
    body = compare_page.render(
        result,
        title=f"Compare {ti.task_id}: attempt {this} against the {other_label}",
        side_a=(f"{other_label}: {loaded_a.record.location}", _url("view", other_ti, other_try), other_state),
        side_b=(f"this attempt ({this}): {loaded_b.record.location}", _url("view", ti, this), attempt.state),
        choices=choices,
        back_url=_url("view", ti, this),
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(DAG_ROUTE + "/download", dependencies=[_can_read])
def download(named: _Named, try_number: int | None = Query(None, ge=1)) -> Response:
    """The output notebook exactly as stored (the bytes the task wrote), as an .ipynb attachment.

    Up to ``viewer_max_bytes`` it is read and parsed as the page does; a larger one is streamed in chunks after a
    bounded-memory scan of its ``metadata.airflow`` (``lookup.open_download``): never whole in memory."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        try:
            loaded: Loaded | None = load(ti, attempt.try_number)
        except TooLarge:
            loaded = None
        if loaded is None:
            try:
                _, _, opened = lookup.open_download(ti, attempt.try_number)
            except OutputNotFound as exc:
                raise _viewer_error(ti, attempt.try_number, exc) from None
    except ViewerError as exc:
        return _error(exc)
    headers = {**SECURITY_HEADERS, "Content-Disposition": attachment(file_stem(ti, attempt.try_number) + ".ipynb")}
    if loaded is not None:
        return Response(loaded.data, media_type="application/x-ipynb+json", headers=headers)
    return StreamingResponse(opened.chunks(), media_type="application/x-ipynb+json",
                             headers={**headers, "Content-Length": str(opened.size)})


def _published_by(ti: TaskInstanceId, try_number: int) -> Loaded:
    """The attempt's notebook for its lists of reports and files: parsed whole up to ``viewer_max_bytes``, else
    only its ``metadata.airflow`` (scanned in bounded memory)."""
    try:
        return load(ti, try_number)
    except TooLarge:
        try:
            return lookup.load_airflow_metadata(ti, try_number)
        except OutputNotFound as exc:
            raise _viewer_error(ti, try_number, exc) from None


@app.get(DAG_ROUTE + "/report", dependencies=[_can_read])
def report_download(named: _Named, try_number: int | None = Query(None, ge=1),
                    fmt: str = Query("html", alias="format")) -> Response:
    """A report the attempt rendered (``report_formats``), as an attachment; 404 unless its notebook lists it at
    the location derived from the attempt's output."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = _published_by(ti, attempt.try_number)
        location = published_reports(loaded).get(fmt)
        if location is None:
            raise ViewerError(404, "No such report", f"Attempt {attempt.try_number} of {ti.describe()} published no "
                              f"{fmt!r} report (see the task's report_formats).")
        opened = open_published(loaded, location)
    except ViewerError as exc:
        return _error(exc)
    return _attachment(opened, REPORT_TYPES[fmt], file_stem(ti, attempt.try_number) + REPORT_FORMATS[fmt])


@app.get(DAG_ROUTE + "/file", dependencies=[_can_read])
def file_download(named: _Named, try_number: int | None = Query(None, ge=1), path: str = Query("")) -> Response:
    """A file the attempt collected (``collect_files``), as an attachment; 404 unless its notebook lists ``path``
    under the attempt's own ``.files/`` folder."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = _published_by(ti, attempt.try_number)
        location = next((loc for p, loc, _ in published_files(loaded) if p == path), None)
        if location is None:
            raise ViewerError(404, "No such file", f"Attempt {attempt.try_number} of {ti.describe()} collected no "
                              f"file {path!r} (see the task's collect_files).")
        opened = open_published(loaded, location)
    except ViewerError as exc:
        return _error(exc)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return _attachment(opened, media_type, path.rsplit("/", 1)[-1])


@app.get(DAG_ROUTE + "/attempts", dependencies=[_can_read])
def attempts(named: _Named) -> Response:
    """Every attempt of the task instance with its state, times and viewer links (JSON)."""
    try:
        ti = named.identity()
        found = list_attempts(ti)
    except ViewerError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    return JSONResponse(
        {
            "attempts": [
                {
                    "try_number": a.try_number,
                    "state": a.state,
                    "start_date": a.start_date.isoformat() if a.start_date else None,
                    "end_date": a.end_date.isoformat() if a.end_date else None,
                    "duration": a.duration,
                    "in_progress": a.in_progress,
                    "view_url": _url("view", ti, a.try_number),
                    "download_url": _url("download", ti, a.try_number),
                }
                for a in found
            ]
        },
        headers={"Cache-Control": "private, no-cache"},
    )


@app.get("/" + page.STYLESHEET_ROUTE, include_in_schema=False)
def stylesheet() -> Response:
    """The header, compare and error pages' one stylesheet (no data in it: served without a user)."""
    return Response(page.stylesheet(), media_type="text/css; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"})


def _root_relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
