"""The viewer's download routes: the output notebook's original bytes (``/download``), and what the attempt
published beside it (``/report``, ``/file``), as attachments streamed in chunks, never whole in memory.

Reports and files are served only if the attempt's notebook lists them (``metadata.airflow.reports`` / ``files``),
and only at the location derived from the attempt's own output location (never a recorded path elsewhere), with
``Content-Security-Policy: sandbox; default-src 'none'``. Every route depends on ``access.may_read_notebooks``;
``app`` includes ``router``.
"""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from airflow_notebook_provider.engine.publish import REPORT_FORMATS
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import lookup, safe_read
from airflow_notebook_provider.viewer.access import DAG_ROUTE, Named, can_read
from airflow_notebook_provider.viewer.attempts import ViewerError
from airflow_notebook_provider.viewer.loading import TooLargeToShow, choose, load_attempt, viewer_error
from airflow_notebook_provider.viewer.lookup import Loaded, OutputNotFound
from airflow_notebook_provider.viewer.published import attachment, file_stem, published_files, published_reports
from airflow_notebook_provider.viewer.responses import DOWNLOAD_HEADERS, SECURITY_HEADERS, error

REPORT_TYPES = {"html": "text/html; charset=utf-8", "markdown": "text/markdown; charset=utf-8",
                "pdf": "application/pdf"}

router = APIRouter()


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


@router.get(DAG_ROUTE + "/download", dependencies=[can_read])
def download(named: Named, try_number: int | None = Query(None, ge=1)) -> Response:
    """The output notebook exactly as stored (the bytes the task wrote), as an .ipynb attachment.

    Up to ``viewer_max_bytes`` it is read and parsed as the page does; a larger one is streamed in chunks after a
    bounded-memory scan of its ``metadata.airflow`` (``lookup.open_download``): never whole in memory."""
    try:
        ti = named.identity()
        attempt, _ = choose(ti, try_number)
        try:
            loaded: Loaded | None = load_attempt(ti, attempt.try_number)
        except TooLargeToShow:
            loaded = None
        if loaded is None:
            try:
                _, _, opened = lookup.open_download(ti, attempt.try_number)
            except OutputNotFound as exc:
                raise viewer_error(ti, attempt.try_number, exc) from None
    except ViewerError as exc:
        return error(exc)
    headers = {**SECURITY_HEADERS, "Content-Disposition": attachment(file_stem(ti, attempt.try_number) + ".ipynb")}
    if loaded is not None:
        return Response(loaded.data, media_type="application/x-ipynb+json", headers=headers)
    return StreamingResponse(opened.chunks(), media_type="application/x-ipynb+json",
                             headers={**headers, "Content-Length": str(opened.size)})


def _published_by(ti: TaskInstanceId, try_number: int) -> Loaded:
    """The attempt's notebook for its lists of reports and files: parsed whole up to ``viewer_max_bytes``, else
    only its ``metadata.airflow`` (scanned in bounded memory)."""
    try:
        return load_attempt(ti, try_number)
    except TooLargeToShow:
        try:
            return lookup.load_airflow_metadata(ti, try_number)
        except OutputNotFound as exc:
            raise viewer_error(ti, try_number, exc) from None


@router.get(DAG_ROUTE + "/report", dependencies=[can_read])
def report_download(named: Named, try_number: int | None = Query(None, ge=1),
                    fmt: str = Query("html", alias="format")) -> Response:
    """A report the attempt rendered (``report_formats``), as an attachment; 404 unless its notebook lists it at
    the location derived from the attempt's output."""
    try:
        ti = named.identity()
        attempt, _ = choose(ti, try_number)
        loaded = _published_by(ti, attempt.try_number)
        location = published_reports(loaded).get(fmt)
        if location is None:
            raise ViewerError(404, "No such report", f"Attempt {attempt.try_number} of {ti.describe()} published no "
                              f"{fmt!r} report (see the task's report_formats).")
        opened = open_published(loaded, location)
    except ViewerError as exc:
        return error(exc)
    return _attachment(opened, REPORT_TYPES[fmt], file_stem(ti, attempt.try_number) + REPORT_FORMATS[fmt])


@router.get(DAG_ROUTE + "/file", dependencies=[can_read])
def file_download(named: Named, try_number: int | None = Query(None, ge=1), path: str = Query("")) -> Response:
    """A file the attempt collected (``collect_files``), as an attachment; 404 unless its notebook lists ``path``
    under the attempt's own ``.files/`` folder."""
    try:
        ti = named.identity()
        attempt, _ = choose(ti, try_number)
        loaded = _published_by(ti, attempt.try_number)
        location = next((loc for p, loc, _ in published_files(loaded) if p == path), None)
        if location is None:
            raise ViewerError(404, "No such file", f"Attempt {attempt.try_number} of {ti.describe()} collected no "
                              f"file {path!r} (see the task's collect_files).")
        opened = open_published(loaded, location)
    except ViewerError as exc:
        return error(exc)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return _attachment(opened, media_type, path.rsplit("/", 1)[-1])
