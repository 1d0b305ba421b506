"""A relative ``notebook`` is read from the DAG's bundle at the DAG run's bundle version, on the worker.

Airflow 3's task runner prepares the bundle the task's DAG came from at the run's version (``ti.bundle_instance``:
a git checkout of the run's commit with ``GitDagBundle``; the latest one for "run on latest version") and parses the
DAG from there. A notebook kept next to the DAG is found in that same checkout, so a task cleared weeks later runs
the notebook of its own DAG version, never the worker's current folder. Under ``dag.test()``, which parses no bundle,
the DAG file's folder stands in for it. Absolute paths and URLs are left as they are.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_notebook_provider.engine.storage import is_url
from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookInputError
from airflow_notebook_provider.notebook.origin import NotebookOrigin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Located:
    """Where the attempt reads its notebook (``location``), and which bundle version it is (``origin``, None for an
    absolute path or a URL)."""

    location: str
    origin: NotebookOrigin | None = None


@dataclass(frozen=True)
class _Bundle:
    name: str | None
    version: str | None
    root: Path

    def describe(self) -> str:
        if self.name is None:
            return f"the DAG file's folder {self.root} (dag.test() runs no bundle)"
        return f"bundle {self.name!r} at version {self.version or '(unversioned)'} ({self.root})"


def locate(notebook: str, notebook_root: str | None, context: Any) -> Located:
    """The notebook this attempt runs: a relative ``notebook`` joined to ``notebook_root`` inside the DAG's bundle.

    ``NotebookConfigError`` for a ``notebook_root`` that is absolute, escapes the bundle or comes with an absolute
    ``notebook``; ``NotebookInputError`` (naming the bundle, its version and the folder searched) for a notebook that
    is not there.
    """
    if notebook_root is not None and (not isinstance(notebook_root, str) or not notebook_root.strip()):
        raise NotebookConfigError(f"`notebook_root` must be a folder inside the DAG's bundle, got {notebook_root!r}")
    if is_url(notebook) or os.path.isabs(os.path.expanduser(notebook)):
        if notebook_root:
            raise NotebookConfigError(
                f"`notebook_root` ({notebook_root!r}) applies to a relative `notebook` only, and {notebook!r} is an "
                "absolute path or URL: drop one of them."
            )
        return Located(notebook)
    bundle = _bundle_of(context)
    if notebook_root and os.path.isabs(os.path.expanduser(notebook_root)):
        raise NotebookConfigError(
            f"`notebook_root` ({notebook_root!r}) must be relative to the root of {bundle.describe()}: each bundle "
            "version is checked out in a folder of its own."
        )
    root = bundle.root.resolve()
    folder = Path(os.path.normpath(bundle.root / (notebook_root or "")))
    path = Path(os.path.normpath(folder / notebook))
    if not folder.resolve().is_relative_to(root) or not path.resolve().is_relative_to(root):
        raise NotebookConfigError(
            f"`notebook` {notebook!r} with `notebook_root` {notebook_root!r} leads out of {bundle.describe()}: "
            "name a notebook inside the bundle, or give an absolute path or URL."
        )
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise NotebookInputError(
            f"Notebook {notebook!r} is not in {bundle.describe()}: looked for {path} in folder {folder}. Commit it to "
            "the bundle next to the DAG, or fix `notebook` / `notebook_root` (relative to the bundle's root)."
        ) from None
    except IsADirectoryError:
        raise NotebookInputError(f"Notebook {notebook!r} in {bundle.describe()} is a folder: {path}.") from None
    origin = NotebookOrigin(bundle.name, bundle.version, path.resolve().relative_to(root).as_posix(),
                            hashlib.sha256(data).hexdigest())
    return Located(str(path), origin)


def _bundle_of(context: Any) -> _Bundle:
    """The bundle the task runner prepared for this task, else (``dag.test()``) the DAG file's folder."""
    ti = context.get("ti") if hasattr(context, "get") else None
    bundle = getattr(ti, "bundle_instance", None)
    if bundle is not None:
        return _Bundle(str(bundle.name), bundle.version or _current_version(bundle), Path(bundle.path))
    dag = context.get("dag") if hasattr(context, "get") else None
    fileloc = getattr(dag, "fileloc", None) or getattr(getattr(getattr(ti, "task", None), "dag", None), "fileloc", None)
    if not fileloc:
        raise NotebookConfigError(
            "A relative `notebook` is read from the DAG's bundle, and this task runs outside any DAG (no `ti` or "
            "`dag` in its context): run it through Airflow, or give an absolute path or URL."
        )
    return _Bundle(None, None, Path(fileloc).parent)


def _current_version(bundle: Any) -> str | None:
    """The version of a bundle the task runs at its latest (``GitDagBundle``: the tracking checkout's commit);
    None for an unversioned bundle (the local DAGs folder)."""
    try:
        found = bundle.get_current_version()
    except Exception as exc:  # noqa: BLE001 - the notebook still runs; only the record lacks the version
        log.warning("Could not read the current version of bundle %r: %s", getattr(bundle, "name", "?"), exc)
        return None
    found = getattr(found, "version", found)  # a BundleVersion from Airflow 3.3
    return str(found) if found else None
