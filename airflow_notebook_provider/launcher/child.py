"""What the kernel launcher's child does (``server.py``): the launcher forks one child per connection, at once,
and that child reads the client's request, checks it, and refuses it or becomes the run's kernel.

The launcher itself never reads a request. A request carries the run's environment, and with it the run's secrets
(``NOTEBOOK_SECRET_*``): read into the launcher's memory, freed memory that is not wiped, every kernel forked
after it would start with a copy of it, which its notebook can read in ``/proc/self/mem``. Read by the child, it
stays in the memory of the process that becomes this run's kernel. And a client that sends its request slowly
holds its own child, never the launcher: each request has one deadline (``REQUEST_DEADLINE``), however its bytes
come.

Light on purpose, as ``server.py``: every kernel the launcher forks carries what these modules import.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

HEADER = struct.Struct("!I")
"""A request's length prefix."""
MAX_REQUEST = 16 * 1024 * 1024
REQUEST_DEADLINE = 5.0
"""Seconds a client has to send its whole request, from the moment the launcher accepts its connection."""
# Variables an interpreter reads once, at start: a kernel forked from the launcher has the launcher's values.
_STARTUP_PREFIXES = ("PYTHON", "LD_")
# Variables the launcher sets for itself, not taken from its starter.
_OWN_VARS = frozenset({"SPT_NOENV", "JPY_PARENT_PID"})


def refusal(argv: list[str], env: Mapping[str, str], startup_env: Mapping[str, str]) -> str | None:
    """Why a kernel with this argv and environment cannot be forked from this launcher, or None if it can.

    A forked kernel carries the launcher's start-up environment twice over: in what its interpreter read when it
    started (``PYTHON*``, ``LD_*``) and in ``/proc/self/environ``, which shows the environment a process was
    started with. So the run's environment must hold all of the launcher's, unchanged, and no interpreter
    variable of its own: then a forked kernel can see nothing a new process would not have.
    """
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"]:
        return "not an ipykernel kernelspec (`python -m ipykernel_launcher ...`)"
    if os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
        return f"another interpreter ({argv[0]}; the launcher runs {sys.executable})"
    missing = sorted(k for k, v in startup_env.items() if k not in _OWN_VARS and env.get(k) != v)
    if missing:
        return f"the run's environment lacks or changes the launcher's ({', '.join(missing)})"
    extra = sorted(k for k in env if k.startswith(_STARTUP_PREFIXES) and k not in startup_env)
    if extra:
        return f"interpreter settings differ from the launcher's ({', '.join(extra)})"
    return None


def read_request(conn: socket.socket, deadline: float) -> tuple[dict[str, Any], list[int]]:
    """A client's request and the file descriptors sent with it, all read by ``deadline`` (``time.monotonic``),
    however slowly its bytes come; ``ValueError`` says what was wrong with it."""

    def recv(size: int, with_fds: bool = False) -> tuple[bytes, list[int]]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError(f"the request did not arrive within {REQUEST_DEADLINE:.0f} s")
        conn.settimeout(left)
        try:
            data, fds = socket.recv_fds(conn, size, 2)[:2] if with_fds else (conn.recv(size), [])
        except TimeoutError:
            raise ValueError(f"the request did not arrive within {REQUEST_DEADLINE:.0f} s") from None
        if not data:
            for fd in fds:
                os.close(fd)
            raise ValueError("a truncated request")
        return data, fds

    data, fds = recv(65536, with_fds=True)
    try:
        while len(data) < HEADER.size:
            data += recv(65536)[0]
        (size,) = HEADER.unpack_from(data)
        if size > MAX_REQUEST:
            raise ValueError("a request too large")
        body = data[HEADER.size:]
        while len(body) < size:
            body += recv(min(65536, size - len(body)))[0]
        return json.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def send_line(conn: socket.socket, answer: dict[str, Any]) -> bool:
    """One JSON line to a client, without waiting for it: False if it cannot take it now (gone, or not reading)."""
    line = json.dumps(answer).encode() + b"\n"
    try:
        return conn.send(line, socket.MSG_DONTWAIT) == len(line)
    except OSError:
        return False


