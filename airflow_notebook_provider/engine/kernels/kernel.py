"""The kernel layer's abstractions: which kernels exist (``KernelProvider``) and one kernel's life (``Kernel``:
start with retries, readiness, interrupt, shutdown), plus the environment a local kernel inherits.

The run executes cells through a ``Kernel``'s jupyter_client manager and client (``km``, ``kc``), which is all
nbclient needs, and knows nothing else about where the kernel lives. ``local.LocalKernels`` / ``LocalKernel`` (a
kernelspec installed where the task runs, in its own process group) is the implementation today, and
``environments.PythonEnvironment`` runs ``LocalKernel`` on another Python environment's interpreter; a kernel
behind a Jupyter gateway is another ``KernelProvider`` and ``Kernel`` pair, passed in ``ExecutionSettings.kernels``,
with no change to the cell loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from queue import Empty
from typing import Any

from jupyter_core.utils import ensure_async

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine.log import Log

DEFAULT_KERNEL = "python3"
# Kernel starts tried when the kernel process exits before answering (see ``Kernel.start``).
START_ATTEMPTS = 3
# kernel_info replies after which a kernel that publishes no status on IOPub (against the protocol) is taken as ready.
_STATUSLESS_REPLIES = 20


class KernelStartError(Exception):
    """The kernel did not start or did not answer; the message says why and what to check."""


class KernelStopped(Exception):
    """The kernel was killed on purpose (``Kernel.kill``) while it started."""


ESSENTIAL_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM")
"""What a kernel keeps of this process's environment with ``inherit=False``: enough to find programs, write
temporary files and read text in the right locale."""


@dataclass(frozen=True)
class InheritedEnv:
    """Which variables of this process's environment a local kernel inherits (``env`` and the kernelspec's own
    ``env`` always apply on top). ``denylist`` holds ``fnmatch`` patterns (e.g. ``AIRFLOW_CONN_*``): a worker's
    connection URIs, variables and Airflow settings are secrets the notebook has no business reading."""

    inherit: bool = True
    denylist: tuple[str, ...] = ()

    def apply(self, environ: Mapping[str, str], unset: Collection[str] = ()) -> dict[str, str]:
        def keep(name: str) -> bool:
            if name in unset or any(fnmatch.fnmatchcase(name, p) for p in self.denylist):
                return False
            return self.inherit or any(fnmatch.fnmatchcase(name, p) for p in ESSENTIAL_ENV)

        return {k: v for k, v in environ.items() if keep(k)}


@dataclass(frozen=True)
class KernelSpecInfo:
    name: str
    language: str
    display_name: str


class KernelProvider(ABC):
    """Where kernels come from: resolves kernel names and creates ``Kernel`` objects."""

    env_prefix: str = ""
    """Prefix of the environment variables the run sets for the kernel (secret parameters): a Jupyter gateway
    passes a kernel only ``KERNEL_*`` names."""
    local_files: bool = True
    """The kernel runs on this machine and sees its files: a default working folder is chosen for it."""

    @property
    def start_hint(self) -> str:
        """What to check when a kernel does not start, for the message recorded in the output notebook."""
        return "Check its kernel spec (`jupyter kernelspec list`) where the task runs"

    @abstractmethod
    def names(self) -> list[str]:
        """Kernel names this provider offers (for error messages)."""

    @abstractmethod
    def resolve(self, name: str, *, explicit: bool) -> KernelSpecInfo:
        """The kernel's name and language; ``NotebookInputError`` naming the offered kernels if there is none.
        ``explicit``: the name is the caller's ``kernel_name``, not the notebook's kernelspec."""

    @abstractmethod
    def create(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> Kernel:
        """A kernel, not started yet."""


class Kernel(ABC):
    """One kernel for one run. Subclasses give the primitives; ``start`` (retries, readiness) is shared."""

    name: str
    km: Any
    """A jupyter_client ``AsyncKernelManager`` (or compatible): nbclient interrupts and checks it."""
    kc: Any = None
    """Its client, once connected: nbclient executes cells through it."""
    stop_reason: str | None = None

    @property
    def how_started(self) -> str:
        """Said in the task log after the start time, e.g. "forked by the worker's kernel launcher"."""
        return ""

    @property
    @abstractmethod
    def spawned(self) -> bool:
        """True once ``spawn`` succeeded (the kernel may have died since)."""

    @abstractmethod
    async def spawn(self) -> None:
        """Start the kernel process; raise if it cannot be started at all."""

    @abstractmethod
    async def is_alive(self) -> bool: ...

    @abstractmethod
    def kill(self, reason: str | None = None) -> None:
        """Stop the kernel at once. Safe from a signal handler and in or out of an event loop; idempotent."""

    @abstractmethod
    def exit_reason(self) -> str:
        """How the kernel ended, in words a person can act on."""

    @abstractmethod
    def reset(self) -> None:
        """Forget a dead kernel, so that ``spawn`` starts a fresh one (new ports)."""

    async def interrupt(self) -> None:
        await ensure_async(self.km.interrupt_kernel())

    async def connect(self, timeout: float) -> dict[str, Any]:
        """Connect a client and wait until the kernel answers on shell and IOPub; return its ``kernel_info`` reply.

        Not jupyter_client's ``wait_for_ready``, which ends by waiting for 0.2 s of silence on IOPub: a fixed
        fifth of a second per task. A status message for our own request on IOPub proves the subscription is
        live (ZMQ drops what is published before a subscriber has joined); nbclient skips any earlier message,
        as it belongs to another request. Nothing is cleaned up on failure: ``start`` needs to tell a kernel that
        died (retry) from one that stayed silent (fail), and ``shutdown`` cleans up either way.
        """
        kc = self.kc = self.km.client()
        await ensure_async(kc.start_channels())
        _compat.bound_polls(kc)
        deadline = time.monotonic() + timeout
        replies = 0
        while True:
            msg_id = kc.kernel_info()
            reply = await reply_to(kc.shell_channel, msg_id, 1.0)
            replies += reply is not None
            if replies > _STATUSLESS_REPLIES:  # a kernel that answers but publishes no status: take its word
                break
            # The kernel's status for this request is on IOPub before its reply is sent, unless the subscription
            # was not live yet (the first request is queued while the kernel boots): then ask again at once.
            if reply is not None and await reply_to(kc.iopub_channel, msg_id, 0.1) is not None:
                break
            if not await self.is_alive():
                raise KernelStartError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise KernelStartError(f"Kernel didn't respond in {timeout:g} seconds")
        assert reply is not None
        _compat.adopt_kernel_info(kc, reply)
        kc.allow_stdin = False  # a scheduled run never asks a person for input
        content: dict[str, Any] = reply["content"]
        return content

    async def start(self, *, timeout: float, log: Log, on_spawned: Callable[[], None] | None = None) -> dict[str, Any]:
        """Spawn (unless already spawned) and connect; return the ``kernel_info`` reply.

        ``on_spawned`` runs once, right after the first spawn, while the kernel process boots. A kernel process
        that exits before answering is started again on fresh ports, up to ``START_ATTEMPTS`` times:
        jupyter_client picks free TCP ports by binding and releasing them, so a process starting beside it
        (another task's kernel on the same worker) can take one first, and the kernel dies with "Address
        already in use". A kernel that cannot be spawned at all, or is alive but silent past ``timeout``, is
        not retried. Raises ``KernelStartError`` or ``KernelStopped``.
        """
        for attempt in range(1, START_ATTEMPTS + 1):
            started = time.monotonic()
            spawn_error: Exception | None = None
            if not self.spawned:
                try:
                    await self.spawn()
                except Exception as exc:  # noqa: BLE001 - reported below, after on_spawned
                    spawn_error = exc
            if attempt == 1 and on_spawned is not None:
                on_spawned()
            try:
                if spawn_error is not None:
                    raise spawn_error
                if self.stop_reason:
                    raise KernelStopped(self.stop_reason)
                info = await self.connect(timeout)
            except Exception as exc:
                if self.stop_reason:
                    raise KernelStopped(self.stop_reason) from None
                if spawn_error is None and attempt < START_ATTEMPTS and not await self.is_alive():
                    log.warning(
                        "Kernel %s exited while starting (%s; %s); starting it again on fresh ports (attempt %d of %d)",
                        self.name, str(exc).rstrip("."), self.exit_reason(), attempt + 1, START_ATTEMPTS,
                    )
                    await self.shutdown(now=True)
                    self.reset()
                    continue
                tries = f" ({attempt} attempts)" if attempt > 1 else ""
                raise KernelStartError(f"kernel {self.name!r} did not start{tries}: {str(exc).rstrip('.')}") from exc
            log.info("Kernel %s started in %.2f s%s", self.name, time.monotonic() - started,
                     f" ({self.how_started})" if self.how_started else "")
            return info
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def shutdown(self, *, now: bool) -> None:
        """Ask the kernel to exit (``now``: no grace period), release its resources, and kill what is left."""
        try:
            if self.spawned and await self.is_alive():
                await ensure_async(self.km.shutdown_kernel(now=now))
        except Exception as exc:  # noqa: BLE001 - the kernel must not outlive the run whatever went wrong
            logging.getLogger(__name__).warning("Kernel shutdown failed (%s); killing it", exc)
        finally:
            try:
                await ensure_async(self.km.cleanup_resources())
            except Exception:  # noqa: BLE001 - a leftover connection file is harmless
                pass
            if self.kc is not None:
                self.kc.stop_channels()
                self.kc = None
            self.kill()

    def discard(self) -> None:
        """Kill the kernel and release its resources without an event loop (a kernel nobody will use)."""
        self.kill()
        try:
            self.km.cleanup_connection_file()
        except Exception:  # noqa: BLE001 - a leftover connection file is harmless
            pass


class EarlyKernel:
    """A kernel started before its notebook is at hand, so that it boots while the caller fetches the notebook
    from storage, parses it and picks the output location (a kernel takes about half a second to answer; an S3
    read in a fresh task process, with its client set-up, takes as long or longer).

    ``take`` hands it to a run on the same kernel, environment and working directory; otherwise, and whenever
    the caller gives up before, ``discard`` kills it. Nothing fails here: a kernel that cannot be started early
    is simply started later, where its failure is recorded in the notebook.
    """

    def __init__(self, kernels: KernelProvider, name: str, *, env: Mapping[str, str], cwd: str | None,
                 log: Log | None = None) -> None:
        self.kernel_name = name
        self._key = (name, sorted(env.items()), cwd)
        self.kernel: Kernel | None = kernels.create(name, env=env, cwd=cwd)
        self.pid: int | None = None
        try:
            asyncio.run(self.kernel.spawn())
            self.pid = getattr(self.kernel, "pid", None)
        except Exception as exc:  # noqa: BLE001 - not fatal: the run starts its kernel itself
            (log or logging.getLogger(__name__)).debug("Kernel %s not started early (%s)", name, exc)
            self.discard()

    def take(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> Kernel | None:
        """The kernel, for a run on the same kernel, environment and working directory; else None (and killed)."""
        if self.kernel is not None and (name, sorted(env.items()), cwd) == self._key:
            kernel, self.kernel = self.kernel, None
            return kernel
        self.discard()
        return None

    def discard(self) -> None:
        """Kill the kernel unless a run took it; safe to call more than once."""
        kernel, self.kernel = self.kernel, None
        if kernel is not None:
            kernel.discard()


async def reply_to(channel: Any, msg_id: str, timeout: float) -> dict[str, Any] | None:
    """The message on ``channel`` answering ``msg_id``, or None after ``timeout`` seconds; others are skipped."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg: dict[str, Any] = await channel.get_msg(timeout=left)
        except Empty:
            return None
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            return msg
    return None


def describe_exit(code: int | None) -> str:
    """How a kernel process ended, from its exit status: a SIGKILL is most often the out-of-memory killer."""
    if code is None:
        return "killed, out of memory, or crashed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"killed by {name}: the out-of-memory killer, a memory limit, or `kill -9`"
        return f"killed by {name}"
    return f"the kernel process exited with code {code}; a crash in native code or os._exit()"
