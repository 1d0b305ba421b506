"""The notebook viewer: an Airflow 3 plugin (FastAPI app in the api-server) that shows each attempt's output notebook.

Routes (under ``/notebook``), all identified by a task instance and a try, never by a path or URL:

- ``/view``: the attempt's page (header, failure, attempts list) with the rendered notebook;
- ``/download``: the output notebook's original bytes, to open in Jupyter;
- ``/attempts``: the task instance's attempts as JSON;
- ``/report`` (``format=html|markdown|pdf``) and ``/file`` (``path=out/a.csv``): what the attempt published beside its
  notebook (``engine.publish``), as attachments: only what its notebook lists in ``metadata.airflow.reports`` /
  ``files``, and only at the location derived from the attempt's own output location (never a recorded path
  elsewhere);
- ``/compare``: this attempt against the previous one, the task's last successful run, or any try picked from a list
  (``engine.compare``, the comparison ``airflow-notebook diff`` prints).

An attempt whose notebook ``airflow-notebook clean`` removed shows "removed by retention on <date>" (its record file
is kept as a tombstone, see ``retention``), not an error.

Airflow does not authenticate plugin apps: every route depends on ``requires_access_dag`` (Airflow's auth manager,
the same token the UI uses, from the ``Authorization`` header or the UI's cookie), so a request without a user gets
401 and a user who may not read the DAG's task instances gets 403.

The notebook's HTML and JavaScript come from users' code. The page is served with
``Content-Security-Policy: sandbox ...; script-src 'none'``: the browser gives it an opaque origin (no access to
Airflow's cookies, storage or API responses) and runs no script, so nothing in a notebook can act with the
viewer's Airflow session. Forms, external images and connections are refused as well. ``view=report`` renders the page as the HTML
report does (code inputs and the injected-parameters cell left out), under the same policy. Reports and files are
downloads served with ``Content-Security-Policy: sandbox; default-src 'none'``.
"""

from __future__ import annotations

import json
import mimetypes
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_notebook_provider import outputs
from airflow_notebook_provider.engine.compare import compare
from airflow_notebook_provider.engine.errors import NotebookInputError
from airflow_notebook_provider.engine.publish import REPORT_FORMATS, beside
from airflow_notebook_provider.engine.record import read_run
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.links.notebook import VIEWER_PREFIX, task_instance_url, viewer_base_url
from airflow_notebook_provider.outputs import Loaded, OutputNotFound, TaskInstanceId
from airflow_notebook_provider.plugins import compare_page, page
from airflow_notebook_provider.plugins.attempts import (
    Attempt,
    TaskTry,
    ViewerError,
    last_success,
    list_attempts,
    task_tries,
)
from airflow_notebook_provider.retention import removal_note

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
_can_read = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))


def _error(exc: ViewerError, links: list[tuple[str, str]] | None = None) -> HTMLResponse:
    return HTMLResponse(page.error_page(exc.status, exc.title, exc.detail, links), status_code=exc.status,
                        headers=SECURITY_HEADERS)


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
    """What every route takes: a task-instance identity (never a path or URL); read from the query string."""

    dag_id: str = Query("")
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
    """The tombstone ``retention.clean`` left in the attempt's record file, or None."""
    try:
        latest = outputs.xcom_record(ti)
        hook = NotebookHook(conn_id=latest.conn_id if latest else None, retry_seconds=outputs.READ_RETRY_SECONDS)
        return removal_note(json.loads(hook.read(outputs.record_location(ti, try_number))))
    except Exception:  # noqa: BLE001 - no record, unreadable store: no tombstone, the original error stands
        return None


def load(ti: TaskInstanceId, try_number: int) -> Loaded:
    """The attempt's notebook, checked to be that attempt's own (``outputs.load``); else an error page's reason."""
    try:
        return outputs.load(ti, try_number)[1]
    except OutputNotFound as exc:
        if exc.reason == "missing" and (note := removed_by_retention(ti, try_number)) is not None:
            raise Removed(ti, try_number, note) from None
        raise ViewerError(502 if exc.reason == "unreachable" else 404, exc.title, exc.detail) from None


