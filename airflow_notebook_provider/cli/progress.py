"""What the command shows while a notebook runs: a live "cell i/n, elapsed" line on a terminal, warnings, and the
kernel's own stderr only when it matters."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any, TextIO

from airflow_notebook_provider.notebook.text import printable


class Progress(logging.Handler):
    """Receives the engine's log records and its ``on_cell_start`` hook.

    With ``verbose`` every record is printed, as the task log shows them; otherwise only warnings, and the live
    line when ``stream`` is a terminal (nothing at all when it is not).
    """

    def __init__(self, stream: TextIO, *, verbose: bool) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.verbose = verbose
        self.live = not verbose and stream.isatty()
        self.status = "starting the kernel"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.logger = logging.getLogger(f"{__name__}.run.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)

    def cell_started(self, number: int, total: int, cell: Any) -> None:
        self.status = f"cell {number}/{total}"

    def emit(self, record: logging.LogRecord) -> None:
        if self.verbose or record.levelno >= logging.WARNING:
            self._print(f"{record.levelname.lower()}: {record.getMessage()}" if record.levelno >= logging.WARNING
                        else record.getMessage())

    def _print(self, text: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\x1b[K")
            self.stream.write(printable(text) + "\n")  # cells' output and names come from the notebook
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            elapsed = int(time.monotonic() - self.started)
            with self._lock:
                self.stream.write(f"\r\x1b[K{self.status} · {elapsed // 60:02d}:{elapsed % 60:02d} elapsed")
                self.stream.flush()

    def __enter__(self) -> Progress:
        if self.live:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.logger.removeHandler(self)


class KernelStderr:
    """Collect what the kernel process writes to its stderr (it inherits ours) instead of mixing it into ours.

    The kernel's own log chatter is not the notebook's output (that is in the notebook and, with --log-output, on
    the screen); it is shown only when the kernel died or did not start, or with --log-output. ``terminal`` is the
    real stderr, for progress and messages while fd 2 is redirected.
    """

    def __enter__(self) -> KernelStderr:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self.terminal = os.fdopen(os.dup(self._saved), "w", buffering=1)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self.terminal.close()
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
