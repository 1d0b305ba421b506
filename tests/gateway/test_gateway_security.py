"""A gateway connection's transport and what a gateway can do to a task: a bare host is https unless it is the
loopback; plain HTTP to another host is warned in the task log and in the connection's Test result; credentials in
the host and the token never show in a log, an error, the notebook or a ``repr``; and a hostile gateway (a small fake
one on 127.0.0.1, ``hostile.py``) can neither steer requests to URLs of its making through a kernel id nor exhaust
the task with a huge websocket frame."""

from __future__ import annotations

import html
import json
import socket
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.hooks.kernel import JupyterGatewayHook, kernels_for_connection
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.gateway.hostile import start_hostile
from tests.gateway.server import Gateway, assert_nothing_left
from tests.helpers import free_port, read_nb, run_dag
from tests.processes import wait_for

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PLAIN_HTTP = "is reached over plain HTTP"


def gw_task(dag_id: str, nb: Path, out: Path, **kw: Any) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), kernel_conn_id="gw", **kw)
    return dag


def conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "jupyter_gateway", **fields}))


def banner(nb: dict[str, Any]) -> str:
    """The failure as the output notebook shows it: papermill's banner cells."""
    return html.unescape("\n".join("".join(c["source"]) for c in nb["cells"]
                                   if "papermill-error-cell-tag" in c["metadata"].get("tags", [])))


# -- the transport ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "url"), [
    ({"host": "gw.example.com", "port": 8888}, "https://gw.example.com:8888"),
    ({"host": "10.1.2.3:8888/eg"}, "https://10.1.2.3:8888/eg"),
    ({"host": "127.0.0.1", "port": 8888}, "http://127.0.0.1:8888"),
    ({"host": "localhost:8888"}, "http://localhost:8888"),
    ({"host": "[::1]", "port": 8888}, "http://[::1]:8888"),
    ({"host": "gw.example.com", "schema": "http", "port": 80}, "http://gw.example.com:80"),  # said, not assumed
    ({"host": "http://gw.example.com", "port": 8888}, "http://gw.example.com:8888"),
])
def test_a_bare_host_is_https_unless_it_is_the_loopback(monkeypatch, fields, url) -> None:
    conn(monkeypatch, "bare", password="t0k", **fields)
    assert JupyterGatewayHook("bare").settings().url == url


def non_loopback_name() -> str:
    """This machine's name: not a loopback address by how it is written, whatever it resolves to. Where it resolves
    to 127.0.0.1 (Debian's /etc/hosts, many CI runners) it reaches the test gateway; elsewhere (a container's
    address) nothing listens there and the connection is refused; either way the transport is plain HTTP to a name."""
    return socket.gethostname()


def reaches_the_test_gateway(name: str) -> bool:
    try:
        return socket.gethostbyname(name) == "127.0.0.1"
    except OSError:
        return False


def test_the_test_button_warns_of_plain_http_to_a_host_that_is_not_the_loopback(gateway: Gateway, monkeypatch) -> None:
    name = non_loopback_name()
    port = gateway.url.rsplit(":", 1)[1]
    conn(monkeypatch, "gwname", host=f"http://{name}:{port}", password=gateway.token, extra={"connect_timeout": 2})
    ok, message = JupyterGatewayHook("gwname").test_connection()
    assert PLAIN_HTTP in message and "auth token" in message and "https://" in message, message
    assert gateway.token not in message
    if reaches_the_test_gateway(name):
        assert ok and "python3" in message
    # A host that cannot be reached at all: the warning is in the failed result as well.
    conn(monkeypatch, "gwoff", host=f"http://{name}:{free_port()}", password="t0k", extra={"connect_timeout": 2})
    ok, message = JupyterGatewayHook("gwoff").test_connection()
    assert not ok and "could not be reached" in message and PLAIN_HTTP in message
    # The loopback over http, as the test gateway is: no warning.
    conn(monkeypatch, "gwlo", host=gateway.url, password=gateway.token)
    ok, message = JupyterGatewayHook("gwlo").test_connection()
    assert ok and PLAIN_HTTP not in message


def test_a_bare_host_assumed_https_says_so_when_it_cannot_be_reached(gateway: Gateway, monkeypatch) -> None:
    """The test gateway serves plain HTTP: reached as https (a bare non-loopback host), the TLS handshake fails, and
    the message says https was assumed and how to say http."""
    name = non_loopback_name()
    port = gateway.url.rsplit(":", 1)[1]
    conn(monkeypatch, "gwtls", host=name, port=int(port), password=gateway.token, extra={"connect_timeout": 2})
    ok, message = JupyterGatewayHook("gwtls").test_connection()
    assert not ok and f"https://{name}:{port}" in message
    assert "https:// was assumed" in message and "http://" in message


def test_a_task_over_plain_http_to_a_host_that_is_not_the_loopback_warns_in_its_log(
    airflow_db, gateway: Gateway, make_notebook, tmp_path: Path, monkeypatch, capfd, caplog
) -> None:
    """The warning is logged by the engine's logger: in a worker's task process Airflow routes every logger to the
    task log; under ``dag.test()`` it reaches pytest's log capture, as the gateway's other messages do."""
    name = non_loopback_name()
    port = gateway.url.rsplit(":", 1)[1]
    conn(monkeypatch, "gw", host=f"http://{name}:{port}", password=gateway.token, extra={"connect_timeout": 2})
    nb = make_notebook("print('ran')")
    res = run_dag(gw_task("t_gw_plain_http", nb, tmp_path / "out.ipynb"))["nb"]
    log = "".join(capfd.readouterr()) + caplog.text
    assert PLAIN_HTTP in log and f"http://{name}:{port} (connection `gw`)" in log
    assert "Use https://" in log
    assert res.state == ("success" if reaches_the_test_gateway(name) else "failed")
    assert_nothing_left(gateway)


