"""Kernels on a Jupyter Kernel Gateway or Enterprise Gateway: a ``KernelProvider`` and ``Kernel`` pair.

The gateway speaks Jupyter Server's kernels API: REST to create, interrupt and delete a kernel
(``/api/kernels``), and one websocket per kernel that carries the five ZMQ channels as JSON frames. The run
drives a gateway kernel exactly as a local one: nbclient executes cells through ``kc`` (a jupyter_client
``AsyncKernelClient`` whose channels are the websocket's), and ``km`` is the small manager nbclient needs.

Why not jupyter_server's gateway client (``GatewayKernelManager``, the one JupyterLab uses for
``--gateway-url``): its settings are a process-wide singleton (one gateway per process, and it writes
``KERNEL_LAUNCH_TIMEOUT`` and ``KERNEL_USERNAME`` into ``os.environ``); it opens the websocket without the token
(401 on any protected gateway); its channel queues wait by spinning the event loop (``asyncio.sleep(0)``), a
busy core for every long cell; its ``is_alive`` is true while any kernel model answers, so nbclient's liveness
check after a timeout fails with an ``AssertionError``; and it forwards every ``KERNEL_*`` variable of the
worker's environment. The message layer is still jupyter_client's (``Session`` builds and the client API sends
every request); this module only moves the frames (httpx for REST, aiohttp for the websocket, both already
dependencies of the provider's Airflow stack).

What runs where: the kernel runs on the gateway (its host, pod or image); its working folder is the gateway's
unless ``cwd`` is set, which is sent as ``KERNEL_WORKING_DIR`` (Enterprise Gateway honours it with
``EG_MIRROR_WORKING_DIRS``). The gateway passes a kernel only the variables named ``KERNEL_*`` (plus those it is
configured to inherit), so ``env`` and secret parameters travel as ``KERNEL_*`` variables in the create request
(see ``GatewayKernels.env_prefix``), never in the notebook or the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from airflow_notebook_provider.engine.kernels.gateway_api import (
    ENV_PREFIX,
    PROBE_SECONDS,
    UNREACHABLE,
    GatewayApi,
    GatewayAuthError,
    GatewayError,
    GatewaySettings,
    _check,
    _json_object,
    _reason,
    check_kernel_id,
)
from airflow_notebook_provider.engine.kernels.gateway_ws import GatewayKernelClient
from airflow_notebook_provider.engine.kernels.kernel import Kernel, KernelProvider, KernelSpecInfo, KernelStartError
from airflow_notebook_provider.notebook.errors import NotebookInputError

logger = logging.getLogger(__name__)

__all__ = ["GatewayApi", "GatewayAuthError", "GatewayError", "GatewayKernel", "GatewayKernelClient", "GatewayKernels",
           "GatewaySettings"]


class GatewayKernels(KernelProvider):
    """The kernelspecs one gateway offers; each run gets a kernel of its own, deleted when the run ends."""

    env_prefix = ENV_PREFIX
    local_files = False

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.api = GatewayApi(settings)
        self._specs: dict[str, Any] | None = None
        if settings.plain_http_warning:
            logger.warning("%s", settings.plain_http_warning)

    def __repr__(self) -> str:
        return f"GatewayKernels({self.settings.url!r})"

    @property
    def start_hint(self) -> str:
        return f"Check the gateway {self.settings.where} and its log for the kernel's start"

    def _kernelspecs(self) -> dict[str, Any]:
        if self._specs is None:
            self._specs = self.api.kernelspecs()
        return self._specs

    def names(self) -> list[str]:
        try:
            return sorted(self._kernelspecs())
        except GatewayAuthError:
            raise
        except GatewayError:
            return []

    def resolve(self, name: str, *, explicit: bool) -> KernelSpecInfo:
        """The gateway's kernelspec ``name``. A gateway that cannot be reached now does not fail the run here:
        the kernel's start retries and, failing, is recorded in the output notebook like any start failure."""
        try:
            specs = self._kernelspecs()
        except GatewayAuthError:
            raise
        except GatewayError as exc:
            logger.warning("%s; the kernel's start will try again", exc)
            return KernelSpecInfo(name, "", name)
        if name not in specs:
            asked_by = "`kernel_name`" if explicit else "the notebook"
            raise NotebookInputError(
                f"Kernel {name!r} (asked for by {asked_by}) is not offered by the Jupyter gateway "
                f"{self.settings.where}. It offers: {', '.join(sorted(specs)) or 'nothing'}. Set `kernel_name` to "
                "one of them."
            )
        spec = specs[name].get("spec", {})
        return KernelSpecInfo(name, str(spec.get("language") or "").lower(), str(spec.get("display_name") or name))

    def create(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> GatewayKernel:
        return GatewayKernel(self, name, env=env, cwd=cwd)


class GatewayKernel(Kernel):
    """One kernel created on the gateway for one run; every way the run ends deletes it there."""

    def __init__(self, provider: GatewayKernels, name: str, *, env: Mapping[str, str], cwd: str | None) -> None:
        self.provider = provider
        self.api = provider.api
        self.settings = provider.settings
        self.name = name
        self.env = {**self.settings.env, **env}
        if cwd:
            self.env.setdefault("KERNEL_WORKING_DIR", cwd)
        self.kernel_id: str | None = None
        self.deleted = False
        self.probe_interval = PROBE_SECONDS
        self.km = _GatewayManager(self)
        self.kc: GatewayKernelClient | None = None

    def __repr__(self) -> str:
        return f"GatewayKernel({self.name!r}, id={self.kernel_id!r}, gateway={self.settings.url!r})"

    @property
    def spawned(self) -> bool:
        return self.kernel_id is not None

    async def spawn(self) -> None:
        await asyncio.to_thread(self._create)

    def _create(self) -> None:
        response = self.api.request("POST", "/api/kernels", body={"name": self.name, "env": self.env})
        _check(response, self.settings, f"start a {self.name!r} kernel")
        self.kernel_id = check_kernel_id(_json_object(response, self.settings, "the kernel's start").get("id"),
                                         self.settings)
        self.deleted = False
        logger.info("Kernel %s started on the gateway %s as %s", self.name, self.settings.url, self.kernel_id)
        if self.stop_reason:  # stopped while the request was on its way: do not leave it behind
            self.kill()

    @property
    def kernel_path(self) -> str:
        return f"/api/kernels/{self.kernel_id}"

    async def is_alive(self) -> bool:
        if self.kernel_id is None or self.deleted or self.stop_reason:
            return False
        if self.kc is not None and self.kc.connected and not self.kc.alive:
            return False
        reason = await asyncio.to_thread(self.probe)
        if reason is not None and self.kc is not None:
            self.kc.mark_dead(self._unreachable() if reason == UNREACHABLE else reason)
        return reason is None

    def probe(self) -> str | None:
        """Ask the gateway about the kernel: None if it runs, else why not (``UNREACHABLE`` if no answer)."""
        try:
            response = self.api.request("GET", self.kernel_path, attempts=1, timeout=10.0)
        except GatewayError:
            return UNREACHABLE
        if response.status_code == 404:
            return "the kernel no longer exists on the gateway: it was shut down or culled there"
        if response.status_code == 200:
            try:
                model = _json_object(response, self.settings, "the kernel")
            except GatewayError as exc:
                return str(exc)
            if model.get("execution_state") == "dead":
                return "the gateway reports the kernel dead"
        return None

    async def connect(self, timeout: float) -> dict[str, Any]:
        """``Kernel.connect``; a failure says why the websocket ended, if it did (say, a message over the limit)."""
        try:
            return await super().connect(timeout)
        except KernelStartError as exc:
            reason = self.kc.dead_reason if self.kc is not None else None
            if reason and reason not in str(exc):
                raise KernelStartError(f"{str(exc).rstrip('.')}: {reason}") from exc
            raise

    def _unreachable(self) -> str:
        return f"the Jupyter gateway {self.settings.where} stopped answering"

    def kill(self, reason: str | None = None) -> None:
        """Mark the kernel dead (nbclient notices within a second) and delete it on the gateway, once."""
        if reason and not self.stop_reason:
            self.stop_reason = reason
        if self.kc is not None:
            self.kc.mark_dead(self.stop_reason or "the kernel was stopped")
        self._delete(attempts=1)

    def _delete(self, *, attempts: int) -> None:
        if self.kernel_id is None or self.deleted:
            return
        try:
            response = self.api.request("DELETE", self.kernel_path, attempts=attempts,
                                        timeout=min(self.settings.request_timeout, 30.0))
        except GatewayError as exc:
            logger.warning("Kernel %s may be left on the gateway (%s); the gateway's culling removes an idle kernel",
                           self.kernel_id, exc)
            return
        if response.status_code in (200, 204, 404):
            self.deleted = True
        else:
            logger.warning("Deleting kernel %s on %s answered HTTP %d (%s)", self.kernel_id, self.settings.where,
                           response.status_code, _reason(response))

    async def shutdown(self, *, now: bool) -> None:
        if self.kc is not None:
            await self.kc.aclose()
        await super().shutdown(now=now)

    def exit_reason(self) -> str:
        if self.kc is not None and self.kc.dead_reason:
            return self.kc.dead_reason
        reason = self.probe()
        if reason == UNREACHABLE:
            return self._unreachable()
        return reason or "the kernel stopped answering on the gateway"

    def reset(self) -> None:
        self._delete(attempts=1)
        self.kernel_id = None
        self.deleted = False
        self.kc = None
        self.km = _GatewayManager(self)


class _GatewayManager:
    """What nbclient and ``Kernel`` ask of a kernel manager, for a gateway kernel."""

    ipykernel = False

    def __init__(self, kernel: GatewayKernel) -> None:
        self.kernel = kernel

    @property
    def has_kernel(self) -> bool:
        return self.kernel.spawned

    def client(self) -> GatewayKernelClient:
        k = self.kernel
        assert k.kernel_id is not None
        k.kc = GatewayKernelClient(k.settings, k.kernel_id, probe=k.probe, probe_interval=k.probe_interval)
        return k.kc

    async def interrupt_kernel(self) -> None:
        k = self.kernel
        if k.kernel_id is not None and not k.deleted:
            await asyncio.to_thread(k.api.request, "POST", f"{k.kernel_path}/interrupt", body={}, attempts=1)

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        await asyncio.to_thread(self.kernel._delete, attempts=self.kernel.settings.attempts)

    async def is_alive(self) -> bool:
        return await self.kernel.is_alive()

    def cleanup_resources(self, restart: bool = False) -> None:
        """Nothing is kept on this side."""

    def cleanup_connection_file(self) -> None:
        """There is no connection file: the websocket is the connection."""