def published_reports(loaded: Loaded) -> dict[str, str]:
    """The reports the attempt's notebook lists (``metadata.airflow.reports``), format -> location, keeping only
    those at the location derived from the attempt's own output (``publish.beside``): nothing else is served."""
    recorded = _airflow_meta(loaded).get("reports")
    if not isinstance(recorded, dict):
        return {}
    return {fmt: recorded[fmt] for fmt, ext in REPORT_FORMATS.items()
            if recorded.get(fmt) == beside(loaded.record.location, ext)}


def _safe_relative(path: Any) -> bool:
    """A relative path without '..', '.' or empty segments, nor a NUL: a file's name under ``.files/``."""
    if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", path))


def published_files(loaded: Loaded) -> list[tuple[str, str, int | None]]:
    """The files the attempt's notebook lists (``metadata.airflow.files``) as (path, location, bytes), keeping only
    those at ``<output without .ipynb>.files/<path>`` with a path that stays inside that folder."""
    recorded = _airflow_meta(loaded).get("files")
    if not isinstance(recorded, list):
        return []
    folder = beside(loaded.record.location, ".files")
    out = []
    for item in recorded:
        if not isinstance(item, dict):
            continue
        path, location, size = item.get("path"), item.get("location"), item.get("bytes")
        if _safe_relative(path) and location == f"{folder}/{path}":
            out.append((str(path), location, size if isinstance(size, int) and not isinstance(size, bool) else None))
    return out


def _airflow_meta(loaded: Loaded) -> dict[str, Any]:
    meta = (loaded.notebook.get("metadata") or {}).get("airflow")
    return meta if isinstance(meta, dict) else {}


def read_published(loaded: Loaded, location: str) -> bytes:
    """Bytes the attempt published, read with the connection its notebook was read with (the record's)."""
    hook = NotebookHook(conn_id=loaded.record.conn_id, retry_seconds=outputs.READ_RETRY_SECONDS)
    try:
        return hook.read(location)
    except NotebookInputError:
        raise ViewerError(404, "Not found", f"{location} is listed in the notebook, but nothing is there any more "
                          "(deleted or moved?).") from None
    except Exception as exc:  # noqa: BLE001 - an unreachable store is an answer, never a stack trace
        raise ViewerError(502, "Unreachable", f"Reading {location} (connection {loaded.record.conn_id!r}) failed: "
                          f"{exc}. Check that the store is reachable from here.") from None


