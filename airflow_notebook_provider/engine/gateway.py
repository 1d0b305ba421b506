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
import datetime
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import httpx
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.jsonutil import json_default

from airflow_notebook_provider.engine.errors import NotebookConfigError, NotebookInputError
from airflow_notebook_provider.engine.kernel import Kernel, KernelProvider, KernelSpecInfo

logger = logging.getLogger(__name__)

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
PROBE_SECONDS = 5.0
"""How often a running kernel's existence is checked through the REST API (besides its websocket)."""
UNREACHABLE = "unreachable"
ENV_PREFIX = "KERNEL_"
"""The only variable names a gateway passes from a create request to the kernel (unless configured otherwise)."""
_BACKOFF_MAX = 5.0


class GatewayError(Exception):
    """The gateway could not be reached or refused a request; the message names it and says what to check."""


class GatewayAuthError(GatewayError, NotebookConfigError):
    """The gateway refused the token (401/403): a configuration error, not worth a retry."""


@dataclass(frozen=True)
class GatewaySettings:
    """How to reach one gateway (an Airflow ``jupyter_gateway`` connection, or the CLI's options)."""

    url: str
    """Base URL, e.g. ``http://127.0.0.1:8888`` or ``https://gateway.example.com/prefix``."""
    token: str | None = None
    """Sent as ``Authorization: token <token>`` (Enterprise Gateway's ``EG_AUTH_TOKEN``), on REST and websocket."""
    validate_cert: bool = True
    ca_bundle: str | None = None
    """A CA bundle file for an HTTPS gateway with a private CA."""
    connect_timeout: float = 10.0
    request_timeout: float = 120.0
    """Seconds a REST request may take (creating a kernel in a new pod can take a minute or more)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers (a proxy's auth, say); an ``Authorization`` header here replaces the token's."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Kernel environment sent with each create request, e.g. Enterprise Gateway's ``KERNEL_NAMESPACE`` or
    ``KERNEL_IMAGE``."""
    label: str = ""
    """How messages name the gateway's configuration, e.g. "connection `jupyter_gateway_gpu`"."""
    attempts: int = 3
    """Tries of a request that cannot reach the gateway (1 s, 2 s, 4 s apart), before the run fails."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise NotebookInputError(
                f"Gateway URL {self.url!r}{self._of()} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8888); set the connection's host to the gateway's base URL."
            )

    def _of(self) -> str:
        return f" ({self.label})" if self.label else ""

    @property
    def where(self) -> str:
        return f"{self.url}{self._of()}"

    def http_headers(self) -> dict[str, str]:
        out = {"Authorization": f"token {self.token}"} if self.token else {}
        return {**out, **self.headers}

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https://"):
            return False
        if not self.validate_cert:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else ssl.create_default_context()

    def ws_url(self, path: str) -> str:
        base = self.url.rstrip("/")
        return ("wss://" + base[len("https://"):] if base.startswith("https://") else "ws://" + base[len("http://"):]) + path


class GatewayApi:
    """The gateway's REST calls, synchronous (safe from a signal handler; async callers use a thread)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        s = settings
        verify: ssl.SSLContext | bool = s.ssl_context() if s.url.startswith("https://") else True
        self._client = httpx.Client(
            base_url=s.url.rstrip("/"), headers=s.http_headers(), verify=verify,
            timeout=httpx.Timeout(s.request_timeout, connect=s.connect_timeout),
        )

    def request(self, method: str, path: str, *, body: Any = None, attempts: int | None = None,
                timeout: float | None = None) -> httpx.Response:
        """One REST call, retried while the gateway cannot be reached; ``GatewayError`` naming the gateway."""
        s = self.settings
        tries = max(1, attempts if attempts is not None else s.attempts)
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=min(timeout, s.connect_timeout))
        for attempt in range(1, tries + 1):
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt < tries:
                    time.sleep(min(2.0 ** (attempt - 1), _BACKOFF_MAX))
                    continue
                raise GatewayError(
                    f"The Jupyter gateway {s.where} could not be reached ({type(exc).__name__}: {exc or 'no answer'}"
                    f"{f'; {tries} attempts' if tries > 1 else ''}). Check that the gateway is running and that the "
                    "connection's host is its base URL."
                ) from exc
            if response.status_code in (401, 403):
                raise GatewayAuthError(
                    f"The Jupyter gateway {s.where} refused the request {method} {path} with HTTP "
                    f"{response.status_code} ({_reason(response)}). Set the connection's password to the gateway's "
                    "auth token (Enterprise Gateway: EG_AUTH_TOKEN), and check that the gateway lets this user "
                    "start kernels (EG_UNAUTHORIZED_USERS, EG_AUTHORIZED_USERS)."
                )
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def kernelspecs(self) -> dict[str, Any]:
        response = self.request("GET", "/api/kernelspecs")
        _check(response, self.settings, "list its kernels")
        specs: dict[str, Any] = response.json().get("kernelspecs", {})
        return specs

    def close(self) -> None:
        self._client.close()


