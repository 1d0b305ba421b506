"""What each code cell cost: its duration, the kernel's peak memory and its CPU seconds, in the cell's metadata.

``CellSampler`` is started and stopped around each code cell by ``runner.py``. While a cell runs, a thread reads
``/proc`` every ``INTERVAL`` seconds: the resident memory (``statm``) of the kernel process and of every process
below it (``task/*/children``), summed; at the cell's start and end, the CPU time (``stat``: user + system, the
processes' own and their waited-for children's) of that tree. The kernel process's own high-water mark
(``VmHWM``, reset at the cell's start through ``clear_refs``) catches a peak shorter than the interval.

The result goes into ``cell.metadata.airflow_notebook.resources`` (``RESOURCES_KEY``, read back by
``notebook.resources``): ``duration_s``, ``peak_rss_bytes``, ``cpu_s``, ``samples``. Memory and CPU need the
kernel's process id on this machine (a local kernel, one forked by the worker's launcher, a kernel of another
Python environment); for a kernel elsewhere (a Jupyter gateway, an attached kernel) they are ``null`` and only the
duration is recorded. papermill's own timing fields (``metadata.papermill``) are left as they are.

Sampling costs a few ``/proc`` reads per interval in a thread of the task process; ``ExecutionSettings.cell_resources``
False (``[notebook] cell_resources = off`` for tasks) records durations only (``bench/README.md`` has the cost).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from airflow_notebook_provider.notebook.resources import OWN_KEY, RESOURCES_KEY

INTERVAL = 0.05
"""Seconds between two samples of the kernel's memory while a cell runs."""
_IDLE_EXIT = 2.0  # the sampling thread ends after this long with no cell running; the next cell starts another
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def kernel_pid(kernel: Any) -> int | None:
    """The kernel's process id on this machine, or None (a remote kernel, one not started, a platform without
    ``/proc``)."""
    pid = getattr(kernel, "pid", None)
    if isinstance(pid, int) and pid > 0 and os.path.isdir(f"/proc/{pid}"):
        return pid
    return None


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("ascii", "replace")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (children of any of its threads), as ``/proc`` lists them now."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in _read(f"/proc/{p}/task/{tid}/children").split())
        except OSError:  # exited meanwhile
            continue
    return found


def _rss(pid: int) -> int:
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks(pid: int) -> int:
    """User + system time of ``pid`` and of its children it waited for, in clock ticks."""
    try:
        fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])  # utime stime cutime cstime (fields 14-17 of proc(5))
    except (OSError, IndexError, ValueError):
        return 0


def _hwm(pid: int) -> int:
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (proc(5))
        return True
    except OSError:
        return False


class CellSampler:
    """Measures one cell at a time on one run's kernel: ``start()`` before the cell, ``stop()`` after it."""

    def __init__(self, kernel: Any, cells: Iterable[Any] = (), *, interval: float = INTERVAL,
                 enabled: bool = True) -> None:
        self.kernel = kernel
        self.interval = interval
        self.enabled = enabled
        self._lock = threading.Lock()
        self._active = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._t0 = 0.0
        self._cpu0 = 0
        self._peak = 0
        self._samples = 0
        self._hwm_reset = False
        for cell in cells:  # a re-run of an output notebook: no figures of an earlier run left on any cell
            own = (cell.get("metadata") or {}).get(OWN_KEY)
            if isinstance(own, dict):
                own.pop(RESOURCES_KEY, None)

    def start(self) -> None:
        pid = kernel_pid(self.kernel) if self.enabled else None
        with self._lock:
            self._pid, self._peak, self._samples = pid, 0, 0
            if pid is not None:
                self._hwm_reset = _reset_hwm(pid)
                tree = process_tree(pid)
                self._cpu0 = sum(_cpu_ticks(p) for p in tree)
                self._sample(tree)
            self._t0 = time.monotonic()
            if pid is not None:
                self._active.set()
                if self._thread is None:  # none yet, or it ended while no cell ran
                    self._thread = threading.Thread(target=self._loop, name="cell-resources", daemon=True)
                    self._thread.start()

    def stop(self) -> dict[str, Any]:
        """The cell's figures (``null`` memory and CPU where the kernel is not a process here)."""
        self._active.clear()
        with self._lock:
            duration = time.monotonic() - self._t0
            pid, self._pid = self._pid, None
            if pid is None:
                return {"duration_s": round(duration, 6), "peak_rss_bytes": None, "cpu_s": None, "samples": 0}
            tree = process_tree(pid)
            self._sample(tree)
            cpu = max(0, sum(_cpu_ticks(p) for p in tree) - self._cpu0) / _TICK
            peak = max(self._peak, _hwm(pid)) if self._hwm_reset else self._peak
            return {"duration_s": round(duration, 6), "peak_rss_bytes": peak, "cpu_s": round(cpu, 3),
                    "samples": self._samples}

    def _sample(self, tree: list[int]) -> None:
        """One reading of the tree's resident memory (the lock held)."""
        rss = sum(_rss(p) for p in tree)
        self._peak = max(self._peak, rss)
        self._samples += 1

    def _loop(self) -> None:
        while True:
            if not self._active.wait(_IDLE_EXIT):
                with self._lock:  # ``start`` sets the event under the lock: no cell can be missed here
                    if not self._active.is_set():
                        self._thread = None
                        return
                continue
            time.sleep(self.interval)
            with self._lock:
                if self._pid is not None and self._active.is_set():
                    self._sample(process_tree(self._pid))


def record(cell: Any, figures: dict[str, Any]) -> None:
    """Put one cell's figures in its metadata (``metadata.airflow_notebook.resources``)."""
    if not isinstance(cell.metadata.get(OWN_KEY), dict):
        cell.metadata[OWN_KEY] = {}
    cell.metadata[OWN_KEY][RESOURCES_KEY] = figures  # read back: a NotebookNode copies what is assigned to it
