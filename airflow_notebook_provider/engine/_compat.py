"""Every use of a private or undocumented part of jupyter_client and nbclient, kept in this one module.

``pyproject.toml`` bounds both packages above (``jupyter_client<9``, ``nbclient<0.12``) because of these: a new
major version may rename any of them. Each function says what it relies on and why nothing public does the job.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from queue import Empty
from typing import Any

# Longest time a message can sit unseen on a kernel channel (see ``bound_polls``).
POLL_SLICE = 0.2


def kernel_process(km: Any) -> Any | None:
    """The ``subprocess.Popen`` of a local kernel: ``LocalProvisioner.process`` (undocumented attribute).

    Needed for what the manager does not offer: the pid (to kill the kernel's process group from a signal
    handler, where no event loop can run) and the exit status (to say *how* a kernel died).
    """
    return getattr(getattr(km, "provisioner", None), "process", None)


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
