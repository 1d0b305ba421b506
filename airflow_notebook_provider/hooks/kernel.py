"""Kernels reached through an Airflow connection: a Jupyter gateway (``jupyter_gateway``, this provider's
connection type) or a running kernel over ZMQ (``jupyter_kernel``, the papermill provider's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret

from airflow_notebook_provider.engine.kernels.attached import AttachedKernels, KernelConnection
from airflow_notebook_provider.engine.kernels.gateway import GatewayApi, GatewayError, GatewayKernels, GatewaySettings
from airflow_notebook_provider.engine.kernels.gateway_api import is_loopback, redact_url
from airflow_notebook_provider.engine.kernels.kernel import KernelProvider
from airflow_notebook_provider.notebook.errors import NotebookConfigError

GATEWAY_CONN_TYPE = "jupyter_gateway"
KERNEL_CONN_TYPE = "jupyter_kernel"
# The papermill provider's defaults for a ``jupyter_kernel`` connection without ports (``KernelHook``).
_PAPERMILL_PORTS = {"shell_port": 60316, "iopub_port": 60317, "stdin_port": 60318, "control_port": 60319,
                    "hb_port": 60320}


def kernels_for_connection(conn_id: str, *, untyped: str | None = None, log: Any = None) -> KernelProvider:
    """The kernels a connection gives: a gateway's, or the one running kernel it names. ``untyped`` is the type a
    connection without one is taken as (the papermill drop-in: its provider reads any connection as a kernel)."""
    conn = _connection(conn_id)
    conn_type = (conn.conn_type or "").strip().replace("-", "_")
    if not conn_type and untyped:
        if log is not None:
            log.info("Connection %r has no type; using it as a %r connection, as the papermill provider does. Set its "
                     "type to say so.", conn_id, untyped)
        conn_type = untyped
    if conn_type == GATEWAY_CONN_TYPE:
        return GatewayKernels(JupyterGatewayHook.settings_of(conn))
    if conn_type == KERNEL_CONN_TYPE:
        return AttachedKernels(_kernel_connection(conn))
    raise NotebookConfigError(
        f"Connection {conn_id!r} (kernel_conn_id) has type {conn.conn_type!r}; a kernel connection is of type "
        f"{GATEWAY_CONN_TYPE!r} (a Jupyter Kernel or Enterprise Gateway) or {KERNEL_CONN_TYPE!r} (a running kernel "
        "over ZMQ)."
    )


class JupyterGatewayHook(BaseHook):
    """A Jupyter Kernel Gateway or Enterprise Gateway: each run creates its kernel there and deletes it after.

    Connection fields: ``host``, the gateway's base URL (``https://gateway.example.com:8888``; a bare host takes
    ``schema`` as the scheme, default ``https``, or ``http`` for a loopback host, and ``port``; ``user:password@`` in
    it is sent as HTTP Basic auth and never shown); ``password``, its auth token; extras ``validate_cert``
    (bool, default true), ``ca_bundle`` (path), ``connect_timeout`` and ``request_timeout`` (seconds),
    ``max_message_mb`` (the largest websocket message or REST answer taken from the gateway, default 64),
    ``headers`` (dict) and ``env`` (dict of ``KERNEL_*`` variables for every kernel, such as Enterprise Gateway's
    ``KERNEL_NAMESPACE`` or ``KERNEL_IMAGE``). Plain HTTP to a host other than the loopback is warned in the task
    log and in the connection's Test result: the token and secret parameters would travel unencrypted.
    """

    conn_name_attr = "kernel_conn_id"
    default_conn_name = "jupyter_gateway_default"
    conn_type = GATEWAY_CONN_TYPE
    hook_name = "Jupyter Gateway"

    def __init__(self, kernel_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_conn_id = kernel_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's hidden fields, labels and placeholders for Airflow 3.1, which asks the hook; from
        3.2 Airflow reads them (``ui-field-behaviour``) from get_provider_info and does not call this. Airflow 3.1
        has no form fields for ``conn-fields``, so Extra (JSON) stays visible for the gateway's options."""
        from airflow_notebook_provider.get_provider_info import get_provider_info

        (conn,) = (c for c in get_provider_info()["connection-types"] if c["connection-type"] == cls.conn_type)
        behaviour = {key.replace("-", "_"): value for key, value in conn["ui-field-behaviour"].items()}
        behaviour["hidden_fields"] = [name for name in behaviour["hidden_fields"] if name != "extra"]
        extra = '{"validate_cert": true, "request_timeout": 120}'
        behaviour["placeholders"] = {**behaviour["placeholders"], "extra": extra}
        return behaviour

    def settings(self) -> GatewaySettings:
        return self.settings_of(_connection(self.kernel_conn_id))

    def get_conn(self) -> GatewayKernels:
        return GatewayKernels(self.settings())

    def test_connection(self) -> tuple[bool, str]:
        """The "Test" button of the connection form: list the gateway's kernels with the token (one try), and say
        so if the token would travel over plain HTTP to another machine."""
        warning = ""
        try:
            settings = self.settings()
            warning = f" WARNING: {settings.plain_http_warning}" if settings.plain_http_warning else ""
            api = GatewayApi(settings)
            try:
                names = sorted(api.kernelspecs(attempts=1))
            finally:
                api.close()
        except (GatewayError, NotebookConfigError, ValueError) as exc:
            return False, f"{exc}{warning}"
        return True, f"The gateway answers; it offers the kernels {', '.join(names) or '(none)'}.{warning}"

    @staticmethod
    def settings_of(conn: Any) -> GatewaySettings:
        """Gateway settings from a connection, each extra checked with a message naming it."""
        label = f"connection `{conn.conn_id}`"
        extra = _extras(conn, GATEWAY_CONN_TYPE)
        url, assumed = _gateway_url(conn, label)
        settings: dict[str, Any] = {"url": url, "token": conn.password or None, "label": label,
                                    "https_assumed": assumed}
        if extra.get("max_message_mb") not in (None, ""):
            settings["max_message_size"] = int(_positive(extra["max_message_mb"], "max_message_mb", label,
                                                         "number of MiB") * 2**20)
        if "validate_cert" in extra:
            settings["validate_cert"] = _bool(extra["validate_cert"], "validate_cert", label)
        if extra.get("ca_bundle"):
            settings["ca_bundle"] = str(extra["ca_bundle"])
        for name in ("connect_timeout", "request_timeout"):
            if extra.get(name) not in (None, ""):
                settings[name] = _seconds(extra[name], name, label)
        for name in ("headers", "env"):
            if extra.get(name) not in (None, ""):
                settings[name] = _str_dict(extra[name], name, label)
        try:
            return GatewaySettings(**settings)
        except ValueError as exc:
            raise NotebookConfigError(str(exc)) from None


