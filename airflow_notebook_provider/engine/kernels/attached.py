"""A kernel that is already running, reached over ZMQ: the papermill provider's ``jupyter_kernel`` connection.

The task attaches to the kernel and never starts, restarts or shuts it down: it belongs to whoever started it
(``jupyter kernel --KernelManager.ip=...``, a long-lived Spark driver). What the task can do is stop its own
work: on a cell timeout or a stop it sends ``interrupt_request`` on the control channel. Its liveness is its
heartbeat. Its environment and working folder are the ones it was started with, so secret parameters (which
travel as environment variables) cannot reach it and are refused before it is used.

Its messages are signed with the connection file's key (HMAC): without a key, anyone who can reach its TCP ports
(any local user for 127.0.0.1, anyone on the network otherwise) can run code in it or answer in its place, and the
task could not tell. An empty key is therefore refused, on any TCP address, unless the connection says
``allow_unsigned``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine.kernels.kernel import Kernel, KernelProvider, KernelSpecInfo
from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookInputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelConnection:
    """Where a running kernel listens (the fields of a Jupyter connection file)."""

    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    key: str = ""
    transport: str = "tcp"
    signature_scheme: str = "hmac-sha256"
    label: str = ""
    allow_unsigned: bool = False
    """Attach even without a key (unsigned messages): whoever reaches the ports can run code in the kernel."""

    def __post_init__(self) -> None:
        if not self.key and not self.allow_unsigned:
            raise NotebookConfigError(
                f"The kernel at {self.where} has no `session_key`: its messages would be unsigned, so anyone who can "
                f"reach {self.ip}'s kernel ports could run code in it or answer in its place. Set the connection's "
                "extra `session_key` to the `key` of the kernel's connection file, or, if every user who can reach "
                "those ports is trusted, set the extra `allow_unsigned` to true."
            )

    def __repr__(self) -> str:
        return f"KernelConnection({self.where!r}, key={'***' if self.key else ''!r})"

    @property
    def where(self) -> str:
        return f"{self.ip}:{self.shell_port}{f' ({self.label})' if self.label else ''}"

    def info(self) -> dict[str, Any]:
        return {
            "ip": self.ip, "shell_port": self.shell_port, "iopub_port": self.iopub_port,
            "stdin_port": self.stdin_port, "control_port": self.control_port, "hb_port": self.hb_port,
            "key": self.key, "transport": self.transport, "signature_scheme": self.signature_scheme,
        }


class AttachedKernels(KernelProvider):
    """The one running kernel a connection names, whatever kernel name the notebook asks for."""

    local_files = False

    def __init__(self, connection: KernelConnection) -> None:
        self.connection = connection
        if not connection.key:
            logger.warning("The kernel at %s takes unsigned messages (the connection's `allow_unsigned`): anyone who "
                           "can reach its ports can run code in it or answer in its place.", connection.where)

    def __repr__(self) -> str:
        return f"AttachedKernels({self.connection.where!r})"

    @property
    def start_hint(self) -> str:
        return (f"Check that the kernel at {self.connection.where} is running and that the connection's ports and "
                "session key are the ones in its connection file")

    def names(self) -> list[str]:
        return []

    def resolve(self, name: str, *, explicit: bool) -> KernelSpecInfo:
        # The kernel's language is only known once it answers; until then the notebook's (or ``language=``) counts.
        return KernelSpecInfo(name, "", name)

    def create(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> AttachedKernel:
        if env:
            raise NotebookInputError(
                f"The kernel at {self.connection.where} is already running: environment variables "
                f"({', '.join(sorted(env))}), and so secret parameters, cannot reach it. Pass them as ordinary "
                "parameters, or run on a kernel the task starts (a local kernel or a `jupyter_gateway` connection)."
            )
        return AttachedKernel(self.connection, name)


class AttachedKernel(Kernel):
    """A running kernel this run attaches to and detaches from; it outlives the run by design."""

    def __init__(self, connection: KernelConnection, name: str) -> None:
        self.connection = connection
        self.name = name
        self._attached = False
        self.km = _AttachedManager(self)
        self.kc: _AttachedClient | None = None

    @property
    def spawned(self) -> bool:
        return self._attached

    async def spawn(self) -> None:
        self._attached = True

    async def is_alive(self) -> bool:
        if self.stop_reason:
            return False
        return self.kc.heartbeat() if self.kc is not None else True

    def kill(self, reason: str | None = None) -> None:
        """Stop this run's use of the kernel: interrupt what it runs for us (on a stop), never shut it down."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
            if self.kc is not None:
                self.kc.interrupt()

    def discard(self) -> None:
        """Nothing to release before a client connects."""

    def exit_reason(self) -> str:
        return f"the kernel at {self.connection.where} stopped answering its heartbeat"

    def reset(self) -> None:
        """The same kernel is tried again: it is not ours to restart."""


class _AttachedManager:
    """What nbclient and ``Kernel`` ask of a kernel manager; shutting down is not among the things it does."""

    ipykernel = False
    has_kernel = True

    def __init__(self, kernel: AttachedKernel) -> None:
        self.kernel = kernel

    def client(self) -> _AttachedClient:
        kc = _AttachedClient()
        kc.load_connection_info(self.kernel.connection.info())  # type: ignore[arg-type]  # a plain dict is fine
        self.kernel.kc = kc
        return kc

    async def interrupt_kernel(self) -> None:
        if self.kernel.kc is not None:
            self.kernel.kc.interrupt()

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Never: the kernel belongs to whoever started it."""

    async def is_alive(self) -> bool:
        return await self.kernel.is_alive()

    def cleanup_resources(self, restart: bool = False) -> None:
        """Nothing of the kernel's is ours."""

    def cleanup_connection_file(self) -> None:
        """The connection comes from an Airflow connection, not a file of ours."""


class _AttachedClient(_compat.CheckedLivenessClient):
    """jupyter_client's client, alive while the kernel's heartbeat answers (the kernel has no manager here)."""

    def heartbeat(self) -> bool:
        hb = _compat.heartbeat_channel(self)
        return hb is None or bool(hb.is_beating())

    def kernel_alive(self) -> bool:
        return self.heartbeat()

    def interrupt(self) -> None:
        """Ask the kernel to interrupt its current cell (the message form of SIGINT, kernel protocol 5.3)."""
        try:
            self.control_channel.send(self.session.msg("interrupt_request", {}))
        except Exception as exc:  # noqa: BLE001 - the run ends either way; the kernel may not support it
            logger.warning("Interrupting the attached kernel failed: %s", exc)
