"""Stop a notebook run whose task process has lost its supervisor.

Airflow 3's supervisor puts the task process in a process group of its own, so that it can signal the task and
its children. When the worker dies (its process group is SIGKILLed, the OOM killer takes the supervisor, a node
is lost), the task process is not in that group and survives as an orphan: its kernel keeps running the notebook
and it keeps writing checkpoints of an attempt Airflow has already failed and retried elsewhere. Nobody reads its
result any more, and the next attempt races it on the outputs.

``SupervisorWatch`` is a small daemon thread started by the operator for the length of a run. It notices that the
supervisor is gone, by either sign:

- the parent pid changed (the orphan was re-parented to init or a subreaper), checked every ``interval`` seconds;
- the supervisor's end of the task's comms socket hung up (``POLLHUP``/``POLLRDHUP``, no data consumed).

It then calls ``stop(reason)`` once: the operator stops its ``Execution``, which kills the kernel and saves the
notebook with a banner saying why. As an orphan can no longer report anything, the process is ended
(``os._exit``) if it still runs ``exit_after`` seconds later, so it never outlives its run by long.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_notebook_provider.launcher.child import set_dumpable

log = logging.getLogger(__name__)

_HANGUP = select.POLLHUP | getattr(select, "POLLRDHUP", 0)


def supervisor_socket() -> Any:
    """The task runner's comms socket to its supervisor, when the task runs under one (else None)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # not in an Airflow task
        return None
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    sock = getattr(comms, "socket", None)
    return sock if sock is not None and hasattr(sock, "fileno") else None


class SupervisorWatch:
    """Calls ``stop(reason)`` once if the supervisor of this process goes away; ``close()`` ends the watch.

    :param stop: What to do when the supervisor is gone (the operator stops its run).
    :param log: Where to say so (the task log, which an orphan may still have on disk or in the worker's stdout).
    :param interval: Seconds between two checks.
    :param exit_after: Seconds after ``stop`` at which a still-running orphan ends itself with ``os._exit(1)``
        (None: never): enough for the notebook's last write, with its storage retries.
    :param sock: The supervisor's comms socket (default: the task runner's, if any).
    """

    def __init__(
        self,
        stop: Callable[[str], None],
        *,
        log: Any = log,
        interval: float = 1.0,
        exit_after: float | None = 180.0,
        sock: Any = None,
    ) -> None:
        self._stop = stop
        self._log = log
        self._interval = interval
        self._exit_after = exit_after
        self._parent = os.getppid()
        self._sock = sock if sock is not None else supervisor_socket()
        self._done = threading.Event()
        self.reason: str | None = None
        self._thread = threading.Thread(target=self._watch, name="notebook-supervisor-watch", daemon=True)

    def start(self) -> SupervisorWatch:
        # A process whose parent is already init has no supervisor to watch (e.g. run straight from a container's
        # entry point): nothing to notice.
        if self._parent > 1:
            self._thread.start()
        return self

    def close(self) -> None:
        """End the watch (the run is over); an orphan's exit timer, once started, keeps running."""
        self._done.set()

    def __enter__(self) -> SupervisorWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def gone(self) -> str | None:
        """Why the supervisor is known to be gone, or None while it is there."""
        ppid = os.getppid()
        if ppid != self._parent:
            return f"its parent process {self._parent} exited (the task process now belongs to {ppid})"
        if self._sock is not None and _HANGUP:
            try:
                fd = self._sock.fileno()
                if fd >= 0:
                    poller = select.poll()
                    poller.register(fd, _HANGUP)
                    if poller.poll(0):
                        return "its end of the task's comms socket hung up"
            except (OSError, ValueError):
                pass
        return None

    def _watch(self) -> None:
        while not self._done.wait(self._interval):
            why = self.gone()
            if why is None:
                continue
            self.reason = (
                f"the worker's task supervisor is gone ({why}): Airflow fails this attempt and may retry it "
                "elsewhere, so this orphaned run is stopped"
            )
            try:  # stop first: the log may go to the supervisor's socket, which is gone
                self._stop(self.reason)
            except Exception as exc:  # noqa: BLE001 - the exit timer below still ends the orphan
                _say(self._log, "Stopping the orphaned run failed: %r", exc)
            _say(self._log, "Notebook task orphaned: %s.", self.reason)
            if self._exit_after is not None:
                threading.Thread(target=_exit_later, args=(self._exit_after, self._log), daemon=True,
                                 name="notebook-orphan-exit").start()
            return


def _say(log: Any, msg: str, *args: object) -> None:
    try:
        log.error(msg, *args)
    except Exception:  # noqa: BLE001 - an orphan's log channel may be closed; nothing else to tell
        pass


def _exit_later(seconds: float, log: Any) -> None:
    time.sleep(seconds)
    _say(log, "The orphaned task process still runs %.0f s after its run was stopped; exiting.", seconds)
    os._exit(1)


def watch_supervisor(stop: Callable[[str], None], *, log: Any = log) -> SupervisorWatch:
    """Start watching this process's supervisor (see ``SupervisorWatch``), and hide this task process from the
    kernel it is about to start (``set_dumpable``): the operator calls this before any kernel starts."""
    set_dumpable(False)
    return SupervisorWatch(stop, log=log).start()


# -- where outputs go under a distributed executor -------------------------------------------------------------

LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})


def distributed_executor(task_executor: str | None) -> str | None:
    """The executor running this task if it runs tasks on other hosts than the api-server's (else None).

    ``task_executor`` is the operator's ``executor`` argument; default: the first of ``[core] executor``. An
    executor is named by class, module path or ``alias:path``; the ones that run tasks on the scheduler's own host
    are the local ones, every other (Celery, Kubernetes, Edge, ECS, Batch...) is taken as distributed.
    """
    name = task_executor
    if not name:
        from airflow.providers.common.compat.sdk import conf

        name = (conf.get("core", "executor", fallback="") or "").split(",")[0].strip()
    if not name:
        return None
    short = name.split(":")[-1].rsplit(".", 1)[-1]
    return None if short in LOCAL_EXECUTORS else short


def local_output_warning(location: str, task_executor: str | None, hostname: str) -> str | None:
    """The warning for a local output notebook under a distributed executor (None when it does not apply)."""
    from airflow_notebook_provider.engine import storage

    if storage.is_url(location):
        return None
    executor = distributed_executor(task_executor)
    if executor is None:
        return None
    return (
        f"The output notebook {location} is a local file on worker {hostname}, but this task runs under {executor}, "
        "which runs tasks on other hosts: the api-server's viewer ('Output notebook') may not see the file. Set "
        "[notebook] output_base (or the task's output_notebook) to object storage, e.g. s3://bucket/notebooks, with "
        "conn_id, or a folder shared by the workers and the api-server."
    )