def _gateway_url(conn: Any, label: str) -> tuple[str, bool]:
    """The gateway's base URL from the connection's host, schema and port, and whether https:// was assumed (a bare
    host that is not the loopback). A password in the host is registered with Airflow's secrets masker."""
    host = (conn.host or "").strip()
    if not host:
        raise NotebookConfigError(f"The {label} has no host; set it to the gateway's base URL, e.g. "
                                  "https://gateway.example.com:8888 (or http://127.0.0.1:8888 on this machine).")
    assumed = False
    if "://" not in host:
        scheme = (conn.schema or "").strip().lower()
        if not scheme:
            bare = urlsplit(f"//{host}").hostname or ""
            scheme = "http" if is_loopback(bare) else "https"
            assumed = scheme == "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.password:
        mask_secret(unquote(parts.password))
        mask_secret(parts.password)
    try:
        port = parts.port
    except ValueError:
        raise NotebookConfigError(f"The {label}'s host {redact_url(host)!r} has a port that is not a number; "
                                  "write it as https://host:8888.") from None
    if conn.port and port is None:
        host = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{conn.port}"))
    return host, assumed


def _connection(conn_id: str) -> Any:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise NotebookConfigError(
            f"Connection {conn_id!r} (kernel_conn_id) does not exist. Create it (Admin > Connections, `airflow "
            f"connections add`, or AIRFLOW_CONN_{conn_id.upper()}) or fix `kernel_conn_id`."
        ) from None


def _extras(conn: Any, conn_type: str) -> dict[str, Any]:
    """The connection's extras, read under their names or the UI's ``extra__<type>__<name>`` form."""
    extra = dict(conn.extra_dejson or {})
    prefix = f"extra__{conn_type}__"
    return {**extra, **{k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix) and v not in (None, "")}}


def _kernel_connection(conn: Any) -> KernelConnection:
    """The papermill provider's ``jupyter_kernel`` connection: host, ports and ``session_key`` in the extras, and
    ``allow_unsigned`` (default false) to accept a kernel without a key."""
    label = f"connection `{conn.conn_id}`"
    extra = _extras(conn, KERNEL_CONN_TYPE)
    if not conn.host:
        raise NotebookConfigError(f"The {label} has no host; set it to the running kernel's IP address.")
    ports: dict[str, int] = {}
    for name, default in _PAPERMILL_PORTS.items():
        value = extra.get(name, default)
        try:
            ports[name] = int(value)
        except (TypeError, ValueError):
            raise NotebookConfigError(f"The {label}'s extra {name!r} must be a port number, got {value!r}.") from None
    return KernelConnection(
        ip=conn.host, shell_port=ports["shell_port"], iopub_port=ports["iopub_port"], stdin_port=ports["stdin_port"],
        control_port=ports["control_port"], hb_port=ports["hb_port"], key=str(extra.get("session_key") or ""),
        label=label, allow_unsigned=_bool(extra.get("allow_unsigned", False), "allow_unsigned", label),
    )


def _bool(value: Any, name: str, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise NotebookConfigError(f"The {label}'s extra {name!r} must be true or false, got {value!r}.")


def _seconds(value: Any, name: str, label: str) -> float:
    return _positive(value, name, label, "number of seconds")


def _positive(value: Any, name: str, label: str, unit: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0 or number == float("inf"):
        raise NotebookConfigError(f"The {label}'s extra {name!r} must be a positive {unit}, got {value!r}.")
    return number


def _str_dict(value: Any, name: str, label: str) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise NotebookConfigError(
            f"The {label}'s extra {name!r} must be a JSON object of names to strings, e.g. "
            f'{{"KERNEL_NAMESPACE": "notebooks"}}, got {value!r}.'
        )
    return {k: str(v) for k, v in value.items()}
