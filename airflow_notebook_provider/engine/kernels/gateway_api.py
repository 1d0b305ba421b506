"""A Jupyter gateway's REST side: how to reach it (``GatewaySettings``), its calls (``GatewayApi``) and its errors.

See ``gateway.py`` for the kernel provider built on it and ``gateway_ws.py`` for the kernel's websocket.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookInputError

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
PROBE_SECONDS = 5.0
"""How often a running kernel's existence is checked through the REST API (besides its websocket)."""
UNREACHABLE = "unreachable"
ENV_PREFIX = "KERNEL_"
"""The only variable names a gateway passes from a create request to the kernel (unless configured otherwise)."""
_BACKOFF_MAX = 5.0
MAX_MESSAGE_MB = 64
"""Default cap of one websocket message or REST answer from a gateway, in MiB (connection extra ``max_message_mb``):
an output larger than this is not a notebook's, and a hostile gateway cannot exhaust the task's memory."""
_KERNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""What a kernel id may be before it goes into a URL: one path segment, no ``/ ? # %`` and no dot-segment (Jupyter's
ids are UUIDs)."""
_SECRET_FIELDS = ("token", "basic_auth")
_NAMES_ONLY_FIELDS = ("headers", "env")


class GatewayError(Exception):
    """The gateway could not be reached or refused a request; the message names it and says what to check."""


class GatewayAuthError(GatewayError, NotebookConfigError):
    """The gateway refused the token (401/403): a configuration error, not worth a retry."""


def is_loopback(host: str) -> bool:
    """True for a host that is the loopback as written (``localhost``, 127.0.0.0/8, ``::1``). A name is judged by
    its spelling, not by resolving it: what a name resolves to can differ on the worker, and change."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{slash}{path}"