INHERITED_SIGNALS = ("SIGHUP", "SIGINT", "SIGTERM")
"""The signals the launcher resets for its children that a process started by ``exec`` inherits when they are ignored
(``nohup`` ignores SIGHUP): the request names those its task process ignores, and the child ignores them too."""


def become_kernel(request: dict[str, Any], fds: list[int], *, added_env: Mapping[str, str], path_entry: str) -> None:
    """In the forked child, once it holds nothing of the launcher's but its memory: take the run's settings and
    run ``ipykernel_launcher``; exits, never returns.

    The kernel is made dumpable again (the launcher is not: ``set_dumpable``), as a kernel started as
    a new process is after ``execve``: it reads its own /proc/self (environ, mem, fd; psutil), a debugger or
    profiler of its user can attach to it, and what it holds is its own run's and the launcher's start-up state,
    which every kernel forked from the launcher holds as well.
    """
    code = 1
    try:
        set_dumpable(True)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.umask(int(request["umask"]))
        for name in request.get("ignored_signals") or ():  # ignored by the task process: exec would keep them so
            if name in INHERITED_SIGNALS:
                signal.signal(getattr(signal, name), signal.SIG_IGN)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for name, value in added_env.items():
            os.environ.setdefault(name, value)
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # ipykernel exits if the launcher dies
        if sys.path and sys.path[0] == path_entry:
            sys.path[0] = os.getcwd()  # as `python -m` would have it; ipykernel_launcher takes it out
        argv = list(request["argv"])
        import runpy

        sys.argv = [argv[2], *argv[3:]]
        set_title(" ".join(argv))  # `ps` shows a kernel, not a second launcher
        runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        code = 0
        _join_control_thread()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a kernel that cannot start says why on its stderr, then exits
        import traceback

        traceback.print_exc()
    finally:
        try:  # what the interpreter does at exit, in its order, short of tearing its modules down
            import atexit

            shutdown = getattr(threading, "_shutdown", None)
            if shutdown is not None:  # joins the kernel's threads: its atexit handler closes their channels
                shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def set_title(title: str) -> None:
    """What ``ps`` shows for this process (its command line), if setproctitle is installed."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def _join_control_thread(timeout: float = 5.0) -> None:
    """Let ipykernel's control thread finish the shutdown request it is answering before the kernel's exit
    handler closes the IOPub thread that this answer still flushes through (ipykernel 7 joins the control thread
    after stopping IOPub; a new kernel process reaches that point late enough, a forked one does not)."""
    from ipykernel.kernelapp import IPKernelApp

    if IPKernelApp.initialized():
        thread = getattr(IPKernelApp.instance(), "control_thread", None)
        if thread is not None and thread.is_alive():
            thread.join(timeout)


# -- what a kernel of the same user can read of this process ---------------------------------------------------

_PR_SET_DUMPABLE = 4


def set_dumpable(dumpable: bool) -> bool:
    """Set this process's "dumpable" flag (Linux ``prctl(PR_SET_DUMPABLE)``); False where there is none.

    A process that is not dumpable cannot be read by another process of the same user that lacks
    ``CAP_SYS_PTRACE``: its ``/proc/PID/environ``, ``/proc/PID/mem``, ``maps`` and ``fd`` are refused, and it
    cannot be attached with ptrace. The task process, the Celery worker and the kernel launcher hold the worker's
    secrets (``AIRFLOW_CONN_*``...) that the kernel's denylist keeps out of the kernel's environment; a kernel runs
    as the same user, and without this it reads them from its parents. The flag is inherited by ``fork()`` and
    reset by ``execve()``, so a kernel started as a new process is dumpable as usual. It stops nothing against
    root, or a kernel running as root (``CAP_SYS_PTRACE``); README, "Security model".
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return False
    return bool(prctl(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0) == 0)
