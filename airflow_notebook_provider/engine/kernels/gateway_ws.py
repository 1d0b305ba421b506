"""A gateway kernel's websocket: the five ZMQ channels of one kernel, carried as JSON frames (aiohttp), behind
jupyter_client's client API, so that nbclient drives a gateway kernel as a local one."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from jupyter_client.jsonutil import json_default

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine.kernels.gateway_api import (
    CHANNELS,
    UNREACHABLE,
    GatewayAuthError,
    GatewayError,
    GatewaySettings,
)

logger = logging.getLogger(__name__)


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


class GatewayKernelClient(_compat.CheckedLivenessClient):
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
                url, ssl=s.ssl_context(), heartbeat=30.0, max_msg_size=s.max_message_size,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
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
                    reason = self._error_reason(frame.data if isinstance(frame.data, BaseException)
                                                else self._ws.exception())
                    break
        except Exception as exc:  # noqa: BLE001 - any end of the socket ends the kernel for this run
            reason = self._error_reason(exc)
        code = getattr(self._ws, "close_code", None)
        self.mark_dead(f"{reason}{f' (close code {code})' if code else ''}")

    def _error_reason(self, exc: BaseException | None) -> str:
        """Why the websocket failed, in words; a message over the size limit names the limit and how to raise it."""
        import aiohttp

        too_big = aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        if (exc.code == too_big if isinstance(exc, aiohttp.WebSocketError) else
                getattr(self._ws, "close_code", None) == too_big):
            return (f"the Jupyter gateway {self.gw.where} sent a websocket message over the limit of "
                    f"{self.gw.max_message_text}{f' ({exc})' if exc else ''}; raise the connection's extra "
                    "`max_message_mb` if the notebook's outputs are really that large")
        return f"the kernel's connection to the gateway failed ({exc!r})"

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
        if channel not in CHANNELS:  # only the kernel's five channels get a queue, whatever a gateway sends
            logger.debug("Dropped a websocket message on an unknown channel %.40r", channel)
            return
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

    def kernel_alive(self) -> bool:
        return self.alive

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
    if not 1 <= count <= len(data) // 4 - 1:  # the offsets table must fit in the frame
        raise ValueError(f"a binary websocket frame announces {count} parts in {len(data)} bytes")
    offsets = [int.from_bytes(data[4 * (i + 1): 4 * (i + 2)], "big") for i in range(count)] + [len(data)]
    if offsets != sorted(offsets) or offsets[0] < 4 * (count + 1):
        raise ValueError("a binary websocket frame's part offsets are out of order")
    msg: dict[str, Any] = json.loads(data[offsets[0]:offsets[1]])
    msg["buffers"] = [memoryview(data[offsets[i]:offsets[i + 1]]) for i in range(1, count)]
    return msg
