"""The output writer: the first write, checkpoints at most every interval, the final write, and a rescue copy.

Writes are few and bounded by time, not by cells (papermill writes the whole notebook before and after every
cell: 2N+3 PUTs on S3). Every serialization takes a sequence number and a write older than the last one written
is dropped, so a checkpoint still in flight can never overwrite the final notebook.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from nbformat import NotebookNode

from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.engine.storage import write_atomic
from airflow_notebook_provider.notebook.errors import NotebookStorageError
from airflow_notebook_provider.notebook.load import dumps

WriteKind = Literal["first", "checkpoint", "final"]


class OutputWriter:
    """Writes one run's output notebook through ``save`` (bytes to the output location)."""

    def __init__(
        self,
        nb: NotebookNode,
        location: str,
        save: Callable[[bytes], None],
        log: Log,
        on_write: Callable[[WriteKind, int], None] | None = None,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.nb = nb
        self._redact = redact
        self.location = location
        self._save = save
        self._log = log
        self._on_write = on_write
        self.writes = 0
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._written_seq = 0

    def first(self) -> None:
        """The notebook as the run starts; raises ``NotebookStorageError`` (nothing can be recorded without it)."""
        self._write(self._bytes(), next(self._seq), "first", fatal=True)

    async def checkpoints(self, interval: float) -> None:
        """Write the running notebook every ``interval`` seconds until cancelled; a failed checkpoint is logged."""
        interval = max(float(interval), 0.1)
        while True:
            await asyncio.sleep(interval)
            data, seq = self._bytes(), next(self._seq)
            await asyncio.to_thread(self._write, data, seq, "checkpoint", fatal=False)

    def final(self, *, fatal: bool) -> None:
        """The last write. If the store refuses it (after its retries), the executed notebook is the only evidence
        of the run: keep it in a local rescue copy on the worker and say where, rather than lose it. Raises
        ``NotebookStorageError`` if ``fatal`` (a run that otherwise succeeded), else logs the error."""
        data, seq = self._bytes(), next(self._seq)
        try:
            self._write(data, seq, "final", fatal=True, wrap=False)
            return
        except Exception as exc:  # noqa: BLE001 - any failure of the store: keep a copy, then report it
            error = exc
        rescue = rescue_copy(self.location, data)
        msg = f"Could not write the output notebook to {self.location}: {str(error).rstrip('.')}."
        if rescue:
            msg += f" A copy of the executed notebook was kept on this worker at {rescue}."
        if fatal:
            raise NotebookStorageError(msg) from error
        self._log.error("%s", msg)

    def _bytes(self) -> bytes:
        """The notebook as written: secret values a cell printed are replaced by ``***`` in every write."""
        data = dumps(self.nb)
        return self._redact(data) if self._redact is not None else data

    def _write(self, data: bytes, seq: int, kind: WriteKind, *, fatal: bool, wrap: bool = True) -> None:
        with self._lock:
            if seq < self._written_seq:
                return  # a newer state of the notebook is already written
            try:
                self._save(data)
            except Exception as exc:
                if not fatal:
                    self._log.warning("Checkpoint of %s failed (%s); the run goes on", self.location, exc)
                    return
                if isinstance(exc, NotebookStorageError) or not wrap:
                    raise
                raise NotebookStorageError(
                    f"Could not write the output notebook to {self.location}: {str(exc).rstrip('.')}"
                ) from exc
            self.writes += 1
            self._written_seq = seq
        if self._on_write is not None:
            self._on_write(kind, len(data))


def rescue_copy(location: str, data: bytes) -> str | None:
    """Write ``data`` under ``<tmp>/notebook-rescue/`` (named after ``location``); None if that fails too."""
    name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in location)[-180:]
    path = Path(tempfile.gettempdir()) / "notebook-rescue" / name
    try:
        write_atomic(path, data)
    except OSError:
        return None
    return str(path)
