"""The record of a run inside its output notebook: written here during the run, and read back here afterwards.

The format is papermill's (``metadata.papermill`` on the notebook and on each cell, the ``injected-parameters``
cell, the two error-banner cells tagged ``papermill-error-cell-tag``), so outputs open in every tool that reads
papermill outputs; this provider adds ``metadata.airflow_notebook`` (provenance). Writer and reader sit side by
side so that the viewer, the CLI and the operator agree on what a run says. Pure functions: no kernel, no I/O.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

from airflow_notebook_provider import __version__
from airflow_notebook_provider.notebook.errors import Failure
from airflow_notebook_provider.notebook.parameters import INJECTED_TAG, to_json
from airflow_notebook_provider.notebook.text import printable

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
# This provider's own part of the notebook metadata: provenance of the run, secret parameter names.
PROVENANCE_KEY = "airflow_notebook"
SECRET_PARAMETERS_KEY = "secret_parameters"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def is_banner(cell: Mapping[str, Any]) -> bool:
    """True for the error-banner cells papermill (and this engine) insert on failure."""
    return ERROR_MARKER_TAG in (cell.get("metadata") or {}).get("tags", [])


# -- writing ---------------------------------------------------------------------------------------------------


def init_record(
    nb: NotebookNode, *, parameters: Any, input_path: str, output_path: str, metadata: Mapping[str, Any] | None = None
) -> None:
    """Reset the per-run record papermill keeps (``metadata.papermill``) and add ``metadata`` (e.g. provenance)."""
    pm = nb.metadata.setdefault("papermill", {})
    pm.update(
        default_parameters=pm.get("default_parameters") or {},
        parameters=to_json(parameters),
        environment_variables=pm.get("environment_variables") or {},
        version=__version__,
        input_path=input_path,
        output_path=output_path,
        start_time=now().isoformat(),
        end_time=None,
        duration=None,
        exception=None,
    )
    for key, value in (metadata or {}).items():
        nb.metadata[key] = value
    # Remove error banners left by an earlier run of this notebook (a re-run of an output notebook).
    nb.cells = [c for c in nb.cells if not is_banner(c)]
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
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


def error_output(ename: str, evalue: str, traceback: list[str] | None = None) -> NotebookNode:
    """An ``error`` output, for failures the kernel could not report itself (timeout, dead kernel, stop)."""
    out: NotebookNode = nbformat.v4.new_output(
        "error", ename=ename, evalue=evalue, traceback=traceback or [f"{ename}: {evalue}"]
    )
    return out


def code_cell_number(nb: NotebookNode, index: int) -> int:
    """1-based position of cell ``index`` among the code cells, as a person counts them."""
    return sum(1 for c in nb.cells[: index + 1] if c.cell_type == "code")


def finish_record(nb: NotebookNode, failure: Failure | None) -> None:
    """End the record: times, and for a failure the failing cell marked and papermill's banner inserted.

    A failure the kernel did not report itself (timeout, dead kernel, stop) gets an ``error`` output on its cell,
    so the notebook says what happened; the banner then carries the reason as well.
    """
    pm = nb.metadata.papermill
    end = now()
    pm["end_time"] = end.isoformat()
    if pm.get("start_time"):
        pm["duration"] = (end - dt.datetime.fromisoformat(pm["start_time"])).total_seconds()
    pm["exception"] = True if failure is not None else None
    if failure is None:
        return
    index = failure.cell_index
    if index is not None:
        cell = nb.cells[index]
        cell_finished(cell, failed=True)
        if cell.cell_type == "code" and not failure.reported_by_kernel and not any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        ):
            cell.outputs.append(error_output(failure.ename, failure.evalue))
    note = None if failure.reported_by_kernel and failure.ename != "MemoryError" else html.escape(
        f"{failure.ename}: {failure.evalue}"
    )
    _add_error_banner(nb, index, failure.execution_count, note)


def _add_error_banner(nb: NotebookNode, cell_index: int | None, execution_count: int | None, note: str | None) -> None:
    """Insert papermill's two banner cells: a message at the top and an anchor right above the failing cell.

    Without a failing cell (the kernel never started) only the top message is inserted, with ``note`` as its text.
    """
    def banner(source: str) -> NotebookNode:
        cell: NotebookNode = nbformat.v4.new_markdown_cell(source)
        cell.metadata["tags"] = [ERROR_MARKER_TAG]
        return cell

    if cell_index is None:
        nb.cells.insert(0, banner(f"<span {ERROR_STYLE}>{note or 'The run failed before its first cell.'}</span>"))
        return
    message = ERROR_MESSAGE_TEMPLATE % str(execution_count)
    if note:
        message += f"\n\n<span {ERROR_STYLE}>{note}</span>"
    nb.cells.insert(cell_index, banner(ERROR_ANCHOR_MSG))
    nb.cells.insert(0, banner(message))


# -- reading ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedCell:
    """The cell a failed run stopped at, and the error it shows (the last error output: the final cause)."""

    index: int
    """Index in the notebook's cells, banner cells included (where to find it in the file)."""
    position: int
    """1-based position among the notebook's own cells (banner cells left out), as a person counts them."""
    execution_count: int | None
    ename: str | None
    evalue: str | None
    traceback: tuple[str, ...]


