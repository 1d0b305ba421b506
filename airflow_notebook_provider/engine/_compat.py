"""Every use of a private or undocumented part of jupyter_client and nbclient, kept in this one module.

``pyproject.toml`` bounds both packages above (``jupyter_client<9``, ``nbclient<0.12``) because of these: a new
major version may rename any of them. Each function says what it relies on, why nothing public does the job, and
the versions its source was checked against. Checked on: jupyter_client 8.10.0 (``constraints.txt``,
``constraints-min.txt``), nbclient 0.11.0 and 0.10.4 (``constraints-gateway.txt``). After an upgrade, re-read the
named source lines and update the versions here; ``tests/engine/test_runner.py`` fails if a private use appears
outside this module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from nbclient import NotebookClient

# Longest time a message can sit unseen on a kernel channel (see ``bound_polls``).
POLL_SLICE = 0.2


def kernel_process(km: Any) -> Any | None:
    """The ``subprocess.Popen`` of a local kernel: ``LocalProvisioner.process`` (undocumented attribute).

    Needed for what the manager does not offer: the pid (to kill the kernel's process group from a signal
    handler, where no event loop can run) and the exit status (to say *how* a kernel died).
    """
    return getattr(getattr(km, "provisioner", None), "process", None)


def set_client_kernel(client: NotebookClient, km: Any, kc: Any) -> None:
    """Give nbclient's client a kernel the engine started and waited for itself (``kernel.py``).

    ``km`` is a public trait, but ``NotebookClient.kc`` is set only by nbclient's own ``async_start_new_kernel_client``
    (which would start a second kernel and use ``wait_for_ready``); ``async_execute_cell`` then only reads it.
    ``km`` is set after construction, as before, so ``owns_km`` stays true (unused by ``async_execute_cell``).
    Checked on nbclient 0.10.4-0.11.0.
    """
    client.km = km
    client.kc = kc


def preset_provisioner(km: Any, make: Callable[[str], Any]) -> None:
    """Have ``km.start_kernel`` use the provisioner ``make(kernel_id)`` instead of the kernelspec's.

    ``KernelManager.pre_start_kernel`` keeps a ``kernel_id`` already set and creates a provisioner only while
    ``provisioner`` is None; the public way (a ``jupyter_client.kernel_provisioners`` entry point named in the
    kernelspec) cannot carry a per-run value such as the launcher's socket. A manager that has a provisioner
    already (a restart) keeps it. Checked on jupyter_client 8.10.0 (``manager.py``, ``pre_start_kernel``).
    """
    if km.provisioner is not None:
        return
    km.kernel_id = km.kernel_id or str(uuid.uuid4())
    km.provisioner = make(km.kernel_id)


def set_provisioner_process(provisioner: Any, process: Any, cwd: str) -> None:
    """Record a kernel process started elsewhere as ``LocalProvisioner.launch_kernel`` records its own ``Popen``.

    ``process``, ``pid``, ``pgid`` and ``cwd`` are undocumented attributes; ``poll``/``wait``/``send_signal``/
    ``kill``/``terminate``/``cleanup`` use ``process`` (``ForkedKernelProcess`` offers that part of ``Popen``).
    Checked on jupyter_client 8.10.0 (``provisioning/local_provisioner.py``, ``launch_kernel``).
    """
    provisioner.process = process
    provisioner.pid = provisioner.pgid = process.pid
    provisioner.cwd = cwd


class StreamingNotebookClient(NotebookClient):
    """nbclient's client, also passing each stream output (``name``, ``text``) to ``on_stream`` as it arrives.

    ``NotebookClient.output`` is an undocumented hook: ``process_message`` calls it for every output message of
    a cell, and nbclient has no public per-message callback (``on_cell_executed`` and friends come per cell, too
    late for a live log). Checked on nbclient 0.10.4-0.11.0 (``client.py``, ``output`` and ``process_message``).
    """

    def __init__(self, nb: Any, on_stream: Callable[[str, str], None], **kw: Any) -> None:
        super().__init__(nb, **kw)
        self._on_stream = on_stream

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        if msg["msg_type"] == "stream":
            self._on_stream(msg["content"].get("name", "stdout"), msg["content"].get("text", ""))
        return out


class CheckedLivenessClient(AsyncKernelClient):
    """jupyter_client's client for a kernel it has no manager for: alive while ``kernel_alive()`` says so.

    ``KernelClient._async_is_alive`` (private) is what ``wait_for_ready`` asks, and ``AsyncKernelClient.is_alive``
    is bound to the base's ``_async_is_alive`` when that class is made, so both are replaced; nbclient calls
    ``kc.is_alive()`` after a cell times out or its reply is late. Checked on jupyter_client 8.10.0 (``client.py``,
    ``asynchronous/client.py``).
    """

    def kernel_alive(self) -> bool:
        raise NotImplementedError

    async def _async_is_alive(self) -> bool:
        return self.kernel_alive()

    is_alive = _async_is_alive


def heartbeat_channel(kc: AsyncKernelClient) -> Any | None:
    """The client's heartbeat channel if it was started, else None (``KernelClient._hb_channel``, private).

    The public ``hb_channel`` property would create and connect one on first access. Checked on jupyter_client
    8.10.0 (``client.py``).
    """
    return kc._hb_channel


def adopt_kernel_info(kc: Any, reply: dict[str, Any]) -> None:
    """Let the client adapt to the kernel's protocol version, as ``wait_for_ready`` does
    (``KernelClient._handle_kernel_info_reply``): the engine waits for readiness itself, see ``kernel.py``."""
    kc._handle_kernel_info_reply(reply)


def bound_polls(kc: Any) -> None:
    """Make the shell and IOPub channels wait for messages in slices of ``POLL_SLICE`` seconds.

    pyzmq's asyncio poll can miss a socket's wake-up when something else sends on that socket meanwhile (ZMQ's
    file descriptor is edge-triggered): nbclient's Output-widget support sends ``comm_msg`` updates on the shell
    channel while a cell's reply is awaited there. The reply then waits until the poll times out, i.e. the
    whole ``cell_timeout`` (a cell "took exactly cell_timeout, then succeeded"), or forever without one. A poll
    that ends always does a last non-blocking check, so short slices bound that stall to ``POLL_SLICE``. This
    replaces the channels' ``get_msg`` on the instance (nbclient calls it there).
    """
    for channel in (kc.shell_channel, kc.iopub_channel):
        channel.get_msg = _sliced(channel.get_msg)


def _sliced(get_msg: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def get_msg_in_slices(timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else max(0.0, min(POLL_SLICE, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices
