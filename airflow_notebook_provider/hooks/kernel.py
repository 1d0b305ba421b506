"""Kernels reached through an Airflow connection: a Jupyter gateway (``jupyter_gateway``, this provider's
connection type) or a running kernel over ZMQ (``jupyter_kernel``, the papermill provider's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_notebook_provider.engine.attached import AttachedKernels, KernelConnection
from airflow_notebook_provider.engine.errors import NotebookConfigError
from airflow_notebook_provider.engine.gateway import GatewayError, GatewayKernels, GatewaySettings
from airflow_notebook_provider.engine.kernel import KernelProvider

GATEWAY_CONN_TYPE = "jupyter_gateway"
KERNEL_CONN_TYPE = "jupyter_kernel"
# The papermill provider's defaults for a ``jupyter_kernel`` connection without ports (``KernelHook``).
_PAPERMILL_PORTS = {"shell_port": 60316, "iopub_port": 60317, "stdin_port": 60318, "control_port": 60319,
                    "hb_port": 60320}


def kernels_for_connection(conn_id: str) -> KernelProvider:
    """The kernels a connection gives: a gateway's, or the one running kernel it names."""
    conn = _connection(conn_id)
    conn_type = (conn.conn_type or "").replace("-", "_")
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

    Connection fields: ``host``, the gateway's base URL (``http://127.0.0.1:8888``; a bare host takes ``schema``
    as the scheme, default ``http``, and ``port``); ``password``, its auth token; extras ``validate_cert``
    (bool, default true), ``ca_bundle`` (path), ``connect_timeout`` and ``request_timeout`` (seconds),
    ``headers`` (dict) and ``env`` (dict of ``KERNEL_*`` variables for every kernel, such as Enterprise Gateway's
    ``KERNEL_NAMESPACE`` or ``KERNEL_IMAGE``).
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
        """The "Test" button of the connection form: list the gateway's kernels with the token."""
        try:
            names = sorted(self.get_conn().api.kernelspecs())
        except (GatewayError, NotebookConfigError, ValueError) as exc:
            return False, str(exc)
        return True, f"The gateway answers; it offers the kernels {', '.join(names) or '(none)'}"

    @staticmethod
    def settings_of(conn: Any) -> GatewaySettings:
        """Gateway settings from a connection, each extra checked with a message naming it."""
        label = f"connection `{conn.conn_id}`"
        extra = _extras(conn, GATEWAY_CONN_TYPE)
        host = (conn.host or "").strip()
        if not host:
            raise NotebookConfigError(f"The {label} has no host; set it to the gateway's base URL, e.g. "
                                      "http://127.0.0.1:8888.")
        if "://" not in host:
            scheme = (conn.schema or "http").strip() or "http"
            host = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
        elif conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        settings: dict[str, Any] = {"url": host, "token": conn.password or None, "label": label}
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
    """The papermill provider's ``jupyter_kernel`` connection: host, ports and ``session_key`` in the extras."""
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
        label=label,
    )


def _bool(value: Any, name: str, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise NotebookConfigError(f"The {label}'s extra {name!r} must be true or false, got {value!r}.")


def _seconds(value: Any, name: str, label: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or seconds <= 0:
        raise NotebookConfigError(f"The {label}'s extra {name!r} must be a positive number of seconds, got {value!r}.")
    return seconds


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
