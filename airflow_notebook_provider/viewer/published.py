"""What an attempt published beside its notebook (``engine.publish``), as the viewer lists and serves it: only what
the notebook names in ``metadata.airflow.reports`` / ``files``, and only at the places derived from the attempt's own
output location; and the names its downloads get."""

from __future__ import annotations

import re
from typing import Any

from airflow_notebook_provider.engine.publish import REPORT_FORMATS, beside
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer.lookup import Loaded


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


def file_stem(ti: TaskInstanceId, try_number: int) -> str:
    """``dag.task[.map-i].attempt-n``: the name of an attempt's downloads, before their extension."""
    return (f"{ti.dag_id}.{ti.task_id}{f'.map-{ti.map_index}' if ti.map_index >= 0 else ''}"
            f".attempt-{try_number}")


def attachment(name: str) -> str:
    """A ``Content-Disposition`` header value for ``name``, every character outside ``[A-Za-z0-9._-]`` replaced."""
    return f'attachment; filename="{re.sub(r"[^A-Za-z0-9._-]", "_", name)}"'
