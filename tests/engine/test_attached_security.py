"""A running kernel reached over ZMQ (a ``jupyter_kernel`` connection) whose messages are unsigned (an empty
``session_key``): anyone who can reach its TCP ports can run code in it, or answer in its place. A task refuses it,
naming the extra that accepts the risk (``allow_unsigned``), and runs on it once the connection says so."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, free_port, read_nb, run_dag, stop_group, stream_text
from tests.processes import wait_for

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def unsigned_kernel(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An ipykernel started on its own with an empty key (unsigned messages), on fixed ports of 127.0.0.1."""
    ports = {name: free_port() for name in PORTS}
    info = {**ports, "ip": "127.0.0.1", "key": "", "transport": "tcp", "signature_scheme": "hmac-sha256"}
    conn_file = tmp_path / "kernel.json"
    conn_file.write_text(json.dumps(info))
    proc = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", str(conn_file)], cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is not None or all(listening(p) for p in ports.values()), 60,
                 "the kernel to listen on its ports")
        assert proc.poll() is None, "the kernel exited while starting"
        yield {"proc": proc, **info}
    finally:
        stop_group(proc)


def task(dag_id: str, nb: Path, out: Path) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), kernel_conn_id="attached")
    return dag


def test_an_unsigned_kernel_is_refused_unless_the_connection_allows_it(
    airflow_db, unsigned_kernel: dict[str, Any], make_notebook, tmp_path: Path, monkeypatch, capfd, caplog
) -> None:
    ports = {name: unsigned_kernel[name] for name in PORTS}
    nb = make_notebook("print('ran on the attached kernel')")
    monkeypatch.setenv("AIRFLOW_CONN_ATTACHED", json.dumps({
        "conn_type": "jupyter_kernel", "host": "127.0.0.1", "extra": {"session_key": "", **ports}}))
    assert run_dag(task("t_unsigned_refused", nb, tmp_path / "refused.ipynb"))["nb"].state == "failed"
    log = "".join(capfd.readouterr()) + caplog.text
    assert "has no `session_key`" in log and "`allow_unsigned`" in log, log[-3000:]
    caplog.clear()

    monkeypatch.setenv("AIRFLOW_CONN_ATTACHED", json.dumps({
        "conn_type": "jupyter_kernel", "host": "127.0.0.1", "extra": {"allow_unsigned": "true", **ports}}))
    out = tmp_path / "allowed.ipynb"
    assert run_dag(task("t_unsigned_allowed", nb, out))["nb"].state == "success"
    assert stream_text(code_cells(read_nb(out))[0]) == "ran on the attached kernel\n"
    log = "".join(capfd.readouterr()) + caplog.text
    assert "unsigned" in log  # the risk accepted is said in the task log
    assert unsigned_kernel["proc"].poll() is None  # attached to, never shut down
