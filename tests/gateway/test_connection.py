"""The ``jupyter_gateway`` connection: its form in the UI, its fields as a user writes them (JSON or URI in an
``AIRFLOW_CONN_*`` variable), the errors that name a wrong field, and the "Test" button against a real gateway."""

from __future__ import annotations

import json

import pytest

from airflow_notebook_provider.hooks.kernel import JupyterGatewayHook, kernels_for_connection
from airflow_notebook_provider.notebook.errors import NotebookConfigError
from tests.gateway.server import Gateway


def test_the_connection_type_and_its_form_fields_are_registered() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    fields = {k.split("__")[-1] for k in pm.connection_form_widgets if k.startswith("extra__jupyter_gateway__")}
    assert fields == {"validate_cert", "ca_bundle", "connect_timeout", "request_timeout", "headers", "env"}
    assert pm.field_behaviours["jupyter_gateway"]["relabeling"] == {"host": "Gateway URL", "password": "Auth token"}
    assert "jupyter_gateway" in pm.hooks


def test_a_json_connection_gives_every_setting(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GPU", json.dumps({
        "conn_type": "jupyter_gateway", "host": "https://gw.example.com/eg", "password": "t0k",
        "extra": {"validate_cert": False, "ca_bundle": "/etc/ca.pem", "connect_timeout": 3, "request_timeout": "300",
                  "headers": {"X-Team": "ml"}, "env": {"KERNEL_NAMESPACE": "notebooks", "KERNEL_IMAGE": "org/gpu:1"}},
    }))
    s = JupyterGatewayHook("gpu").settings()
    assert (s.url, s.token, s.validate_cert, s.ca_bundle) == ("https://gw.example.com/eg", "t0k", False, "/etc/ca.pem")
    assert (s.connect_timeout, s.request_timeout) == (3.0, 300.0)
    assert s.http_headers() == {"Authorization": "token t0k", "X-Team": "ml"}
    assert s.env == {"KERNEL_NAMESPACE": "notebooks", "KERNEL_IMAGE": "org/gpu:1"}
    assert s.ws_url("/api/kernels/1/channels") == "wss://gw.example.com/eg/api/kernels/1/channels"


def test_a_uri_connection_with_a_bare_host_and_port(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GW2", "jupyter-gateway://:tok@127.0.0.1:8888/?validate_cert=false&env=%7B%22KERNEL_X%22%3A%221%22%7D")
    s = JupyterGatewayHook("gw2").settings()
    assert (s.url, s.token, s.validate_cert, s.env) == ("http://127.0.0.1:8888", "tok", False, {"KERNEL_X": "1"})


@pytest.mark.parametrize(("extra", "message"), [
    ({"connect_timeout": "soon"}, "extra 'connect_timeout' must be a positive number of seconds"),
    ({"validate_cert": "maybe"}, "extra 'validate_cert' must be true or false"),
    ({"env": "KERNEL_X=1"}, "extra 'env' must be a JSON object of names to strings"),
    ({"headers": ["a"]}, "extra 'headers' must be a JSON object"),
])
def test_a_wrong_extra_is_named_with_the_fix(monkeypatch, extra, message) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BAD", json.dumps({"conn_type": "jupyter_gateway", "host": "http://h:1", "extra": extra}))
    with pytest.raises(NotebookConfigError, match=message) as info:
        kernels_for_connection("bad")
    assert "connection `bad`" in str(info.value)


def test_a_connection_of_another_type_or_none_at_all(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WEB", json.dumps({"conn_type": "http", "host": "x"}))
    with pytest.raises(NotebookConfigError, match="has type 'http'; a kernel connection is of type 'jupyter_gateway'"):
        kernels_for_connection("web")
    with pytest.raises(NotebookConfigError, match="Connection 'nope' .kernel_conn_id. does not exist"):
        kernels_for_connection("nope")
    monkeypatch.setenv("AIRFLOW_CONN_NOHOST", json.dumps({"conn_type": "jupyter_gateway"}))
    with pytest.raises(NotebookConfigError, match="has no host; set it to the gateway's base URL"):
        kernels_for_connection("nohost")


def test_the_test_button_lists_the_gateways_kernels_or_says_what_is_wrong(gateway: Gateway, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GWOK", gateway.connection_json())
    ok, message = JupyterGatewayHook("gwok").test_connection()
    assert ok and "python3" in message
    monkeypatch.setenv("AIRFLOW_CONN_GWBAD", json.dumps({"conn_type": "jupyter_gateway", "host": gateway.url,
                                                         "password": "nope"}))
    ok, message = JupyterGatewayHook("gwbad").test_connection()
    assert not ok and "HTTP 401" in message
