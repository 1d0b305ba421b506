"""The task's side of the kernel launcher (``airflow_notebook_provider.launcher.server``): ask it for a kernel, and hold
the forked kernel as jupyter_client holds a kernel process it started itself."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine.storage import current_umask
from airflow_notebook_provider.launcher.child import INHERITED_SIGNALS
from airflow_notebook_provider.launcher.server import HEADER

CONNECT_TIMEOUT = 10.0


class LauncherUnavailable(Exception):
    """The launcher cannot start this kernel (refused, or not answering): start it as a new process instead."""


# ------------------------------------------------------------------------------------------------ client side


class ForkedKernelProcess:
    """A kernel forked by the launcher, with the parts of ``subprocess.Popen`` that jupyter_client's
    ``LocalProvisioner`` and the engine use (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, ``terminate``).

    It is not this process's child: its exit status comes from the launcher, which reaps it, and it is signalled
    through a pidfd, which cannot hit another process that reuses the pid. Closing the connection (this object
    going away with the task process) makes the launcher kill the kernel.
    """

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self._conn = conn
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self._pidfd = None
        self._buffer = b""

    def _read_exit(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._conn], [], [], left)
            if not ready:
                return None
            chunk = self._conn.recv(4096)
            if not chunk:  # the launcher is gone: the kernel cannot be tracked any more, so it must not live on
                self._signal(signal.SIGKILL, group=True)
                self._finish(-signal.SIGKILL)
                return self.returncode
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        self._finish(int(json.loads(line)["exit"]))
        return self.returncode

    def _finish(self, code: int) -> None:
        self.returncode = code
        self._conn.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        return self._read_exit(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
        return code

    def _signal(self, signum: int, *, group: bool = False) -> None:
        if group:
            try:
                os.killpg(self.pid, signum)
                return
            except (ProcessLookupError, PermissionError):
                pass
        if self._pidfd is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signum)
            except ProcessLookupError:
                pass
        elif self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self._signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def check_socket(path: str) -> None:
    """Refuse a socket this user does not own alone: the request carries the kernel's environment."""
    folder = os.stat(os.path.dirname(path) or ".")
    if folder.st_uid != os.getuid() or folder.st_mode & 0o077:
        raise LauncherUnavailable(f"the kernel launcher's folder {os.path.dirname(path)} is not private to this user")


def launch(path: str, argv: list[str], *, env: Mapping[str, str], cwd: str | None) -> ForkedKernelProcess:
    """Ask the launcher at ``path`` to fork a kernel running ``argv``; raise ``LauncherUnavailable`` if it
    cannot (the caller then starts the kernel as a new process). The whole exchange has one deadline,
    ``CONNECT_TIMEOUT`` seconds, however the launcher answers."""
    deadline = time.monotonic() + CONNECT_TIMEOUT

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer within {CONNECT_TIMEOUT:.0f} s")
        return remaining

    try:
        check_socket(path)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(left())
            conn.connect(path)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if uid != os.getuid():
                raise LauncherUnavailable(f"the kernel launcher at {path} runs as another user")
            body = json.dumps({"argv": argv, "env": dict(env), "cwd": cwd or os.getcwd(), "umask": current_umask(),
                               "ignored_signals": ignored_signals()}).encode()
            conn.settimeout(left())
            socket.send_fds(conn, [HEADER.pack(len(body)) + body], [1, 2])
            line = b""
            while not line.endswith(b"\n"):
                conn.settimeout(left())
                chunk = conn.recv(4096)
                if not chunk:
                    raise LauncherUnavailable(f"the kernel launcher at {path} closed the connection")
                line += chunk
            answer = json.loads(line)
            if "pid" not in answer:
                raise LauncherUnavailable(str(answer.get("refused", answer)))
        except BaseException:
            conn.close()
            raise
    except LauncherUnavailable:
        raise
    except (OSError, ValueError) as exc:
        raise LauncherUnavailable(f"the kernel launcher at {path} is not answering ({exc})") from exc
    conn.settimeout(None)
    return ForkedKernelProcess(conn, int(answer["pid"]))


class LaunchingProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, except that the kernel process is forked by the worker's kernel
    launcher (``launcher/server.py``) when it can be, which saves the kernel's imports; otherwise, or if the launcher
    does not answer, the kernel starts as a new process as usual."""

    def __init__(self, *, socket_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_path = socket_path

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        env = kwargs.get("env")
        cmd = [os.path.expanduser(s) for s in cmd]
        try:
            process = await asyncio.to_thread(launch, self.socket_path, cmd,
                                              env=os.environ if env is None else env, cwd=kwargs.get("cwd"))
        except LauncherUnavailable as exc:
            logging.getLogger(__name__).info("Kernel started as a new process: %s", exc)
            return await super().launch_kernel(cmd, **kwargs)
        _compat.set_provisioner_process(self, process, kwargs.get("cwd") or os.getcwd())
        return self.connection_info


def ignored_signals() -> list[str]:
    """The signals this process ignores that a kernel started by ``exec`` would ignore too (``nohup``'s SIGHUP): a
    forked kernel is told to ignore them, so that it is what a new kernel process would be."""
    return [name for name in INHERITED_SIGNALS if signal.getsignal(getattr(signal, name)) == signal.SIG_IGN]
