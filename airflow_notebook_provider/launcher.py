"""A kernel launcher (light on purpose: it runs as its own process, and every kernel it forks carries its
imports): one long-lived process per worker that has imported ipykernel once and forks a fresh kernel
for each run, instead of each run starting a new interpreter that imports it all again.

A Python kernel's start costs about 0.35 CPU-seconds, most of it importing IPython, ipykernel, tornado and zmq;
on a busy worker that is a quarter of what a short notebook task costs. The launcher pays the imports once.
Each kernel it forks is still a new process, in its own session, that runs ``ipykernel_launcher`` with the
run's own arguments, environment, working directory, umask and standard output and error: the notebook sees
what a kernel started by jupyter_client would see, and nothing of another run's.

What is forked and what is not is decided here, from facts only this process knows: only the kernelspec argv
``<this interpreter> -m ipykernel_launcher ...``, and only when the run's interpreter-level variables (``PYTHON*``
and ``LD_*``, read once when an interpreter starts) equal the launcher's own. Anything else is refused and the
caller starts the kernel as a new process, as it would without a launcher.

Lifetimes: a kernel lives as long as its client's connection to the launcher (the task process): when the task
process exits or dies, the launcher kills the kernel's process group. The launcher stops taking requests when the
process that started it (the worker) is gone, and exits when its last kernel has exited.

Protocol, over a Unix socket in a folder only this user can enter: the client sends a length-prefixed JSON request
with its standard output and error as file descriptors (SCM_RIGHTS); the launcher answers one JSON line
(``{"pid": N}`` or ``{"refused": why}``) and, when the kernel exits, a second one (``{"exit": code}``, negative
for a signal, as ``subprocess`` says it).
"""

from __future__ import annotations

import importlib
import json
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
from typing import Any

ENV_VAR = "NOTEBOOK_KERNEL_LAUNCHER"
"""The launcher's socket path, set for the worker's task processes by whoever started the launcher."""

HEADER = struct.Struct("!I")
"""A request's length prefix."""
_MAX_REQUEST = 16 * 1024 * 1024
_MAX_SOCKET_FOLDER = 90
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


class Launcher:
    """The server: accepts requests, forks kernels, reaps them, and reports their exits."""

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
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # a deploy's signals go to the worker; running kernels finish
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        while self.listener is not None or self.kernels:
            readers: list[Any] = [self.wake_r, *self.kernels]
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
            code = os.waitstatus_to_exitcode(status)
            _say(f"kernel {pid} exited with {code}")
            for conn, kernel in list(self.kernels.items()):
                if kernel == pid:
                    del self.kernels[conn]
                    try:
                        conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
                    except OSError:
                        pass
                    conn.close()

    def _accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(5.0)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                raise ValueError("a client of another user")
            data, fds, _, _ = socket.recv_fds(conn, 65536, 2)
            while len(data) < HEADER.size:
                more = conn.recv(65536)
                if not more:
                    raise ValueError("a truncated request")
                data += more
            (size,) = HEADER.unpack_from(data)
            if size > _MAX_REQUEST:
                raise ValueError("a request too large")
            body = data[HEADER.size:]
            while len(body) < size:
                more = conn.recv(min(65536, size - len(body)))
                if not more:
                    raise ValueError("a truncated request")
                body += more
            request = json.loads(body)
            why = refusal(list(request["argv"]), request["env"], self.startup_env)
            if why is not None or len(fds) != 2:
                conn.sendall(json.dumps({"refused": why or "no standard output and error"}).encode() + b"\n")
                conn.close()
                return
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self._become_kernel(request, fds, conn)  # never returns
            conn.settimeout(None)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            self.kernels[conn] = pid
            _say(f"forked kernel {pid} in {request['cwd']}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            try:
                conn.sendall(json.dumps({"refused": f"bad request: {exc}"}).encode() + b"\n")
            except OSError:
                pass
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _become_kernel(self, request: dict[str, Any], fds: list[int], conn: socket.socket) -> None:
        """In the forked child: shed the launcher, take the run's settings, and run ``ipykernel_launcher``."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            for other in [conn, *self.kernels]:
                other.close()
            if self.listener is not None:
                self.listener.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            os.umask(int(request["umask"]))
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            for name, value in self.added_env.items():
                os.environ.setdefault(name, value)
            os.environ["JPY_PARENT_PID"] = str(os.getppid())  # ipykernel exits if the launcher dies
            if sys.path and sys.path[0] == self.path_entry:
                sys.path[0] = os.getcwd()  # as `python -m` would have it; ipykernel_launcher takes it out
            argv = list(request["argv"])
            import runpy

            sys.argv = [argv[2], *argv[3:]]
            _set_title(" ".join(argv))  # `ps` shows a kernel, not a second launcher
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


# Room for a kernel's command line in ``ps``: the title of a process fits in its original argv's memory (with
# SPT_NOENV, setproctitle leaves /proc/PID/environ alone), so the launcher starts with this much of it.
_TITLE_ROOM = 512


def _set_title(title: str) -> None:
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
    proc = subprocess.Popen([sys.executable, "-m", "airflow_notebook_provider.launcher", path, "#" * _TITLE_ROOM],
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
        raise SystemExit("usage: python -m airflow_notebook_provider.launcher SOCKET_PATH [TITLE_ROOM]")
    path = argv[0]
    _set_title(f"{sys.executable} -m airflow_notebook_provider.launcher {path}")
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
