"""Delivery: an email through an Airflow SMTP connection, a JSON POST through an HTTP connection.

The connections are read with the fields the smtp and http providers give them, so a connection made for
Airflow's own email (``smtp_default``) or for ``HttpHook`` works here unchanged:

- SMTP: host, port, login, password; extras ``from_email``, ``disable_ssl`` (SSL from the first byte is the
  default, as the smtp provider's, usually port 465), ``disable_tls`` (else STARTTLS), ``timeout`` (30 s),
  ``ssl_context`` (``"none"`` skips certificate checks).
- HTTP: host (a full URL, or a host name with ``schema`` http/https), port, login/password (basic auth); extras
  ``headers`` (a dict), ``timeout``, ``verify`` (false, or a CA bundle path), other keys sent as headers.

Python's ``smtplib`` and ``email.message`` build and send the message (a text body and the report as an in-memory
attachment, which the smtp provider's hook, taking file paths and HTML bodies, does not offer).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_notebook_provider.notifications.outcome import Attachment

DEFAULT_SMTP_CONN_ID = "smtp_default"
_HTTP_OPTIONS = frozenset({"headers", "timeout", "verify", "verify_ssl", "endpoint"})


class NotificationError(Exception):
    """Sending a notification failed; the message names the connection and the fix."""


def _flag(value: Any) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


def _connection(conn_id: str, kind: str) -> Any:
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException, or a secrets backend's error
        raise NotificationError(
            f"{kind} connection {conn_id!r} could not be read ({type(exc).__name__}: {exc}). Create it (Admin > "
            f"Connections, `airflow connections add`, or AIRFLOW_CONN_{conn_id.upper()}) or fix the notifier's "
            f"{'smtp_conn_id' if kind == 'SMTP' else 'http_conn_id'}."
        ) from None


def addresses(value: str | Sequence[str] | None) -> list[str]:
    """``"a@x, b@x"`` or ``["a@x", "b@x"]`` -> ``["a@x", "b@x"]`` (commas and semicolons, as the smtp provider)."""
    if not value:
        return []
    items = value.replace(";", ",").split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip() for item in items if item.strip()]


def send_email(conn_id: str, *, to: list[str], cc: list[str], from_email: str | None, subject: str, body: str,
               attachment: Attachment | None) -> None:
    """Send one email; ``NotificationError`` saying which connection and what to fix."""
    conn = _connection(conn_id, "SMTP")
    extra = conn.extra_dejson or {}
    sender = from_email or extra.get("from_email")
    if not sender:
        raise NotificationError(f"No sender for the email: set `from_email` on NotebookNotifier or the extra "
                                f"\"from_email\" of SMTP connection {conn_id!r}.")
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())  # one line: a newline would end the header
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="airflow-notebook")
    msg.set_content(body)
    if attachment is not None:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    host, port = conn.host or "localhost", int(conn.port) if conn.port else 0
    where = f"{host}:{port or 'default port'}"
    timeout = float(extra.get("timeout", 30))
    use_ssl, starttls = not _flag(extra.get("disable_ssl", False)), not _flag(extra.get("disable_tls", False))
    context = ssl.create_default_context()
    if extra.get("ssl_context") == "none":  # asked for by the connection, as the smtp provider allows
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        client: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) if use_ssl
                                else smtplib.SMTP(host, port, timeout=timeout))
        with client:
            if starttls and not use_ssl:
                client.starttls(context=context)
                client.ehlo()
            if conn.login and conn.password:
                client.login(conn.login, conn.password)
            client.send_message(msg, from_addr=sender, to_addrs=[*to, *cc])
    except ssl.SSLError as exc:
        raise NotificationError(
            f"SMTP connection {conn_id!r} ({where}): TLS failed ({exc}). For a server without SSL on connect set the "
            "extra \"disable_ssl\": true (STARTTLS is then used; \"disable_tls\": true for a plain relay)."
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise NotificationError(
            f"SMTP connection {conn_id!r} ({where}): {exc}. For a server without STARTTLS set the extra "
            "\"disable_tls\": true."
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise NotificationError(
            f"SMTP connection {conn_id!r} ({where}) refused its login {conn.login!r} ({exc.smtp_code}); fix the "
            "connection's login and password."
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise NotificationError(
            f"SMTP connection {conn_id!r} ({where}): {type(exc).__name__}: {exc}. Check its host and port, that the "
            "worker can reach the server, and the extras disable_ssl / disable_tls."
        ) from None


def webhook_url(conn: Any, endpoint: str) -> str:
    """The HTTP connection's base URL (as ``HttpHook`` builds it) joined with ``endpoint``."""
    host = conn.host or ""
    base = host if "://" in host else f"{conn.schema or 'http'}://{host}"
    if conn.port:
        base = f"{base.rstrip('/')}:{conn.port}"
    if not endpoint:
        return base
    return f"{base.rstrip('/')}/{endpoint.lstrip('/')}"


def _shown(url: str) -> str:
    """The URL without its path and query, for messages: a webhook's path often is its secret (Slack, Teams)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}" + ("/…" if parts.path.strip("/") else "")


def post_webhook(conn_id: str, *, endpoint: str, payload: Mapping[str, Any]) -> None:
    """POST ``payload`` as JSON; ``NotificationError`` on a failure or a non-2xx answer."""
    import httpx

    conn = _connection(conn_id, "HTTP")
    if not conn.host:
        raise NotificationError(f"HTTP connection {conn_id!r} has no host: set it to the webhook's URL "
                                "(e.g. https://hooks.example.com) or host name.")
    extra = conn.extra_dejson or {}
    headers = {str(k): str(v) for k, v in extra.items() if k not in _HTTP_OPTIONS and isinstance(v, str | int)}
    if isinstance(extra.get("headers"), Mapping):
        headers.update({str(k): str(v) for k, v in extra["headers"].items()})
    verify: Any = extra.get("verify", extra.get("verify_ssl", True))
    if not isinstance(verify, str) or verify.lower() in ("true", "false"):
        verify = _flag(verify) if isinstance(verify, str) else bool(verify)
    url = webhook_url(conn, endpoint or str(extra.get("endpoint") or ""))
    shown = _shown(url)
    auth = (conn.login, conn.password or "") if conn.login else None
    try:
        response = httpx.post(url, json=dict(payload), headers=headers, auth=auth, verify=verify,
                              timeout=float(extra.get("timeout", 30)))
    except httpx.HTTPError as exc:
        raise NotificationError(
            f"HTTP connection {conn_id!r}: POST {shown} failed ({type(exc).__name__}: {exc}). Check the "
            "connection's host, port and schema, and that the worker can reach it."
        ) from None
    if not response.is_success:
        raise NotificationError(
            f"HTTP connection {conn_id!r}: POST {shown} answered {response.status_code} {response.reason_phrase}: "
            f"{response.text[:300]!r}. Check the endpoint and the credentials (login/password, extra headers)."
        )
