"""A kernel launcher (light on purpose: it runs as its own process, and every kernel it forks carries its
imports): one long-lived process per worker that has imported ipykernel once and forks a fresh kernel
for each run, instead of each run starting a new interpreter that imports it all again.

A Python kernel's start costs about 0.35 CPU-seconds, most of it importing IPython, ipykernel, tornado and zmq;
on a busy worker that is a quarter of what a short notebook task costs. The launcher pays the imports once.
Each kernel it forks is still a new process, in its own session, that runs ``ipykernel_launcher`` with the
run's own arguments, environment, working directory, umask and standard output and error: the notebook sees
what a kernel started by jupyter_client would see, and nothing of another run's.

What is forked and what is not is decided by the launcher, from facts only it knows (``refusal``): only the kernelspec argv
``<this interpreter> -m ipykernel_launcher ...``, and only when the run's interpreter-level variables (``PYTHON*``
and ``LD_*``, read once when an interpreter starts) equal the launcher's own. Anything else is refused and the
caller starts the kernel as a new process, as it would without a launcher.

Lifetimes: a kernel lives as long as its client's connection to the launcher (the task process): when the task
process exits or dies, the launcher kills the kernel's process group. The launcher stops taking requests when the
process that started it (the worker) is gone, and exits when its last kernel has exited.

Protocol, over a Unix socket in a folder only this user can enter: the client sends a length-prefixed JSON request
with its standard output and error as file descriptors (SCM_RIGHTS), within ``REQUEST_DEADLINE`` seconds; the
launcher answers one JSON line (``{"pid": N}`` or ``{"refused": why}``) and, when the kernel exits, a second one
(``{"exit": code}``, negative for a signal, as ``subprocess`` says it).

Fork first: the launcher forks a child for each connection as soon as it accepts it, and that child reads the
request and becomes the kernel or sends the refusal (``child.py``). So the launcher never holds a run's
environment (its secrets) in its memory, which every later kernel is forked from, and a client that stalls holds
only its own child, which is killed at the deadline. The launcher is not dumpable (``set_dumpable``):
a kernel of the same user cannot read its environment or memory; each kernel is dumpable, as a new process is.
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_notebook_provider.launcher.child import (
    HEADER,
    REQUEST_DEADLINE,
    become_kernel,
    read_request,
    refusal,
    send_line,
    set_dumpable,
    set_title,
)

__all__ = ["ENV_VAR", "HEADER", "REQUEST_DEADLINE", "Launcher", "kill_group", "refusal", "start"]

ENV_VAR = "NOTEBOOK_KERNEL_LAUNCHER"
"""The launcher's socket path, set for the worker's task processes by whoever started the launcher."""

_REQUEST_GRACE = 2.0  # after which a child still reading a request is killed by the launcher
_KERNEL = b"k"  # what a child forked for a request says on its status pipe when it becomes the kernel
_MAX_SOCKET_FOLDER = 90
# Room for a kernel's command line in ``ps``: the title of a process fits in its original argv's memory (with
# SPT_NOENV, setproctitle leaves /proc/PID/environ alone), so the launcher starts with this much of it.
_TITLE_ROOM = 512


@dataclass
class _Pending:
    """A request being read by the child forked for it, which says on ``status`` whether it becomes a kernel."""

    conn: socket.socket
    pid: int
    deadline: float


class Launcher:
    """The server: accepts connections, forks a child for each (which reads the request and becomes the kernel),
    tracks the kernels, and reports their exits. It never reads a request itself (``_child``)."""

    def __init__(self, path: str, *, parent: int | None = None, startup_env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.parent = parent if parent is not None else os.getppid()
        # The environment this process started with (what a forked kernel's /proc/self/environ shows), and what
        # the preloaded modules added to it since, which a new kernel process would have added to its own.
        self.startup_env = dict(os.environ if startup_env is None else startup_env)
        self.added_env = {k: v for k, v in os.environ.items() if self.startup_env.get(k) != v}
        self.path_entry = sys.path[0] if sys.path else ""
        self.listener: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.kernels: dict[socket.socket, int] = {}  # connection -> kernel pid
        self.pending: dict[int, _Pending] = {}  # read end of the child's status pipe -> its request
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # a deploy's signals go to the worker; running kernels finish
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        while self.listener is not None or self.kernels or self.pending:
            readers: list[Any] = [self.wake_r, *self.kernels, *self.pending]
            if self.listener is not None:
                readers.append(self.listener)
            ready, _, _ = select.select(readers, [], [], 1.0)
            for item in ready:
                if item is self.listener:
                    self._accept()
                elif item == self.wake_r:
                    while True:
                        try:
                            os.read(self.wake_r, 512)
                        except BlockingIOError:
                            break
                elif item in self.pending:
                    self._answer(item)
                elif item in self.kernels:
                    try:
                        if item.recv(4096):  # clients send nothing after their request: ignore it
                            continue
                    except OSError:
                        pass
                    # the client closed (the task process ended, however it ended): its kernel goes too
                    pid = self.kernels.pop(item)
                    _say(f"the client of kernel {pid} is gone: killing the kernel")
                    kill_group(pid)
                    item.close()
            now = time.monotonic()
            for status, late in [(k, p) for k, p in self.pending.items() if now > p.deadline + _REQUEST_GRACE]:
                _say(f"request {late.pid} not read by its deadline: killing it")  # its own deadline failed
                self._kill(late.pid)
                self._drop(status)
            self._reap()
            if self.listener is not None and os.getppid() != self.parent:
                self._stop_listening()

    def _stop_listening(self) -> None:
        assert self.listener is not None
        self.listener.close()
        self.listener = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for fd, pending in list(self.pending.items()):
                if pending.pid == pid:  # what it said before it exited, first
                    self._answer(fd)
            code = os.waitstatus_to_exitcode(status)
            for conn, kernel in list(self.kernels.items()):
                if kernel == pid:
                    _say(f"kernel {pid} exited with {code}")
                    del self.kernels[conn]
                    send_line(conn, {"exit": code})
                    conn.close()

    def _accept(self) -> None:
        """Fork a child for the connection at once: a slow client holds only its own child, never this process,
        and the request (the run's environment) is read into the child's memory, never into this one's, which
        every later kernel is forked from."""
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        except OSError as exc:  # the client left at once, or no file descriptor left: the others go on
            _say(f"cannot accept a connection ({exc})")
            return
        if uid != os.getuid():
            send_line(conn, {"refused": "a client of another user"})
            conn.close()
            return
        deadline = time.monotonic() + REQUEST_DEADLINE
        status_r, status_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _say(f"cannot fork ({exc})")
            send_line(conn, {"refused": f"the launcher cannot fork ({exc})"})
            for fd in (status_r, status_w):
                os.close(fd)
            conn.close()
            return
        if pid == 0:
            os.close(status_r)
            self._child(conn, status_w, deadline)  # never returns
        os.close(status_w)
        self.pending[status_r] = _Pending(conn, pid, deadline)

    def _answer(self, status: int) -> None:
        """The child forked for a request has read it: answer the client with its pid if it became a kernel (then
        watch the client), or leave the answer to the child, which sent its refusal itself."""
        pending = self.pending[status]
        said = os.read(status, 1)
        self._drop(status, close=said != _KERNEL)
        if said != _KERNEL:
            return
        if send_line(pending.conn, {"pid": pending.pid}):
            self.kernels[pending.conn] = pending.pid
            _say(f"forked kernel {pending.pid}")
        else:  # the client is gone (or stalls): nobody would track this kernel
            _say(f"the client of kernel {pending.pid} is gone before its answer: killing the kernel")
            self._kill(pending.pid)
            pending.conn.close()

    def _drop(self, status: int, *, close: bool = True) -> None:
        pending = self.pending.pop(status)
        os.close(status)
        if close:
            pending.conn.close()

    def _child(self, conn: socket.socket, status: int, deadline: float) -> None:
        """In the child forked for one connection: read the request by ``deadline``, then refuse it or become the
        kernel. Exits, never returns."""
        code = 1
        try:
            os.setsid()  # its own process group from the start: the launcher kills it with the group
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            for other in [*self.kernels, *(p.conn for p in self.pending.values())]:
                other.close()
            for fd in (*self.pending, self.wake_r, self.wake_w):
                os.close(fd)
            if self.listener is not None:
                self.listener.close()
            try:
                request, fds = read_request(conn, deadline)
                why = refusal(list(request["argv"]), request["env"], self.startup_env)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                request, fds, why = {}, [], f"bad request: {exc}"
            if why is not None or len(fds) != 2:
                send_line(conn, {"refused": why or "no standard output and error"})
                code = 0
                return
            conn.close()
            os.write(status, _KERNEL)  # the launcher answers the client and watches it from now on
            os.close(status)
            become_kernel(request, fds, added_env=self.added_env, path_entry=self.path_entry)
        finally:
            os._exit(code)

    @staticmethod
    def _kill(pid: int) -> None:
        """A child of this process, and its process group (an unreaped child's pid cannot be another's)."""
        kill_group(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _say(message: str) -> None:
    """One line on the launcher's stderr (the worker's log), so an operator can follow each kernel."""
    print(f"[notebook kernel launcher {os.getpid()}] {message}", file=sys.stderr, flush=True)


def kill_group(pid: int) -> None:
    """SIGKILL a kernel's process group (a kernel is a session leader); safe from a signal handler."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def preload() -> None:
    """What every kernel imports before it answers: once here instead of once per kernel. The list is what a
    forked kernel still imported by its first cell (its ``sys.modules``), so its own start does little more than
    create its objects and sockets."""
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # optional parts (debugpy, psutil): a kernel goes without them as it would anyway
            pass
    if threading.active_count() > 1:  # a thread does not survive fork(), and a lock it held stays held
        raise RuntimeError(f"preloading started threads ({threading.enumerate()}); the launcher cannot fork")


