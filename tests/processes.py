"""Waiting on conditions and finding (or killing) the processes a test started: shared by tests/ and bench/."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


TAG_VAR = "ANP_RELIABILITY_TAG"


def tagged_kernels(tag: str) -> list[str]:
    """Live kernels started with ``ANP_RELIABILITY_TAG=tag`` in their environment.

    The machine is shared (other suites start kernels at the same time), so a test checks its own kernels only:
    a kernel inherits the task's environment, which carries the test's tag.
    """
    found = []
    needle = f"{TAG_VAR}={tag}".encode()
    for line in processes_matching("ipykernel_launcher"):
        pid = line.split()[0]
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            found.append(line)
    return found


def processes_matching(marker: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if marker in cmd and "State:\tZ" not in status:
            found.append(f"{pid} {cmd}")
    return found


def leftover_temp_files(folder: Path) -> list[Path]:
    """Temporary files of atomic writes (``.name.xxxx.tmp``) left under ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".") and p.is_file()]


def kill_group(pid: int, grace: float = 20.0) -> None:
    """SIGTERM a process group, then SIGKILL it if it is still there after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
