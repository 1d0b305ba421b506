"""Load and serialize notebooks, and write the papermill-compatible record into them.

Everything here is pure: bytes in, ``NotebookNode`` out and back, so it is tested without a kernel.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import warnings
from typing import Any

import nbformat
from nbformat import NotebookNode

from airflow_notebook_provider.engine.errors import NotebookInputError

log = logging.getLogger(__name__)

ERROR_MARKER_TAG = "papermill-error-cell-tag"
ERROR_STYLE = 'style="color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;"'
ERROR_MESSAGE_TEMPLATE = (
    f"<span {ERROR_STYLE}>An Exception was encountered at '<a href=\"#papermill-error-cell\">In [%s]</a>'.</span>"
)
ERROR_ANCHOR_MSG = (
    f'<span id="papermill-error-cell" {ERROR_STYLE}>'
    "Execution using papermill encountered an exception here and stopped:"
    "</span>"
)

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def load(data: bytes, source: str) -> NotebookNode:
    """Parse notebook bytes into nbformat 4, with errors that say what is wrong with ``source`` and the fix."""
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise NotebookInputError(f"{source} is not a notebook: it is not UTF-8 text ({exc}).") from None
    except json.JSONDecodeError as exc:
        raise NotebookInputError(
            f"{source} is not a notebook: it is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}). Open and save it in Jupyter, or check that the path points at the .ipynb file."
        ) from None
    if not isinstance(raw, dict) or "nbformat" not in raw or not ({"cells", "worksheets"} & raw.keys()):
        keys = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
        raise NotebookInputError(
            f"{source} is JSON but not a Jupyter notebook (it has no 'nbformat' and 'cells'; found {keys}). "
            "Point `notebook` at an .ipynb file."
        )
    major = raw.get("nbformat")
    if not isinstance(major, int) or major < 3:
        raise NotebookInputError(
            f"{source} has nbformat {major!r}, which cannot be run. Upgrade it: "
            "`jupyter nbconvert --to notebook --nbformat 4 --output upgraded.ipynb NOTEBOOK`."
        )
    if major > 4:
        raise NotebookInputError(
            f"{source} has nbformat {major}, newer than this nbformat library ({nbformat.__version__}) reads. "
            "Upgrade the nbformat package where the task runs."
        )
    if major == 3:
        log.warning("%s is nbformat 3; it is upgraded to nbformat 4 for this run (save it as v4 to skip this).", source)
    minor = raw.get("nbformat_minor", 0)
    if major == 4 and isinstance(minor, int) and minor > nbformat.current_nbformat_minor:
        log.warning(
            "%s has nbformat 4.%s, newer than 4.%s known here; unknown fields are kept as they are.",
            source, minor, nbformat.current_nbformat_minor,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
        except Exception as exc:  # noqa: BLE001 - nbformat raises a mix of ValidationError and KeyError here
            raise NotebookInputError(f"{source} is not a valid notebook: {exc}. Open and save it in Jupyter.") from None
    return nb


def dumps(nb: NotebookNode) -> bytes:
    """Serialize as Jupyter does (sorted keys, one-space indent, split lines), without a slow schema check."""
    return (nbformat.v4.nbjson.writes(nb) + "\n").encode("utf-8")


def code_cell_number(nb: NotebookNode, index: int) -> int:
    """1-based position of cell ``index`` among the code cells, as a person counts them."""
    return sum(1 for c in nb.cells[: index + 1] if c.cell_type == "code")


def init_record(nb: NotebookNode, *, parameters: Any, input_path: str, output_path: str, extra: dict[str, Any] | None) -> None:
    """Reset the per-run record papermill keeps (``metadata.papermill``) and add ours (e.g. ``metadata.airflow``)."""
    from airflow_notebook_provider.engine.parameters import to_json

    pm = nb.metadata.setdefault("papermill", {})
    pm.update(
        parameters=to_json(parameters),
        input_path=input_path,
        output_path=output_path,
        start_time=now().isoformat(),
        end_time=None,
        duration=None,
        exception=None,
    )
    for key, value in (extra or {}).items():
        nb.metadata[key] = value
    # Remove error banners left by an earlier run of this notebook (a re-run of an output notebook).
    nb.cells = [c for c in nb.cells if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        cell.metadata["papermill"] = {
            "exception": None, "start_time": None, "end_time": None, "duration": None, "status": PENDING,
        }
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []


def cell_started(cell: NotebookNode) -> None:
    cell.metadata.papermill.update(start_time=now().isoformat(), status=RUNNING, exception=False)


def cell_finished(cell: NotebookNode, *, failed: bool) -> None:
    end = now()
    pm = cell.metadata.papermill
    pm["end_time"] = end.isoformat()
    if pm.get("start_time"):
        pm["duration"] = (end - dt.datetime.fromisoformat(pm["start_time"])).total_seconds()
    if failed:
        pm.update(status=FAILED, exception=True)
    elif pm.get("status") != FAILED:
        pm["status"] = COMPLETED


def finish_record(nb: NotebookNode, *, failed: bool) -> None:
    pm = nb.metadata.papermill
    end = now()
    pm["end_time"] = end.isoformat()
    if pm.get("start_time"):
        pm["duration"] = (end - dt.datetime.fromisoformat(pm["start_time"])).total_seconds()
    pm["exception"] = True if failed else None


def add_error_banner(nb: NotebookNode, cell_index: int | None, execution_count: int | None, note: str | None = None) -> None:
    """Insert papermill's two banner cells: a message at the top and an anchor right above the failing cell.

    Without a failing cell (the kernel never started) only the top message is inserted, with ``note`` as its text.
    """
    if cell_index is None:
        top = nbformat.v4.new_markdown_cell(f"<span {ERROR_STYLE}>{note or 'The run failed before its first cell.'}</span>")
        top.metadata["tags"] = [ERROR_MARKER_TAG]
        nb.cells.insert(0, top)
        return
    message = ERROR_MESSAGE_TEMPLATE % str(execution_count)
    if note:
        message += f"\n\n<span {ERROR_STYLE}>{note}</span>"
    top = nbformat.v4.new_markdown_cell(message)
    top.metadata["tags"] = [ERROR_MARKER_TAG]
    anchor = nbformat.v4.new_markdown_cell(ERROR_ANCHOR_MSG)
    anchor.metadata["tags"] = [ERROR_MARKER_TAG]
    nb.cells.insert(cell_index, anchor)
    nb.cells.insert(0, top)


def error_output(ename: str, evalue: str, traceback: list[str] | None = None) -> NotebookNode:
    """An ``error`` output, for failures the kernel could not report itself (timeout, dead kernel, stop)."""
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"])
