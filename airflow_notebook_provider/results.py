"""Values a notebook hands to downstream tasks: ``record`` in the notebook, ``read_records`` after the run.

Records use scrapbook's display format (``application/scrapbook.scrap.json+json``), so a notebook records without
Airflow (or even this package: ``scrapbook.glue`` writes the same output), scrapbook reads our records, and values
glued with scrapbook reach XCom too. This module imports neither Airflow nor the engine: the kernel imports it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

SCRAP_PREFIX = "application/scrapbook.scrap."
JSON_MIMETYPE = SCRAP_PREFIX + "json+json"
SCRAP_VERSION = 1
# XCom keys the operator pushes itself (defined here, where the kernel can import them without Airflow; ``outputs``
# owns what the first two mean). A record under one of them would hide it.
OUTPUT_XCOM_KEY = "output_notebook"
RECORD_XCOM_KEY = "notebook_record"
RESULTS_XCOM_KEY = "results"
RESERVED_NAMES = frozenset({"return_value", OUTPUT_XCOM_KEY, RECORD_XCOM_KEY, RESULTS_XCOM_KEY})
_JSON_ENCODERS = {"json", "text"}


class RecordError(ValueError):
    """A record cannot be passed downstream: bad name, or a value that is not JSON."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"A record name must be a non-empty string, got {name!r}.")
    if name in RESERVED_NAMES or name.startswith("_link_"):
        raise RecordError(
            f"Record name {name!r} is an XCom key the notebook operator uses itself "
            f"({', '.join(sorted(RESERVED_NAMES))}, _link_*); choose another name."
        )
    return name


def check_value(name: str, value: Any) -> Any:
    """The value if it is strict JSON (no NaN or infinity, string keys), else a ``RecordError`` naming it."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        hint = "convert it first, e.g. int(x), float(x), str(x), x.tolist() or df.to_dict('records')"
        if isinstance(value, float) and not math.isfinite(value):
            hint = "NaN and infinity are not JSON; record None or a string instead"
        raise RecordError(
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


def read_records(nb: Mapping[str, Any]) -> dict[str, Any]:
    """Every value recorded in an executed notebook (ours and scrapbook's), the last one of a name winning.

    Raises ``RecordError`` naming the record that cannot become XCom (a non-JSON scrapbook encoder such as
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
                    raise RecordError(
                        f"Record {name!r} was glued with scrapbook's {encoder!r} encoder, which XCom cannot hold; "
                        "record a JSON value instead (e.g. df.to_dict('records'))."
                    )
                records[name] = check_value(name, payload.get("data"))
    return records
