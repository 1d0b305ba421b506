"""A Jupyter gateway's REST side: how to reach it (``GatewaySettings``), its calls (``GatewayApi``) and its errors.

See ``gateway.py`` for the kernel provider built on it and ``gateway_ws.py`` for the kernel's websocket.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_notebook_provider.engine.errors import NotebookConfigError, NotebookInputError

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