def _attachment(data: bytes, media_type: str, name: str) -> Response:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return Response(data, media_type=media_type,
                    headers={**DOWNLOAD_HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'})


def _file_stem(ti: TaskInstanceId, try_number: int) -> str:
    return (f"{ti.dag_id}.{ti.task_id}{f'.map-{ti.map_index}' if ti.map_index >= 0 else ''}"
            f".attempt-{try_number}")


def _url(route: str, ti: TaskInstanceId, try_number: int | None, **extra: Any) -> str:
    query: dict[str, Any] = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
                             "map_index": ti.map_index}
    if try_number is not None:
        query["try_number"] = try_number
    query.update(extra)
    # Root-relative: the page works whichever host name the browser used, in the UI's iframe too.
    return f"{_base_path()}{VIEWER_PREFIX}/{route}?{urlencode(query)}"


def _base_path() -> str:
    """The path of ``[notebook] viewer_base_url`` / ``[api] base_url`` (e.g. ``/airflow``), or empty."""
    return urlsplit(viewer_base_url()).path.rstrip("/")


@app.get("/view", dependencies=[_can_read], response_class=HTMLResponse)
def view(named: _Named, try_number: int | None = Query(None, ge=1), view: str = Query("")) -> Response:
    """The attempt's page; without ``try_number``, the latest attempt; ``view=report``: as the HTML report."""
    report = view == "report"
    attempts: list[Attempt] = []
    try:
        ti = named.identity()
        attempt, attempts = _choose(ti, try_number)
        try:
            loaded = load(ti, attempt.try_number)
        except ViewerError as exc:
            if attempt.in_progress and exc.status == 404:
                raise ViewerError(404, "Notebook not written yet",
                                  f"Attempt {attempt.try_number} of {ti.describe()} is {attempt.state}; its notebook "
                                  "appears when the kernel starts. Reload in a few seconds.") from None
            raise
        run = read_run(loaded.notebook)
        started = time.perf_counter()
        try:
            rendered = page.render_notebook(loaded.notebook, run.failed_cell, loaded.data, report=report)
        except Exception as exc:  # noqa: BLE001 - a notebook nbconvert cannot render is a page, not a trace
            raise ViewerError(502, "Output notebook unreadable",
                              f"{loaded.record.location} could not be rendered: {exc}") from None
        render_seconds = time.perf_counter() - started
    except ViewerError as exc:
        shown = try_number if try_number is not None else (attempts[-1].try_number if attempts else None)
        others = [(f"Attempt {a.try_number} ({a.state or 'no state'})", _url("view", ti, a.try_number))
                  for a in attempts if a.try_number != shown]
        if isinstance(exc, Removed):  # what happened to it, on a normal page: not an error
            return HTMLResponse(page.error_page(200, exc.title, exc.detail, others, show_status=False),
                                headers=SECURITY_HEADERS)
        return _error(exc, others)
    mode = {"view": "report"} if report else {}
    urls = {
        "self": _url("view", ti, attempt.try_number, **mode),
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
    body = page.page(rendered, head, f"{ti.task_id} attempt {attempt.try_number} — {ti.dag_id}")
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


@app.get("/compare", dependencies=[_can_read], response_class=HTMLResponse)
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
                            status_code=exc.status, headers=SECURITY_HEADERS)
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
    return HTMLResponse(body, headers=SECURITY_HEADERS)


@app.get("/download", dependencies=[_can_read])
def download(named: _Named, try_number: int | None = Query(None, ge=1)) -> Response:
    """The output notebook exactly as stored (the bytes the task wrote), as an .ipynb attachment."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = load(ti, attempt.try_number)
    except ViewerError as exc:
        return _error(exc)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{ti.dag_id}.{ti.task_id}"
                  f"{f'.map-{ti.map_index}' if ti.map_index >= 0 else ''}.attempt-{attempt.try_number}.ipynb")
    return Response(
        loaded.data,
        media_type="application/x-ipynb+json",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


@app.get("/report", dependencies=[_can_read])
def report_download(named: _Named, try_number: int | None = Query(None, ge=1),
                    fmt: str = Query("html", alias="format")) -> Response:
    """A report the attempt rendered (``report_formats``), as an attachment; 404 unless its notebook lists it at
    the location derived from the attempt's output."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = load(ti, attempt.try_number)
        location = published_reports(loaded).get(fmt)
        if location is None:
            raise ViewerError(404, "No such report", f"Attempt {attempt.try_number} of {ti.describe()} published no "
                              f"{fmt!r} report (see the task's report_formats).")
        data = read_published(loaded, location)
    except ViewerError as exc:
        return _error(exc)
    return _attachment(data, REPORT_TYPES[fmt], _file_stem(ti, attempt.try_number) + REPORT_FORMATS[fmt])


@app.get("/file", dependencies=[_can_read])
def file_download(named: _Named, try_number: int | None = Query(None, ge=1), path: str = Query("")) -> Response:
    """A file the attempt collected (``collect_files``), as an attachment; 404 unless its notebook lists ``path``
    under the attempt's own ``.files/`` folder."""
    try:
        ti = named.identity()
        attempt, _ = _choose(ti, try_number)
        loaded = load(ti, attempt.try_number)
        location = next((loc for p, loc, _ in published_files(loaded) if p == path), None)
        if location is None:
            raise ViewerError(404, "No such file", f"Attempt {attempt.try_number} of {ti.describe()} collected no "
                              f"file {path!r} (see the task's collect_files).")
        data = read_published(loaded, location)
    except ViewerError as exc:
        return _error(exc)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return _attachment(data, media_type, path.rsplit("/", 1)[-1])


@app.get("/attempts", dependencies=[_can_read])
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


def _root_relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# The UI loads external views in an iframe of its own origin: a root-relative href, under [api] base_url's path.
_BASE_PATH = _base_path()


class NotebookViewerPlugin(AirflowPlugin):
    """Registered by the provider (``get_provider_info``) and the ``airflow.plugins`` entry point.

    Serves the viewer under ``/notebook`` and adds a "Notebook" tab to every task instance page (the page says
    so when the task recorded no notebook).
    """

    name = "notebook_viewer"
    fastapi_apps = [{"app": app, "url_prefix": VIEWER_PREFIX, "name": "Notebook viewer"}]
    external_views = [
        {
            "name": "Notebook",
            "href": f"{_BASE_PATH}{VIEWER_PREFIX}/view?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}"
            "&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "notebook",
        }
    ]
