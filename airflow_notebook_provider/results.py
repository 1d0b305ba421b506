"""Values a notebook hands to downstream tasks: ``record`` in the notebook, ``read_results`` after the run; and the
task's outcome when the notebook decides it: ``skip`` and ``fail``.

Records use scrapbook's display format (``application/scrapbook.scrap.json+json``), so a notebook records without
Airflow (or even this package: ``scrapbook.glue`` writes the same output), scrapbook reads our records, and values
glued with scrapbook reach XCom too. This module imports neither Airflow nor the engine: the kernel imports it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

SCRAP_PREFIX = "application/scrapbook.scrap."
JSON_MIMETYPE = SCRAP_PREFIX + "json+json"
SCRAP_VERSION = 1
# XCom keys the operator pushes itself (defined here, where the kernel can import them without Airflow; ``outputs``
# owns what the first two mean). A record under one of them would hide it.
OUTPUT_XCOM_KEY = "output_notebook"
RECORD_XCOM_KEY = "notebook_record"
RESULTS_XCOM_KEY = "results"
REPORTS_XCOM_KEY = "reports"
"""Report format -> location of this attempt's rendered report (``report_formats``)."""
FILES_XCOM_KEY = "files"
"""Locations of the files this attempt collected (``collect_files``)."""
RESERVED_NAMES = frozenset({"return_value", OUTPUT_XCOM_KEY, RECORD_XCOM_KEY, RESULTS_XCOM_KEY, REPORTS_XCOM_KEY,
                            FILES_XCOM_KEY})
LINEAGE_MIMETYPE = "application/vnd.airflow-notebook.lineage+json"
OUTCOME_MIMETYPE = "application/vnd.airflow-notebook.outcome+json"
"""What ``skip`` and ``fail`` display before they stop the run: ``{"outcome": "skip" | "fail", "reason", "retry"}``."""
_JSON_ENCODERS = {"json", "text"}


class ResultError(ValueError):
    """A record cannot be passed downstream: bad name, or a value that is not JSON."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ResultError(f"A record name must be a non-empty string, got {name!r}.")
    if name in RESERVED_NAMES or name.startswith("_link_"):
        raise ResultError(
            f"Record name {name!r} is an XCom key the notebook operator uses itself "
            f"({', '.join(sorted(RESERVED_NAMES))}, _link_*); choose another name."
        )
    return name


def check_value(name: str, value: Any) -> Any:
    """The value if it is strict JSON (no NaN or infinity, string keys), else a ``ResultError`` naming it."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        hint = "convert it first, e.g. int(x), float(x), str(x), x.tolist() or df.to_dict('records')"
        if isinstance(value, float) and not math.isfinite(value):
            hint = "NaN and infinity are not JSON; record None or a string instead"
        raise ResultError(
            f"Record {name!r} holds a {type(value).__module__}.{type(value).__qualname__} that is not JSON ({exc}); "
            f"XCom needs JSON: {hint}."
        ) from None
    return value


def record(name: str, value: Any) -> None:
    """Record a JSON value in the running notebook; a notebook task pushes it to XCom under ``name``.

    Call it in a notebook cell: ``from airflow_notebook_provider import record; record("rows", 1234)``. Recording
    the same name again replaces the value. Fails here, in the cell, if the value is not JSON.
    """
    from IPython.display import display

    check_value(check_name(name), value)
    payload = {"name": name, "data": value, "encoder": "json", "version": SCRAP_VERSION}
    display({JSON_MIMETYPE: payload}, metadata={"scrapbook": {"name": name, "data": True, "display": False}}, raw=True)


def record_lineage(inputs: Any = (), outputs: Any = ()) -> None:
    """Declare datasets the notebook read and wrote; a notebook task adds them to its OpenLineage events.

    Each dataset is a URI (``"s3://bucket/key"``, ``"/data/x.parquet"``, ``"postgres://db:5432/sales.public.orders"``)
    or a dict ``{"namespace": ..., "name": ...}`` as OpenLineage names it. May be called more than once.
    """
    from IPython.display import display

    payload = {"inputs": [_dataset(d) for d in inputs], "outputs": [_dataset(d) for d in outputs]}
    display({LINEAGE_MIMETYPE: payload}, raw=True)


