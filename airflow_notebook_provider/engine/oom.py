"""Whether a kernel that died was killed for memory, as far as Linux tells: its memory cgroup's OOM-kill counter, and
the kernel log's OOM record naming its process.

``OomWatch.of(pid)`` notes, once the kernel answers, which memory cgroups the kernel process is in (cgroup v2 and
v1's memory controller) and their ``oom_kill`` counters. When the kernel dies of ``SIGKILL``, ``explain`` looks
again: a counter that rose, or a record in ``/dev/kmsg`` ("Killed process <pid>", readable by root or with
``CAP_SYSLOG``), makes the death ``out_of_memory``, with the cgroup's limit and peak or the process's resident memory
when it was killed. No evidence (a gateway's kernel, an unreadable ``/proc``, a ``kill -9``): None, a dead kernel.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from airflow_notebook_provider.engine import _compat

_CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))  # cgroup v2: alone, or beside v1 (hybrid)
_V1_MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
_KMSG = "/dev/kmsg"
_KMSG_RECORDS = 100_000  # at most this many records read (the ring buffer holds a few thousand)
_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\).*?anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB")
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class _Cgroup:
    path: Path
    events: str
    """The file holding ``oom_kill N``: ``memory.events`` (v2) or ``memory.oom_control`` (v1)."""
    peak: str
    limit: str
    oom_kills: int

    def read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except OSError:
            return None

    def now(self) -> int | None:
        return _oom_kills(self.read(self.events))


class OomWatch:
    """The memory cgroups of one kernel process and their OOM-kill counts when it started."""

    def __init__(self, pid: int, cgroups: list[_Cgroup]) -> None:
        self.pid = pid
        self.cgroups = cgroups
        self.since = time.monotonic()

    @classmethod
    def of(cls, pid: int | None) -> OomWatch | None:
        """The watch of a local kernel process (None without a pid: a remote kernel)."""
        if not pid or pid <= 0:
            return None
        return cls(pid, _cgroups(pid))

    def explain(self, exit_code: int | None) -> str | None:
        """How the kernel was killed for memory, in words a person can act on; None without evidence of it."""
        if exit_code is not None and exit_code != -signal.SIGKILL:
            return None
        for cgroup in self.cgroups:
            count = cgroup.now()
            if count is not None and count > cgroup.oom_kills:
                limit, peak = _bytes(cgroup.read(cgroup.limit)), _bytes(cgroup.read(cgroup.peak))
                figures = [f"limit {_mib(limit)}" if limit and limit < _UNLIMITED else "",
                           f"peak {_mib(peak)}" if peak else ""]
                detail = ", ".join(f for f in figures if f)
                return (f"the kernel was killed by the out-of-memory killer (SIGKILL): its memory cgroup {cgroup.path}"
                        f"{f' ({detail})' if detail else ''} was full; {_FIX}")
        rss = _kmsg_rss(self.pid, self.since)
        if rss is not None:
            return (f"the kernel was killed by the out-of-memory killer (SIGKILL) holding {_mib(rss)} "
                    f"(the kernel log's OOM record of process {self.pid}); {_FIX}")
        return None


_FIX = "process less data at once or give the task more memory"


def death(kernel: Any, watch: OomWatch | None) -> tuple[Literal["out_of_memory", "dead_kernel"], str]:
    """How a kernel died, for the failure: ``out_of_memory`` when its memory cgroup or the kernel log says so,
    else ``dead_kernel`` with its exit status in words (``Kernel.exit_reason``)."""
    died = kernel.exit_reason()  # waits for its exit status
    proc = _compat.kernel_process(getattr(kernel, "km", None))
    oom = watch.explain(getattr(proc, "returncode", None)) if watch is not None else None
    return ("out_of_memory", oom) if oom else ("dead_kernel", died)


def _cgroups(pid: int) -> list[_Cgroup]:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    found: list[_Cgroup] = []
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2
            candidates = [(root / rel.lstrip("/"), "memory.events", "memory.peak", "memory.max") for root in _CGROUP_ROOTS]
        elif "memory" in controllers.split(","):
            candidates = [(_V1_MEMORY_ROOT / rel.lstrip("/"), "memory.oom_control", "memory.max_usage_in_bytes",
                           "memory.limit_in_bytes")]
        else:
            continue
        for path, events, peak, limit in candidates:
            try:
                count = _oom_kills((path / events).read_text())
            except OSError:
                continue
            if count is not None:
                found.append(_Cgroup(path, events, peak, limit, count))
                break
    return found


def _oom_kills(text: str | None) -> int | None:
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def _bytes(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def _kmsg_rss(pid: int, since: float) -> int | None:
    """The resident bytes of ``pid`` when the kernel's OOM killer killed it, from its record in ``/dev/kmsg`` written
    after ``since`` (``time.monotonic()``, the clock of the records' timestamps); None if there is none or the log
    cannot be read."""
    try:
        fd = os.open(_KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found: int | None = None
    try:
        for _ in range(_KMSG_RECORDS):
            try:
                record = os.read(fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                break  # the end of the log
            except BrokenPipeError:
                continue  # records overwritten while reading: go on with the next
            except OSError:
                break
            prefix, _, message = record.partition(";")
            fields = prefix.split(",")
            if len(fields) < 3 or not fields[2].isdigit() or int(fields[2]) / 1e6 < since - 1:
                continue
            match = _KILLED.search(message)
            if match and int(match.group(1)) == pid:
                found = sum(int(match.group(i)) for i in (3, 4, 5)) * 1024
    finally:
        os.close(fd)
    return found
