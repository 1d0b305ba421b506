"""Run a notebook with the engine alone (``run``), its log lines kept by a ``Recorder``; used by tests/engine's
test modules."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from airflow_notebook_provider.engine import ExecutionSettings, NotebookRun, RunResult, load, prepare_parameters
from airflow_notebook_provider.engine.storage import write_atomic


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic(), record.getMessage()))


def run(path: Path, out: Path, params: dict | None = None, **settings: object) -> tuple[RunResult, Recorder]:
    log = logging.getLogger(f"test.{out.name}")
    log.setLevel(logging.INFO)
    rec = Recorder()
    log.addHandler(rec)
    nb = load(path.read_bytes(), str(path))
    r = NotebookRun(nb, input_path=str(path), output_path=str(out), save=lambda data: write_atomic(out, data),
                    parameters=prepare_parameters(params), settings=ExecutionSettings(**settings), log=log)
    try:
        return r.run(), rec
    finally:
        log.removeHandler(rec)