_PRELOAD = (
    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
    "IPython.core.interactiveshell", "IPython.core.completer", "IPython.core.completerlib", "IPython.core.debugger",
    "IPython.core.oinspect", "IPython.core.logger", "IPython.extensions.storemagic",
    "traitlets.config.argcomplete_config", "tornado.platform.asyncio", "psutil", "sqlite3", "pdb", "pydoc",
    "faulthandler", "runpy",
)


def start(folder: str | None = None, *, stderr: Any = None, env: Mapping[str, str] | None = None,
          ) -> tuple[subprocess.Popen[bytes], str]:
    """Start a launcher for this process (it stops when this process is gone); return it and its socket path.

    Started with this interpreter, so it serves the kernelspecs that run it; in a session of its own, so that a
    signal to the worker's process group reaches the tasks (which stop their kernels) and not the launcher.
    Waits until the socket answers. ``stderr``: where its one line per kernel goes (default: this process's).
    ``env``: its environment (default: this process's), which every kernel it forks must hold (``refusal``):
    give it what a kernel inherits by default, without the worker's secrets.
    """
    if folder is None:
        folder = tempfile.mkdtemp(prefix="notebook-kernels-")
        if len(folder) > _MAX_SOCKET_FOLDER:  # a Unix socket path has at most 107 bytes
            os.rmdir(folder)
            folder = tempfile.mkdtemp(prefix="notebook-kernels-", dir="/tmp")
    os.chmod(folder, 0o700)
    path = os.path.join(folder, "launcher.sock")
    proc = subprocess.Popen([sys.executable, "-m", "airflow_notebook_provider.launcher.server", path, "#" * _TITLE_ROOM],
                            stdin=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                            env={**{k: v for k, v in (os.environ if env is None else env).items() if k != ENV_VAR},
                                 "SPT_NOENV": "1"})
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the kernel launcher did not start (exit code {proc.poll()})")
        time.sleep(0.02)
    return proc, path


def main(argv: list[str]) -> None:
    if not 1 <= len(argv) <= 2:
        raise SystemExit("usage: python -m airflow_notebook_provider.launcher.server SOCKET_PATH [TITLE_ROOM]")
    path = argv[0]
    # Kernels run as this user: none may read this process's environment or memory (README, "Security model").
    set_dumpable(False)
    set_title(f"{sys.executable} -m airflow_notebook_provider.launcher.server {path}")
    # Read by ipykernel when imported (a trait's default): the kernels' parent is this process.
    os.environ["JPY_PARENT_PID"] = str(os.getpid())
    startup_env = dict(os.environ)
    preload()
    import gc

    gc.freeze()  # the imported modules' objects stay shared with every kernel, never touched by a collection
    tmp = f"{path}.{os.getpid()}"
    launcher = Launcher(tmp, startup_env=startup_env)
    os.rename(tmp, path)  # the path appears only once it answers
    launcher.path = path
    launcher.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
