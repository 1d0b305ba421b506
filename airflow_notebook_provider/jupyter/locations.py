"""Which notebook a task runs, seen from JupyterLab: a path relative to the Jupyter root, mapped to every location
a task may name it by (its absolute path, a remote prefix through ``path_map``, a path relative to the DAGs folder,
as a task of a DAG bundle names it), and compared with the ``notebook`` each task instance rendered."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class BadPath(ValueError):
    """A path from the browser that is not a file under the Jupyter root (the message says which)."""


def local_file(root: str, path: str) -> Path:
    """The absolute path of ``path`` (relative to the Jupyter root, as JupyterLab names files), refusing one that
    climbs out of the root (``../``, an absolute path, a symlink leading elsewhere)."""
    if not path or path.startswith(("/", "\\")) or "\x00" in path:
        raise BadPath(f"{path!r} is not a path relative to the Jupyter root.")
    base = Path(root).resolve()
    full = (base / PurePosixPath(path)).resolve()
    if not full.is_relative_to(base):
        raise BadPath(f"{path!r} is outside the Jupyter root.")
    return full


def relative(root: str, full: Path) -> str:
    """``full`` as JupyterLab names it (POSIX, relative to the root)."""
    return full.resolve().relative_to(Path(root).resolve()).as_posix()


def normalize(location: str) -> str:
    """One spelling per location: a URL with single slashes in its path, a local path absolute and normalized."""
    location = location.strip()
    scheme = _SCHEME.match(location)
    if scheme:
        rest = location[scheme.end():]
        return scheme.group(0) + re.sub(r"/{2,}", "/", rest)
    return posixpath.normpath(location) if location else location


def task_locations(root: str, full: Path, path_map: Mapping[str, str], dag_folder: str) -> set[str]:
    """Every location a task may name the notebook at ``full`` by."""
    found = {normalize(str(full))}
    plain = os.path.abspath(Path(root) / relative(root, full))  # the root as configured, symlinks unresolved
    found.add(normalize(plain))
    for folder, prefix in path_map.items():
        base = (Path(folder) if Path(folder).is_absolute() else Path(root) / folder).resolve()
        if full.is_relative_to(base):
            found.add(normalize(prefix.rstrip("/") + "/" + full.relative_to(base).as_posix()))
    if dag_folder:
        dags = Path(dag_folder).resolve()
        if full.is_relative_to(dags):
            found.add(full.relative_to(dags).as_posix())  # a bundle-relative `notebook=`
    return found


def rendered_notebook(rendered_fields: Any) -> str | None:
    """The input location a task instance rendered: ``notebook`` (NotebookOperator, ``@task.notebook``) or
    ``input_nb`` (PapermillOperator: a path, or a ``NoteBook`` whose ``url`` it is). None before the task ran."""
    if not isinstance(rendered_fields, Mapping):
        return None
    for key in ("notebook", "input_nb"):
        value = rendered_fields.get(key)
        if isinstance(value, Mapping):
            value = value.get("url")
        if isinstance(value, str) and value:
            return value
    return None


def matches(rendered: str | None, wanted: set[str]) -> bool:
    return rendered is not None and normalize(rendered) in wanted