class GatewayKernels(KernelProvider):
    """The kernelspecs one gateway offers; each run gets a kernel of its own, deleted when the run ends."""

    env_prefix = ENV_PREFIX
    local_files = False

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.api = GatewayApi(settings)
        self._specs: dict[str, Any] | None = None

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
        self.kernel_id = str(response.json()["id"])
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
        if response.status_code == 200 and response.json().get("execution_state") == "dead":
            return "the gateway reports the kernel dead"
        return None

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


class _WsChannel:
    """One of the kernel's channels, multiplexed over the websocket: what nbclient calls on a ZMQ channel."""

    def __init__(self, name: str, client: GatewayKernelClient) -> None:
        self.name = name
        self._client = client
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout is not None and timeout <= 0:
            raise Empty
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    def msg_ready(self) -> bool:
        return not self._queue.empty()

    def put(self, msg: dict[str, Any]) -> None:
        self._queue.put_nowait(msg)

    def send(self, msg: dict[str, Any]) -> None:
        self._client.send_frame(self.name, msg)

    def is_alive(self) -> bool:
        return self._client.alive

    def is_beating(self) -> bool:
        return self._client.alive

    def start(self) -> None:
        """Started with the websocket."""

    def stop(self) -> None:
        """Stopped with the websocket."""

    def close(self) -> None:
        """Closed with the websocket."""


