"""Where the command reads and writes notebooks: local paths, fsspec URLs, or object storage via an Airflow connection.

Airflow is imported only for ``--conn-id`` (and viewer links, in ``debug.py``), so local files need no Airflow
configuration.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from airflow_notebook_provider.engine import NotebookError, storage
from airflow_notebook_provider.engine.storage import Storage
from airflow_notebook_provider.notebook import textformats


class CliError(Exception):
    """A problem with what was asked (missing file, bad option); printed without a traceback, exit status 2."""


@contextlib.contextmanager
def airflow_imported() -> Iterator[None]:
    """Around code that imports Airflow: its log goes to stderr at WARNING (stdout stays for results)."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _storage(conn_id: str | None) -> Storage:
    """The hook's storage for a URL with a connection (Airflow imported then), else plain fsspec."""
    if not conn_id:
        return Storage(hint="Object storage needs credentials: pass --conn-id with an Airflow connection.")
    with airflow_imported():
        from airflow_notebook_provider.hooks.notebook import NotebookHook

        return NotebookHook(conn_id=conn_id).storage


def read(location: str, conn_id: str | None) -> bytes:
    try:
        return _storage(conn_id if storage.is_url(location) else None).read(location)
    except NotebookError:
        raise
    except Exception as exc:  # noqa: BLE001 - fsspec raises many kinds; say which location and how to fix
        hint = " (object storage needs credentials: pass --conn-id with an Airflow connection)" if storage.is_url(location) else ""
        raise CliError(f"Cannot read {location}: {exc}{hint}") from None


def write(location: str, data: bytes, conn_id: str | None) -> None:
    _storage(conn_id if storage.is_url(location) else None).write(location, data)


def absolute(location: str) -> str:
    """A local location as an absolute path (what the record keeps); a URL as it is."""
    return location if storage.is_url(location) else str(storage.local_path(location))


def sibling(location: str, suffix: str) -> str:
    """``x/report.ipynb`` -> ``x/report<suffix>.ipynb`` for a local location; in the current folder for a URL. A text
    notebook's output is an ``.ipynb`` too: ``x/report.py`` -> ``x/report<suffix>.ipynb``."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    ext = ".ipynb" if name.endswith(".ipynb") else textformats.extension(name) if textformats.is_text_notebook(name) else ""
    stem = name[: -len(ext)] if ext else name
    if storage.is_url(location):
        return str(Path.cwd() / f"{stem}{suffix}.ipynb")
    return str(storage.local_path(location).with_name(f"{stem}{suffix}.ipynb"))
