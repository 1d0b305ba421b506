"""What ``pull`` and ``rerun`` say about the bundle version of the notebook a run ran (``notebook.origin``), and the
warning when the local copy of that notebook is not the one that ran."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_notebook_provider.notebook.origin import NotebookOrigin, read_origin

MAX_COMPARED_BYTES = 256 * 1024 * 1024


def _get_it(origin: NotebookOrigin) -> str:
    if origin.version and origin.bundle:
        return (f" The notebook that ran: `git show {origin.version}:{origin.path}` in the bundle's repository "
                "(the path is relative to the bundle's root, its subdir if it has one).")
    return ""


def pull_lines(nb: Any, folder: Path) -> list[str]:
    """Which version ran; a warning when ``folder``/<path in the bundle> (the user's checkout) has other bytes."""
    origin = read_origin(nb)
    if origin is None:
        return []
    lines = [f"Ran notebook {origin.describe()} (sha256 {origin.sha256[:12]}…)."]
    local = _local_copy(folder, origin.path)
    if local is not None and _sha256(local.read_bytes()) != origin.sha256:
        lines.append(f"Warning: your {local} differs from the notebook that ran.{_get_it(origin)}")
    return lines


def _local_copy(folder: Path, path: str) -> Path | None:
    """``folder/path`` when it is a regular file of a sane size; the path is data the task wrote, so one that is
    absolute or climbs out of ``folder`` (``..``) is not looked at, nor a FIFO or a device."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return None
    local = folder.joinpath(*pure.parts)
    try:
        st = local.stat()
    except OSError:
        return None
    return local if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_COMPARED_BYTES else None


def rerun_lines(nb: Any, notebook: str, data: bytes) -> list[str]:
    """For rerun's plan: the version the recorded run ran, and a warning when ``data`` (what rerun runs) differs."""
    origin = read_origin(nb)
    if origin is None:
        return []
    lines = [f"  version     the recorded run ran {origin.describe()} (sha256 {origin.sha256[:12]}…)"]
    if _sha256(data) != origin.sha256:
        lines.append(f"  Warning: {notebook} is not the notebook that ran (sha256 {_sha256(data)[:12]}…).{_get_it(origin)}")
    return lines


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
