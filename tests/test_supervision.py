"""A task process that loses its supervisor stops its run (``supervision.SupervisorWatch``), and a local output
under a distributed executor is warned about.

The end-to-end case (a Celery worker SIGKILLed mid-notebook, its orphaned task process saving the notebook with a
banner and leaving no kernel) is in ``tests/distributed/test_celery.py``; here the watch itself is checked with real
processes: a "supervisor" process that forks the watched one and is then SIGKILLed, and a socket whose peer closes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_notebook_provider.task.supervision import SupervisorWatch, distributed_executor, local_output_warning

ORPHAN = textwrap.dedent('''
    import os, sys, time
    from airflow_notebook_provider.task.supervision import SupervisorWatch

    out = sys.argv[1]
    if os.fork():  # the "supervisor": waits to be killed
        time.sleep(600)
        sys.exit(0)
    os.setpgid(0, 0)  # as Airflow's supervisor does: the task process has a group of its own
    def stop(reason):
        open(out, "w").write(reason)
    SupervisorWatch(stop, interval=0.2, exit_after=2).start()
    open(out + ".pid", "w").write(str(os.getpid()))
    time.sleep(600)  # the "run": only the watch ends it
''')


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_orphan_stops_its_run_and_exits(tmp_path: Path) -> None:
    out = tmp_path / "reason.txt"
    supervisor = subprocess.Popen([sys.executable, "-c", ORPHAN, str(out)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "reason.txt.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        task_pid = int((tmp_path / "reason.txt.pid").read_text())
        os.kill(supervisor.pid, signal.SIGKILL)  # the worker dies; the task process, in its own group, survives
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "task supervisor is gone" in out.read_text()
        assert f"parent process {supervisor.pid} exited" in out.read_text()
        deadline = time.monotonic() + 10  # exit_after=2: the orphan ends itself
        while _alive(task_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(task_pid), "the orphaned process outlived exit_after"
    finally:
        for pgid in (supervisor.pid,):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if (tmp_path / "reason.txt.pid").exists():
            try:
                os.kill(int((tmp_path / "reason.txt.pid").read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


class CountedWatch(SupervisorWatch):
    """A ``SupervisorWatch`` that says when it has looked ``enough`` times: a test waits for that event rather than
    for a guessed time."""

    def __init__(self, *args: Any, enough: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.looks = 0
        self.enough = enough
        self.looked = threading.Event()

    def gone(self) -> str | None:
        why = super().gone()
        self.looks += 1
        if self.looks >= self.enough:
            self.looked.set()
        return why


def test_supervisor_socket_hangup_stops_the_run() -> None:
    ours, theirs = socket.socketpair()
    reasons: list[str] = []
    watch = CountedWatch(reasons.append, interval=0.1, exit_after=None, sock=ours)
    watch.start()
    try:
        assert watch.looked.wait(timeout=30), "the watch never looked at its supervisor"
        assert reasons == [], "a live supervisor socket must not stop the run"
        theirs.close()
        deadline = time.monotonic() + 5
        while not reasons and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reasons and "comms socket hung up" in reasons[0]
    finally:
        watch.close()
        ours.close()


def test_closed_watch_never_stops() -> None:
    ours, theirs = socket.socketpair()
    reasons: list[str] = []
    watch = CountedWatch(reasons.append, interval=0.1, exit_after=None, sock=ours).start()
    watch.close()
    theirs.close()
    for thread in threading.enumerate():  # the watch's thread ends at close: nothing can stop the run after that
        if thread.name == "notebook-supervisor-watch":
            thread.join(timeout=30)
            assert not thread.is_alive(), "a closed watch kept watching"
    assert reasons == []
    ours.close()


@pytest.mark.parametrize(
    ("executor", "distributed"),
    [
        ("CeleryExecutor", "CeleryExecutor"),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", "CeleryExecutor"),
        ("k8s:airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor", "KubernetesExecutor"),
        ("LocalExecutor", None),
        ("airflow.executors.local_executor.LocalExecutor", None),
    ],
)
def test_distributed_executor(executor: str, distributed: str | None) -> None:
    assert distributed_executor(executor) == distributed


def test_local_output_warning_names_host_path_and_fix() -> None:
    text = local_output_warning("/data/out/attempt-1.ipynb", "CeleryExecutor", "worker-a")
    assert text is not None
    for part in ("/data/out/attempt-1.ipynb", "worker-a", "CeleryExecutor", "[notebook] output_base", "viewer"):
        assert part in text
    assert local_output_warning("s3://bucket/out.ipynb", "CeleryExecutor", "worker-a") is None
    assert local_output_warning("/data/out.ipynb", "LocalExecutor", "worker-a") is None
