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

Airflow does not authenticate plugin apps: every route depends on ``access.may_read_notebooks``, which takes the user as
Airflow's own routes do (the UI's token, from the ``Authorization`` header or the UI's cookie) and asks the auth
manager about the DAG named in the path: reading its task instances and its task logs (what Airflow's log route
requires; the notebook is the task's output). No user: 401; not allowed: 403. The check does not rely on
``requires_access_dag``, which reads a ``dag_id`` from the query string only in releases with apache/airflow#60935.

The notebook's HTML and JavaScript come from users' code, so it is never part of the header page. ``/render`` is
served with ``Content-Security-Policy: sandbox ...; script-src 'none'`` (``responses.NOTEBOOK_CSP``) and framed with a
``sandbox`` attribute: the browser gives it an opaque origin (no access to Airflow's cookies, storage or API
responses) and runs no script, so nothing in a notebook can act with the viewer's Airflow session, and, drawn inside
its frame, it cannot cover or restyle the header above it. The header, compare and error pages (``PAGE_CSP``) run no
script and allow no inline style: their only stylesheet is the viewer's. Reports and files are downloads served
with ``Content-Security-Policy: sandbox; default-src 'none'``.

This module holds the app and its page routes; beside it: ``access`` (the access check, the request's task
instance), ``loading`` (choosing the attempt, loading its notebook), ``responses`` (headers, error page),
``downloads`` (``/download``, ``/report``, ``/file``), ``lookup`` and ``metadata_db`` (finding what a task wrote).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from airflow_notebook_provider.links.notebook import task_instance_url, viewer_path
from airflow_notebook_provider.notebook.compare import compare
from airflow_notebook_provider.notebook.record import read_run
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import compare_page, downloads, history, page
from airflow_notebook_provider.viewer.access import DAG_ROUTE, Named, can_read, task_instance
from airflow_notebook_provider.viewer.attempts import (
    Attempt,
    TaskTry,
    ViewerError,
    last_success,
    list_attempts,
    task_tries,
)
from airflow_notebook_provider.viewer.loading import Removed, TooLargeToShow, choose, load_attempt, notebook_of
from airflow_notebook_provider.viewer.plugin import base_path
from airflow_notebook_provider.viewer.published import published_files, published_reports
from airflow_notebook_provider.viewer.responses import PAGE_HEADERS, SECURITY_HEADERS, error

app = FastAPI(title="Notebook viewer", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(downloads.router)


def _url(route: str, ti: TaskInstanceId, try_number: int | None, **extra: Any) -> str:
    query: dict[str, Any] = {"run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}
    if try_number is not None:
        query["try_number"] = try_number
    query.update(extra)
    # Root-relative: the page works whichever host name the browser used, in the UI's iframe too.
    return f"{base_path()}{viewer_path(ti.dag_id, route)}?{urlencode(query)}"


@app.get(DAG_ROUTE + "/view", dependencies=[can_read], response_class=HTMLResponse)
def view(named: Named, try_number: int | None = Query(None, ge=1), view: str = Query("")) -> Response:
    """The attempt's page; without ``try_number``, the latest attempt; ``view=report``: as the HTML report.

    The header is built here; the notebook is the frame's document, from ``/render`` (never inlined)."""
    report = view == "report"
    attempts: list[Attempt] = []
    try:
        ti = named.identity()
        attempt, attempts = choose(ti, try_number)
        loaded = notebook_of(ti, attempt)
        run = read_run(loaded.notebook)
    except ViewerError as exc:
        shown = try_number if try_number is not None else (attempts[-1].try_number if attempts else None)
        others = [(f"Attempt {a.try_number} ({a.state or 'no state'})", _url("view", ti, a.try_number))
                  for a in attempts if a.try_number != shown]
        if isinstance(exc, Removed):  # what happened to it, on a normal page: not an error
            return HTMLResponse(page.error_page(200, exc.title, exc.detail, others, show_status=False),
                                headers=PAGE_HEADERS)
        if isinstance(exc, TooLargeToShow):  # said, with the way to open it: the download streams it
            return HTMLResponse(page.error_page(200, exc.title, exc.detail, others, show_status=False,
                                                download=_url("download", ti, exc.try_number)),
                                headers=PAGE_HEADERS)
        return error(exc, others)
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
                       reports=reports, files=files, toggle=toggle,
                       cell_chart=history.cell_figure(loaded.notebook, urls["notebook"],
                                                      _url("history", ti, None, limit=history.DEFAULT_ATTEMPTS)))
    body = page.page(head, urls["notebook"], f"{ti.task_id} attempt {attempt.try_number} — {ti.dag_id}")
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(DAG_ROUTE + "/render", dependencies=[can_read], response_class=HTMLResponse)
def render(named: Named, try_number: int | None = Query(None, ge=1), view: str = Query("")) -> Response:
    """The notebook alone, rendered by nbconvert with the failing cell framed: the document of ``/view``'s
    sandboxed frame, served with ``NOTEBOOK_CSP`` (opaque origin, no script). ``view=report``: as the report."""
    try:
        ti = named.identity()
        attempt, _ = choose(ti, try_number)
        loaded = notebook_of(ti, attempt)
        run = read_run(loaded.notebook)
        started = time.perf_counter()
        try:
            rendered = page.render_notebook(loaded.notebook, run.failed_cell, loaded.data, report=view == "report")
        except Exception as exc:  # noqa: BLE001 - a notebook nbconvert cannot render is a page, not a trace
            raise ViewerError(502, "Output notebook unreadable",
                              f"{loaded.record.location} could not be rendered: {exc}") from None
        render_seconds = time.perf_counter() - started
    except ViewerError as exc:
        return error(exc)
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


@app.get(DAG_ROUTE + "/compare", dependencies=[can_read], response_class=HTMLResponse)
def compare_view(
    named: Named,
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
        attempt, attempts = choose(ti, try_number)
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
        loaded_b = load_attempt(ti, this)
        loaded_a = load_attempt(other_ti, other_try)
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
        chart=history.compare_figure(result, loaded_a.notebook, loaded_b.notebook),
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(DAG_ROUTE + "/history", dependencies=[can_read], response_class=HTMLResponse)
def history_view(
    named: Named, limit: int = Query(history.DEFAULT_ATTEMPTS, ge=1, le=history.MAX_ATTEMPTS)
) -> Response:
    """The task's last ``limit`` attempts across its runs: duration and state over time, the slowest cells'
    durations (``history``). The task is named as elsewhere; ``run_id`` only gives the way back to its page."""
    try:
        ti = task_instance(named.dag_id, named.run_id or "-", named.task_id, named.map_index)  # any run will do
        points = history.gather(ti, limit)
    except ViewerError as exc:
        return error(exc)
    body = history.history_page(
        ti, points, limit=limit, back_url=_url("view", ti, None) if named.run_id else None,
        view_url=lambda run_id, n: _url("view", TaskInstanceId(ti.dag_id, run_id, ti.task_id, ti.map_index), n))
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(DAG_ROUTE + "/attempts", dependencies=[can_read])
def attempts(named: Named) -> Response:
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