def test_credentials_in_the_host_never_reach_the_log_the_error_or_the_notebook(
    airflow_db, make_notebook, tmp_path: Path, monkeypatch, capfd, caplog
) -> None:
    password = "Pw-in-host-5ecret-91"
    port = free_port()  # nothing listens: the task fails to connect
    conn(monkeypatch, "gw", host=f"http://alice:{password}@127.0.0.1:{port}", extra={"connect_timeout": 1})
    nb = make_notebook("print(1)")
    out = tmp_path / "out.ipynb"
    assert run_dag(gw_task("t_gw_userinfo", nb, out))["nb"].state == "failed"
    log = "".join(capfd.readouterr()) + caplog.text
    got = out.read_text()
    assert "could not be reached" in log and f"http://127.0.0.1:{port} (connection `gw`)" in banner(read_nb(out))
    assert password not in log and password not in got
    ok, message = JupyterGatewayHook("gw").test_connection()
    assert not ok and password not in message
    assert password not in repr(JupyterGatewayHook("gw").settings()) and password not in repr(kernels_for_connection("gw"))


def test_the_settings_repr_hides_the_token_and_header_values(monkeypatch) -> None:
    conn(monkeypatch, "gwr", host="https://gw.example.com", password="tok-5ecret-12",
         extra={"headers": {"X-Proxy-Auth": "hdr-5ecret-34"}, "env": {"KERNEL_X": "env-5ecret-56"}})
    text = repr(JupyterGatewayHook("gwr").settings())
    assert "gw.example.com" in text and "X-Proxy-Auth" in text and "KERNEL_X" in text
    assert not any(secret in text for secret in ("tok-5ecret-12", "hdr-5ecret-34", "env-5ecret-56")), text


def test_credentials_in_the_host_are_sent_as_basic_auth_and_conflict_with_a_token(tmp_path, monkeypatch) -> None:
    hostile = start_hostile(tmp_path)
    try:
        base = hostile.url.replace("http://", "http://alice:pw-12345@")
        conn(monkeypatch, "gwb", host=base)
        ok, message = JupyterGatewayHook("gwb").test_connection()
        assert ok, message
        assert hostile.lines()[-1] == "GET /api/kernelspecs auth=Basic"
        conn(monkeypatch, "gwbt", host=base, password="t0k")
        ok, message = JupyterGatewayHook("gwbt").test_connection()
        assert not ok and "Keep one" in message and "pw-12345" not in message
    finally:
        hostile.stop()


# -- a hostile gateway --------------------------------------------------------------------------------------------


ALLOWED = {"GET /api/kernelspecs", "POST /api/kernels"}


@pytest.mark.parametrize("kernel_id", ["../../api/other", "abc?x=1", "abc#frag", "a/b", "", "%2e%2e"])
def test_a_kernel_id_that_would_change_the_url_is_refused_before_any_request(
    airflow_db, make_notebook, tmp_path: Path, monkeypatch, kernel_id: str
) -> None:
    hostile = start_hostile(tmp_path, kernel_id=kernel_id)
    try:
        conn(monkeypatch, "gw", host=hostile.url, password="t0k", extra={"connect_timeout": 2})
        out = tmp_path / "out.ipynb"
        assert run_dag(gw_task("t_gw_bad_id", make_notebook("print(1)"), out, startup_timeout=10))["nb"].state == "failed"
        text = banner(read_nb(out))
        assert "unusable kernel id" in text and repr(kernel_id) in text, text
        assert set(hostile.requests()) <= ALLOWED, hostile.requests()  # nothing at a URL the gateway made up
    finally:
        hostile.stop()


@pytest.mark.parametrize(("extra", "declare", "push", "limit"), [
    ({}, 2**30, 96 * 2**20, "64 MiB"),                           # the default limit; a 1 GiB frame, 96 MiB pushed
    ({"max_message_mb": 1}, 2 * 2**20, 2 * 2**20, "1 MiB"),       # a configured limit; a whole 2 MiB frame
])
def test_a_huge_websocket_frame_ends_the_run_naming_the_limit(
    airflow_db, make_notebook, tmp_path: Path, monkeypatch, capfd, extra, declare, push, limit
) -> None:
    hostile = start_hostile(tmp_path, declare=declare, push=push)
    try:
        conn(monkeypatch, "gw", host=hostile.url, password="t0k", extra={"connect_timeout": 2, **extra})
        out = tmp_path / "out.ipynb"
        res = run_dag(gw_task("t_gw_big_frame", make_notebook("print(1)"), out, startup_timeout=10))["nb"]
        assert res.state == "failed"
        text = banner(read_nb(out))
        assert f"over the limit of {limit}" in text and "max_message_mb" in text, text
        sent = wait_for(lambda: hostile.sent() + 1, 30, "the hostile gateway's websocket to end") - 1
        if push > 64 * 2**20:  # the frame was refused on its header, not read into memory up to the limit
            assert sent < 64 * 2**20, sent
    finally:
        hostile.stop()