def check_kernel_id(kernel_id: Any, settings: GatewaySettings) -> str:
    """The id a gateway gave a kernel, if it is safe in a URL path; else ``GatewayError`` (nothing is requested)."""
    if isinstance(kernel_id, str) and _KERNEL_ID.fullmatch(kernel_id):
        return kernel_id
    shown = repr(kernel_id) if len(repr(kernel_id)) <= 80 else repr(kernel_id)[:77] + "..."
    raise GatewayError(
        f"The Jupyter gateway {settings.where} answered the kernel's start with an unusable kernel id {shown} (a "
        "kernel id is letters, digits, '.', '_' and '-', at most 128): nothing was sent to a URL made from it. Check "
        "that the connection's host is a Jupyter Kernel or Enterprise Gateway you trust."
    )


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
    max_message_size: int = MAX_MESSAGE_MB * 2**20
    """Bytes one websocket message (or a REST answer) may have; a larger one ends the kernel's run, naming the limit."""
    https_assumed: bool = False
    """The connection's host had no scheme and https:// was chosen for it (said when the gateway cannot be reached)."""
    basic_auth: tuple[str, str] | None = None
    """HTTP Basic credentials; ``user:password@`` in ``url`` is moved here, so that no URL, message or log has it."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise NotebookInputError(
                f"Gateway URL {redact_url(self.url)!r}{self._of()} must start with http:// or https:// "
                "(e.g. https://gateway.example.com:8888); set the connection's host to the gateway's base URL."
            )
        parts = urlsplit(self.url)
        if "@" in parts.netloc:
            userinfo, _, hostport = parts.netloc.rpartition("@")
            user, _, password = userinfo.partition(":")
            object.__setattr__(self, "url", urlunsplit(parts._replace(netloc=hostport)))
            object.__setattr__(self, "basic_auth", (unquote(user), unquote(password)))
        if self.basic_auth and self.token:
            raise NotebookConfigError(
                f"The gateway URL {self.where} carries a user name and password, and there is an auth token too: "
                "both would be the requests' Authorization header. Keep one: the token (the connection's password) "
                "for a gateway's EG_AUTH_TOKEN, or user:password@ in the host for a gateway behind HTTP Basic auth."
            )

    def __repr__(self) -> str:
        """The settings without secrets: ``***`` for the token and credentials, only the names of headers and env."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            elif f.name in _NAMES_ONLY_FIELDS:
                value = sorted(value)
            shown.append(f"{f.name}={value!r}")
        return f"GatewaySettings({', '.join(shown)})"

    def _of(self) -> str:
        return f" ({self.label})" if self.label else ""

    @property
    def where(self) -> str:
        return f"{self.url}{self._of()}"

    @property
    def max_message_text(self) -> str:
        mib = self.max_message_size / 2**20
        return f"{mib:g} MiB" if mib >= 1 else f"{self.max_message_size} bytes"

    @property
    def plain_http_warning(self) -> str | None:
        """What travels unencrypted, if the gateway is reached over plain HTTP on a host that is not the loopback."""
        host = urlsplit(self.url).hostname or ""
        if not self.url.startswith("http://") or is_loopback(host):
            return None
        auth = any(k.lower() == "authorization" for k in self.http_headers())
        return (
            f"The Jupyter gateway {self.where} is reached over plain HTTP: "
            f"{'its auth token, ' if auth else ''}the kernels' environment (secret parameters) and the notebook's code "
            "and outputs travel unencrypted, readable and changeable on the way. Use https:// in the connection's "
            "host (plain http:// is for a gateway on this machine: localhost, 127.0.0.1 or ::1)."
        )

    def http_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.token:
            out["Authorization"] = f"token {self.token}"
        elif self.basic_auth:
            pair = ":".join(self.basic_auth).encode()
            out["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
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
            base_url=s.url.rstrip("/"), headers={"Accept-Encoding": "identity", **s.http_headers()}, verify=verify,
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
                response = self._send(method, path, kwargs)
            except httpx.TransportError as exc:
                if attempt < tries:
                    time.sleep(min(2.0 ** (attempt - 1), _BACKOFF_MAX))
                    continue
                assumed = (" https:// was assumed for the connection's bare host: if the gateway serves plain HTTP, "
                           "write http:// before it (its token then travels unencrypted)." if s.https_assumed else "")
                raise GatewayError(
                    f"The Jupyter gateway {s.where} could not be reached ({type(exc).__name__}: {exc or 'no answer'}"
                    f"{f'; {tries} attempts' if tries > 1 else ''}). Check that the gateway is running and that the "
                    f"connection's host is its base URL.{assumed}"
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

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        """The request's answer, its body read up to ``max_message_size`` (a hostile gateway cannot fill memory). The
        body is asked for and read uncompressed: a compressed one could expand past any limit in one read."""
        s = self.settings
        request = self._client.build_request(method, path, **kwargs)
        response = self._client.send(request, stream=True)
        try:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise GatewayError(f"The Jupyter gateway {s.where} answered {method} {path} compressed ({encoding}) "
                                   "although an uncompressed answer was asked for; check that the host is the gateway.")
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > s.max_message_size:
                    raise GatewayError(
                        f"The Jupyter gateway {s.where} answered {method} {path} with more than {s.max_message_text}, "
                        "the limit of one message (the connection's extra `max_message_mb`); a gateway's answer is "
                        "far smaller: check that the host is the gateway."
                    )
        finally:
            response.close()
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request,
                              extensions=response.extensions)

    def kernelspecs(self, *, attempts: int | None = None) -> dict[str, Any]:
        response = self.request("GET", "/api/kernelspecs", attempts=attempts)
        _check(response, self.settings, "list its kernels")
        specs = _json_object(response, self.settings, "its kernels").get("kernelspecs", {})
        if not isinstance(specs, dict):
            raise GatewayError(f"The Jupyter gateway {self.settings.where} listed its kernels in a form that is not "
                               "Jupyter's (`kernelspecs` is not an object); check that the host is the gateway.")
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


def _json_object(response: httpx.Response, settings: GatewaySettings, what: str) -> dict[str, Any]:
    """The answer's JSON object; ``GatewayError`` if the gateway answered something else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GatewayError(f"The Jupyter gateway {settings.where} answered about {what} with something that is not "
                           "a JSON object; check that the connection's host is the gateway.")
    return body


def _check(response: httpx.Response, settings: GatewaySettings, doing: str) -> None:
    if response.status_code >= 400:
        raise GatewayError(
            f"The Jupyter gateway {settings.where} could not {doing}: HTTP {response.status_code} ({_reason(response)})."
        )