@dataclass(frozen=True)
class CellSummary:
    position: int
    cell_type: str
    execution_count: int | None
    status: str | None
    duration: float | None
    injected_parameters: bool
    first_line: str


@dataclass(frozen=True)
class RunSummary:
    """What an output notebook says about its run."""

    status: str
    """``succeeded``, ``skipped`` (``results.skip``), ``failed``, ``running or interrupted`` (a checkpoint) or
    ``not run``."""
    failed_cell: FailedCell | None
    parameters: dict[str, Any]
    secret_parameters: dict[str, str]
    """Secret parameter name -> the environment variable the kernel read it from."""
    input_path: str | None
    input_sha256: str | None
    start_time: str | None
    end_time: str | None
    duration: float | None
    cells: tuple[CellSummary, ...]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


# A notebook is data its task wrote: every field read here is taken only with the JSON type the format gives it
# (anything else reads as absent), so a string where a number belongs never fails a reader (the viewer's page).


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str_dict(value: Any) -> dict[str, str]:
    return {k: v for k, v in _dict(value).items() if isinstance(k, str) and isinstance(v, str)}


def read_run(nb: Mapping[str, Any]) -> RunSummary:
    """Read the record of a run from an output notebook (a ``NotebookNode`` or the plain parsed JSON).

    Fields of another type than the format's (``duration: "abc"``, ``parameters: [...]``) read as absent."""
    meta = _dict(nb.get("metadata"))
    pm = _dict(meta.get("papermill"))
    prov = _dict(meta.get(PROVENANCE_KEY))
    cells: list[CellSummary] = []
    failed: FailedCell | None = None
    position = 0
    raw_cells = nb.get("cells")
    for index, cell in enumerate(raw_cells if isinstance(raw_cells, list) else []):
        if not isinstance(cell, Mapping) or is_banner_safe(cell):
            continue
        position += 1
        cell_meta = _dict(cell.get("metadata"))
        cpm = _dict(cell_meta.get("papermill"))
        tags = cell_meta.get("tags")
        source = _text(cell.get("source"))
        cells.append(CellSummary(
            position=position,
            cell_type=str(_str(cell.get("cell_type"))),
            execution_count=_int(cell.get("execution_count")),
            status=_str(cpm.get("status")),
            duration=_number(cpm.get("duration")),
            injected_parameters=isinstance(tags, list) and INJECTED_TAG in tags,
            first_line=next((ln for ln in source.splitlines() if ln.strip()), ""),
        ))
        if cpm.get("status") == FAILED and failed is None:
            outputs = cell.get("outputs")
            errors = [o for o in (outputs if isinstance(outputs, list) else [])
                      if isinstance(o, Mapping) and o.get("output_type") == "error"]
            last = errors[-1] if errors else {}
            traceback = last.get("traceback")
            failed = FailedCell(
                index=index, position=position, execution_count=_int(cell.get("execution_count")),
                ename=_str(last.get("ename")), evalue=_str(last.get("evalue")),
                traceback=tuple(printable(line) for line in (traceback if isinstance(traceback, list) else [])
                                if isinstance(line, str)),
            )
    outcome = prov.get("outcome")  # notebook.outcomes.OUTCOME_KEY: what results.skip() and fail() decided
    if isinstance(outcome, Mapping) and outcome.get("state") == "skipped":
        status = "skipped"
    elif pm.get("exception"):
        status = "failed"
    elif pm.get("end_time"):
        status = "succeeded"
    elif pm.get("start_time"):
        status = "running or interrupted"
    else:
        status = "not run"
    secrets = _str_dict(prov.get(SECRET_PARAMETERS_KEY))
    parameters = pm.get("parameters")
    return RunSummary(
        status=status,
        failed_cell=failed,
        parameters={str(k): v for k, v in parameters.items()} if isinstance(parameters, Mapping) else {},
        secret_parameters=secrets,
        input_path=_str(pm.get("input_path")),
        input_sha256=_str(prov.get("input_sha256")),
        start_time=_str(pm.get("start_time")),
        end_time=_str(pm.get("end_time")),
        duration=_number(pm.get("duration")),
        cells=tuple(cells),
    )


def is_banner_safe(cell: Mapping[str, Any]) -> bool:
    """``is_banner`` for a cell read from a file: its metadata or tags may be of any type."""
    tags = _dict(cell.get("metadata")).get("tags")
    return isinstance(tags, list) and ERROR_MARKER_TAG in tags