class GatewayKernelClient(AsyncKernelClient):
    """jupyter_client's async client with its five channels carried by the gateway's websocket.

    The request API (``execute``, ``kernel_info``...) and message building are jupyter_client's own. The client
    is alive while the websocket is open and the gateway has not reported the kernel dead or restarted (a
    restarted kernel has lost the notebook's state, so the run cannot go on).
    """

    def __init__(self, settings: GatewaySettings, kernel_id: str, *, probe: Callable[[], str | None] | None = None,
                 probe_interval: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gw = settings
        self.kernel_id = kernel_id
        self.probe = probe
        self.probe_interval = probe_interval
        self.connected = False
        self.dead_reason: str | None = None
        self._ws: Any = None
        self._session_http: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox: asyncio.Queue[str] | None = None
        self._queues: dict[str, _WsChannel] = {}

    @property
    def alive(self) -> bool:
        return self.connected and self.dead_reason is None

    def mark_dead(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason

    def _channel(self, name: str) -> _WsChannel:
        if name not in self._queues:
            self._queues[name] = _WsChannel(name, self)
        return self._queues[name]

    @property
    def shell_channel(self) -> _WsChannel:
        return self._channel("shell")

    @property
    def iopub_channel(self) -> _WsChannel:
        return self._channel("iopub")

    @property
    def stdin_channel(self) -> _WsChannel:
        return self._channel("stdin")

    @property
    def control_channel(self) -> _WsChannel:
        return self._channel("control")

    @property
    def hb_channel(self) -> _WsChannel:
        return self._channel("hb")

    @property
    def channels_running(self) -> bool:
        return self.alive

    async def start_channels(self, shell: bool = True, iopub: bool = True, stdin: bool = True,  # type: ignore[override]
                             hb: bool = True, control: bool = True) -> None:
        import aiohttp

        s = self.gw
        for name in CHANNELS:
            self._channel(name)
        self._outbox = asyncio.Queue()
        timeout = aiohttp.ClientTimeout(total=None, connect=s.connect_timeout, sock_connect=s.connect_timeout)
        self._session_http = aiohttp.ClientSession(headers=s.http_headers(), timeout=timeout)
        url = s.ws_url(f"/api/kernels/{self.kernel_id}/channels")
        try:
            self._ws = await self._session_http.ws_connect(
                url, ssl=s.ssl_context(), heartbeat=30.0, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(
                    ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            await self._session_http.close()
            if exc.status in (401, 403):
                raise GatewayAuthError(
                    f"The Jupyter gateway {s.where} refused the kernel's websocket with HTTP {exc.status}. Set the "
                    "connection's password to the gateway's auth token."
                ) from None
            raise GatewayError(f"The kernel's websocket on {s.where} failed: HTTP {exc.status} {exc.message}") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            await self._session_http.close()
            raise GatewayError(f"The kernel's websocket on {s.where} could not be opened ({exc!r})") from None
        self.connected = True
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        if self.probe is not None and self.probe_interval > 0:
            self._tasks.append(asyncio.create_task(self._watch()))

    def send_frame(self, channel: str, msg: dict[str, Any]) -> None:
        if self._outbox is None or not self.alive:
            return  # a dead kernel: nbclient's liveness check reports it
        msg = {**msg, "channel": channel}
        msg.pop("buffers", None)
        self._outbox.put_nowait(json.dumps(msg, default=json_default))

    async def _write(self) -> None:
        assert self._outbox is not None
        while True:
            frame = await self._outbox.get()
            try:
                await self._ws.send_str(frame)
            except Exception as exc:  # noqa: BLE001 - the reader sees the closed socket and says why
                logger.debug("Websocket send failed: %s", exc)
                return

    async def _read(self) -> None:
        import aiohttp

        reason = "the gateway closed the kernel's connection"
        try:
            async for frame in self._ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._route(json.loads(frame.data))
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    self._route(_binary_message(frame.data))
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    reason = f"the kernel's connection to the gateway failed ({self._ws.exception()!r})"
                    break
        except Exception as exc:  # noqa: BLE001 - any end of the socket ends the kernel for this run
            reason = f"the kernel's connection to the gateway failed ({exc!r})"
        code = getattr(self._ws, "close_code", None)
        self.mark_dead(f"{reason}{f' (close code {code})' if code else ''}")

    async def _watch(self) -> None:
        """Ask the gateway about the kernel every ``probe_interval`` seconds: a gateway may delete (cull) a kernel,
        or become unreachable, without closing the websocket. Two unanswered probes in a row end the kernel."""
        assert self.probe is not None
        misses = 0
        while self.alive:
            await asyncio.sleep(self.probe_interval)
            reason = await asyncio.to_thread(self.probe)
            misses = misses + 1 if reason == UNREACHABLE else 0
            if reason == UNREACHABLE and misses >= 2:
                self.mark_dead(f"the Jupyter gateway {self.gw.where} stopped answering")
            elif reason is not None and reason != UNREACHABLE:
                self.mark_dead(reason)

    def _route(self, msg: dict[str, Any]) -> None:
        channel = msg.pop("channel", None) or "iopub"
        for key in ("header", "parent_header"):
            header = msg.get(key) or {}
            if isinstance(header.get("date"), str):
                try:
                    header["date"] = datetime.datetime.fromisoformat(header["date"].replace("Z", "+00:00"))
                except ValueError:
                    pass
        if channel == "iopub" and msg.get("msg_type") == "status" and not msg.get("parent_header"):
            state = msg.get("content", {}).get("execution_state")
            if state in ("restarting", "autorestarting", "dead"):
                self.mark_dead(f"the kernel died on the gateway{' and was restarted there' if state != 'dead' else ''}"
                               " (its memory limit, a crash, or a kill on the gateway's host)")
        self._channel(channel).put(msg)

    async def _async_is_alive(self) -> bool:
        return self.alive

    is_alive = _async_is_alive

    def stop_channels(self) -> None:
        """Stop reading; ``aclose`` (awaited by the kernel's shutdown) closes the socket itself."""
        self.connected = False
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        self.stop_channels()
        for task in self._tasks:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled on purpose
                pass
        self._tasks = []
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), 5.0)
            except Exception:  # noqa: BLE001 - the socket is gone either way
                pass
        if self._session_http is not None:
            await self._session_http.close()
            self._session_http = None


def _binary_message(data: bytes) -> dict[str, Any]:
    """A websocket frame in Jupyter Server's binary format (a message with buffers): count, offsets, JSON, buffers."""
    count = int.from_bytes(data[:4], "big")
    offsets = [int.from_bytes(data[4 * (i + 1): 4 * (i + 2)], "big") for i in range(count)] + [len(data)]
    msg: dict[str, Any] = json.loads(data[offsets[0]:offsets[1]])
    msg["buffers"] = [memoryview(data[offsets[i]:offsets[i + 1]]) for i in range(1, count)]
    return msg


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or response.reason_phrase)
    return response.reason_phrase


def _check(response: httpx.Response, settings: GatewaySettings, doing: str) -> None:
    if response.status_code >= 400:
        raise GatewayError(
            f"The Jupyter gateway {settings.where} could not {doing}: HTTP {response.status_code} ({_reason(response)})."
        )