def _dataset(value: Any) -> str | dict[str, str]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, Mapping) and isinstance(value.get("namespace"), str) and isinstance(value.get("name"), str):
        return {"namespace": value["namespace"], "name": value["name"]}
    raise ResultError(f"A lineage dataset is a URI string or a dict with 'namespace' and 'name', got {value!r}.")


def read_lineage(nb: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """The datasets a notebook declared with ``record_lineage``: (inputs, outputs), in order, without repeats."""
    inputs: list[Any] = []
    outputs: list[Any] = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            payload = (output.get("data") or {}).get(LINEAGE_MIMETYPE)
            if not isinstance(payload, Mapping):
                continue
            for key, into in (("inputs", inputs), ("outputs", outputs)):
                for item in payload.get(key) or []:
                    if item not in into:
                        into.append(item)
    return inputs, outputs


def read_results(nb: Mapping[str, Any]) -> dict[str, Any]:
    """Every value recorded in an executed notebook (ours and scrapbook's), the last one of a name winning.

    Raises ``ResultError`` naming the record that cannot become XCom (a non-JSON scrapbook encoder such as
    ``pandas`` or ``arrow``, NaN, or a reserved name).
    """
    records: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            for mime, payload in (output.get("data") or {}).items():
                if not mime.startswith(SCRAP_PREFIX) or not isinstance(payload, Mapping):
                    continue
                name = check_name(payload.get("name"))
                encoder = payload.get("encoder") or mime[len(SCRAP_PREFIX):].split("+", 1)[0]
                if encoder not in _JSON_ENCODERS:
                    raise ResultError(
                        f"Record {name!r} was glued with scrapbook's {encoder!r} encoder, which XCom cannot hold; "
                        "record a JSON value instead (e.g. df.to_dict('records'))."
                    )
                records[name] = check_value(name, payload.get("data"))
    return records


class NotebookOutcome(BaseException):
    """Stops the notebook where ``skip`` or ``fail`` is called. A ``BaseException``, as ``SystemExit``: an
    ``except Exception`` in the notebook does not swallow it."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: one line, the reason."""
        return [f"{type(self).__name__}: {self}"]


class NotebookSkip(NotebookOutcome):
    """Raised by ``skip``."""


class NotebookFail(NotebookOutcome):
    """Raised by ``fail``."""


def skip(reason: str) -> NoReturn:
    """End the run here and mark the task **skipped** (downstream tasks follow their trigger rules).

    ``results.skip("no files for 2026-12-06")``: later cells are not run; the output notebook is saved with a banner
    giving ``reason``. Outside a task (JupyterLab) it just stops the cell.
    """
    _stop(NotebookSkip, "skip", reason, retry=False)


def fail(reason: str, *, retry: bool = False) -> NoReturn:
    """End the run here and fail the task: without further retries by default, as a retryable failure with
    ``retry=True``. The banner of the output notebook and the task log give ``reason``."""
    _stop(NotebookFail, "fail", reason, retry=bool(retry))


def _stop(kind: type[NotebookOutcome], outcome: str, reason: str, *, retry: bool) -> NoReturn:
    if not isinstance(reason, str) or not reason.strip():
        raise ResultError(f"results.{outcome}() needs a reason (a non-empty string), got {reason!r}.")
    try:
        from IPython.display import display
    except ImportError:  # not in a kernel: the exception alone says it
        pass
    else:
        verb = "skipped" if outcome == "skip" else "failed" + ("" if retry else " (not retried)")
        display({OUTCOME_MIMETYPE: {"outcome": outcome, "reason": reason, "retry": retry},
                 "text/plain": f"The notebook {verb} the task: {reason}"}, raw=True)
    raise kind(reason)
