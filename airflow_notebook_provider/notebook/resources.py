"""What each code cell cost, read back from an output notebook: duration, peak memory and CPU seconds.

Written by ``engine.resources`` as ``cell.metadata.airflow_notebook.resources`` = ``{"duration_s", "peak_rss_bytes",
"cpu_s", "samples"}`` (memory and CPU ``null`` for a kernel that is not a process on the worker, e.g. on a Jupyter
gateway). A notebook written before these figures existed, or by papermill, still has papermill's per-cell
``duration``: it is used for the duration then. Pure functions; every field is taken only with its JSON type (a
notebook is data its task wrote).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_notebook_provider.notebook.record import FAILED, is_banner_safe

OWN_KEY = "airflow_notebook"
"""This provider's key in a cell's metadata (as in the notebook's: ``record.PROVENANCE_KEY``)."""
RESOURCES_KEY = "resources"
_CELL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # nbformat's cell id; anything else gets no anchor


@dataclass(frozen=True)
class CellCost:
    """One executed code cell and what it cost."""

    position: int
    """1-based position among the notebook's own cells (banners left out), as ``record.read_run`` counts."""
    index: int
    """Index in the notebook's cells, banners included."""
    cell_id: str | None
    """The cell's nbformat id (nbconvert anchors each rendered cell as ``cell-id=<id>``), if it is a valid one."""
    first_line: str
    status: str | None
    failed: bool
    duration_s: float | None
    peak_rss_bytes: int | None
    cpu_s: float | None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def cell_costs(nb: Mapping[str, Any]) -> list[CellCost]:
    """Every code cell that ran (or started running), in order, with its figures."""
    raw = nb.get("cells")
    found: list[CellCost] = []
    position = 0
    for index, cell in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(cell, Mapping) or is_banner_safe(cell):
            continue
        position += 1
        if cell.get("cell_type") != "code":
            continue
        meta = _dict(cell.get("metadata"))
        pm = _dict(meta.get("papermill"))
        res = _dict(_dict(meta.get(OWN_KEY)).get(RESOURCES_KEY))
        status = pm.get("status") if isinstance(pm.get("status"), str) else None
        duration = _number(res.get("duration_s"))
        if duration is None:
            duration = _number(pm.get("duration"))
        if duration is None and status not in ("completed", FAILED):
            continue  # pending, or an empty cell the run skipped
        source = cell.get("source")
        text = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else (
            source if isinstance(source, str) else "")
        cell_id = cell.get("id")
        peak = _number(res.get("peak_rss_bytes"))
        found.append(CellCost(
            position=position, index=index,
            cell_id=cell_id if isinstance(cell_id, str) and _CELL_ID.fullmatch(cell_id) else None,
            first_line=next((ln.strip() for ln in text.splitlines() if ln.strip()), ""),
            status=status, failed=status == FAILED, duration_s=duration,
            peak_rss_bytes=int(peak) if peak is not None else None, cpu_s=_number(res.get("cpu_s")),
        ))
    return found
