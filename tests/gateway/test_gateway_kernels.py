"""Notebook tasks whose kernel runs on a Jupyter Enterprise Gateway (``kernel_conn_id`` of type ``jupyter_gateway``):
the same record, log, XCom and failure handling as a local kernel, and no kernel left on the gateway whatever
happens (checked through ``GET /api/kernels`` after each test by the ``gateway_conn`` fixture)."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.gateway.server import WORKER_KERNEL, Gateway, start_gateway
from tests.helpers import code_cells, read_nb, run_dag, stream_text
from tests.processes import wait_for

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def gw_task(dag_id: str, nb: Path, out: Path, **kw: Any) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), kernel_conn_id="gw", **kw)
    return dag


def banner(nb: dict[str, Any]) -> str:
    """What a reader sees of a failure: papermill's banner cells and every error output (the failing cell's)."""
    banners = ["".join(c["source"]) for c in nb["cells"] if "papermill-error-cell-tag" in c["metadata"].get("tags", [])]
    errors = [f"{o['ename']}: {o['evalue']}" for c in nb["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    return "\n".join(banners + errors)


def test_a_notebook_runs_on_the_gateway_with_parameters_secrets_log_and_records(
    airflow_db, gateway_conn: Gateway, make_notebook, tmp_path: Path, capfd, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_GW_TOKEN", "tok-5ecret-77")
    nb = make_notebook(
        "#parameters\nday = ''\nn = 1\ntoken = ''",
        "import os, socket\nprint('day', day, 'n*2', n * 2, 'token length', len(token))",
        "from airflow_notebook_provider import record\nrecord('rows', n * 10)",
        kernelspec={"name": WORKER_KERNEL, "display_name": "Worker's Python", "language": "python"},
    )
    out = tmp_path / "out.ipynb"
    dag = gw_task("t_gw_ok", nb, out, parameters={"day": "{{ ds }}", "n": 21, "token": "{{ var.value.gw_token }}"},
                  secret_parameters=["token"])
    res = run_dag(dag, logical_date=START)["nb"]
    assert res.state == "success"
    got = read_nb(out)
    cells = code_cells(got)
    assert stream_text(cells[2]) == "day 2024-01-01 n*2 42 token length 13\n"
    assert res.xcom["rows"] == 210 and res.xcom["results"] == {"rows": 210}
    assert res.xcom["return_value"] == str(out)
    log = "".join(capfd.readouterr())
    assert "[stdout] day 2024-01-01 n*2 42" in log  # the cells' output reaches the task log live
    assert "started on the gateway" in caplog.text
    text = json.dumps(got)
    assert "tok-5ecret-77" not in text and "tok-5ecret-77" not in log
    assert "KERNEL_NOTEBOOK_SECRET_token" in "".join(cells[1]["source"])  # read from the kernel's environment
    assert got["metadata"]["kernelspec"]["name"] == WORKER_KERNEL


def test_a_failing_cell_is_recorded_and_the_kernel_deleted(airflow_db, gateway_conn, make_notebook, tmp_path) -> None:
    nb = make_notebook("x = 1", "raise ValueError('bad row 17')", "print('never')")
    out = tmp_path / "out.ipynb"
    assert run_dag(gw_task("t_gw_err", nb, out))["nb"].state == "failed"
    got = read_nb(out)
    assert "ValueError" in banner(got) and "bad row 17" in banner(got)
    assert got["metadata"]["papermill"]["exception"] is True
    assert code_cells(got)[2]["metadata"]["papermill"]["status"] == "pending"


def test_a_cell_timeout_interrupts_then_deletes_the_remote_kernel(
    airflow_db, gateway_conn: Gateway, make_notebook, tmp_path: Path
) -> None:
    nb = make_notebook("import time\nprint('sleeping', flush=True)\ntime.sleep(600)", "print('never')")
    out = tmp_path / "out.ipynb"
    t0 = time.monotonic()
    assert run_dag(gw_task("t_gw_timeout", nb, out, cell_timeout=3))["nb"].state == "failed"
    assert time.monotonic() - t0 < 60
    got = read_nb(out)
    assert "cell_timeout=3 s" in banner(got)
    # The gateway was asked to interrupt the cell before the kernel was deleted (its access log).
    access = gateway_conn.log.read_text()
    assert access.index("/interrupt") < access.rindex("DELETE /api/kernels/")


def kill_remote_kernel_soon(gw: Gateway, marker: Path, how: str) -> threading.Thread:
    """Once the notebook has written ``marker``, end its kernel from the gateway's side."""

    def run() -> None:
        wait_for(marker.exists, 60, "the notebook to start its long cell")
        if how == "kill":
            (line,) = gw.kernel_processes()
            import os

            os.kill(int(line.split()[0]), signal.SIGKILL)
        else:  # culled: deleted through the gateway's API, as its idle culler or an admin would
            (kernel,) = gw.kernels()
            gw.api("DELETE", f"/api/kernels/{kernel['id']}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["kill", "cull"])
def test_a_kernel_that_dies_on_the_gateway_fails_the_task_with_the_reason(
    airflow_db, gateway_conn: Gateway, make_notebook, tmp_path: Path, how: str
) -> None:
    marker = tmp_path / "started"
    nb = make_notebook("import time, pathlib\n"
                       f"pathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)", "print('never')")
    out = tmp_path / "out.ipynb"
    thread = kill_remote_kernel_soon(gateway_conn, marker, how)
    t0 = time.monotonic()
    assert run_dag(gw_task(f"t_gw_{how}", nb, out))["nb"].state == "failed"
    thread.join(5)
    assert time.monotonic() - t0 < 90
    got = read_nb(out)
    text = banner(got)
    assert "DeadKernelError" in text
    if how == "kill":
        assert "died on the gateway" in text or "closed the kernel's connection" in text
    else:
        assert "no longer exists on the gateway" in text or "closed the kernel's connection" in text


def test_the_gateway_going_away_mid_run_fails_the_task_with_the_notebook_saved(
    airflow_db, make_notebook, tmp_path: Path, monkeypatch
) -> None:
    gw = start_gateway(tmp_path / "gw")
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GW", gw.connection_json(connect_timeout=2))
        marker = tmp_path / "started"
        nb = make_notebook("print('first cell ran')", "import time, pathlib\n"
                           f"pathlib.Path({str(marker)!r}).touch()\ntime.sleep(120)", "print('never')")
        out = tmp_path / "out.ipynb"
        stopper = threading.Thread(target=lambda: (wait_for(marker.exists, 60, "the long cell"), gw.stop(signal.SIGKILL)),
                                   daemon=True)
        stopper.start()
        t0 = time.monotonic()
        assert run_dag(gw_task("t_gw_gone", nb, out))["nb"].state == "failed"
        assert time.monotonic() - t0 < 90
        got = read_nb(out)
        assert stream_text(code_cells(got)[0]) == "first cell ran\n"
        assert "DeadKernelError" in banner(got)
        assert "gateway" in banner(got)
    finally:
        gw.stop()
    assert not gw.kernel_processes()


def test_an_unreachable_gateway_is_retried_then_recorded_naming_the_connection(
    airflow_db, make_notebook, tmp_path: Path, monkeypatch
) -> None:
    from tests.helpers import free_port

    monkeypatch.setenv("AIRFLOW_CONN_GW", json.dumps({
        "conn_type": "jupyter_gateway", "host": f"http://127.0.0.1:{free_port()}", "password": "x",
        "extra": {"connect_timeout": 1}}))
    nb = make_notebook("print(1)")
    out = tmp_path / "out.ipynb"
    t0 = time.monotonic()
    assert run_dag(gw_task("t_gw_unreachable", nb, out))["nb"].state == "failed"
    assert time.monotonic() - t0 < 60  # bounded: 3 tries, 1 s and 2 s apart, per start attempt
    text = banner(read_nb(out))
    assert "could not be reached" in text and "connection `gw`" in text and "3 attempts" in text


def test_a_wrong_token_fails_at_once_with_a_clear_error_and_no_kernel(
    airflow_db, gateway: Gateway, make_notebook, tmp_path: Path, monkeypatch, capfd
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GW", json.dumps({"conn_type": "jupyter_gateway", "host": gateway.url,
                                                      "password": "wrong"}))
    nb = make_notebook("print(1)")
    res = run_dag(gw_task("t_gw_401", nb, tmp_path / "out.ipynb", retries=2))["nb"]
    assert res.state == "failed" and res.try_number == 1  # no retries: a token does not fix itself
    log = "".join(capfd.readouterr())
    assert "refused the request GET /api/kernelspecs with HTTP 401" in log
    assert "Set the connection's password to the gateway's auth token" in log
    assert gateway.kernels() == []


def test_a_kernel_the_gateway_does_not_offer_is_named_with_the_ones_it_does(
    airflow_db, gateway_conn, make_notebook, tmp_path, capfd
) -> None:
    nb = make_notebook("print(1)")
    assert run_dag(gw_task("t_gw_nokernel", nb, tmp_path / "o.ipynb", kernel_name="julia-9"))["nb"].state == "failed"
    log = "".join(capfd.readouterr())
    assert "'julia-9'" in log and "is not offered by the Jupyter gateway" in log and "python3" in log


def test_a_task_timeout_stops_the_run_and_deletes_the_kernel(airflow_db, gateway_conn, make_notebook, tmp_path) -> None:
    nb = make_notebook("import time\ntime.sleep(600)")
    out = tmp_path / "out.ipynb"
    with DAG(dag_id="t_gw_exec_timeout", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), kernel_conn_id="gw",
                         execution_timeout=timedelta(seconds=5))
    assert run_dag(dag)["nb"].state == "failed"
    assert "was stopped" in banner(read_nb(out))


def test_four_mapped_tasks_share_one_gateway(airflow_db, gateway_conn: Gateway, make_notebook, tmp_path) -> None:
    nb = make_notebook("#parameters\ni = 0", "import os\nprint('square', i * i)")
    with DAG(dag_id="t_gw_mapped", schedule=None, start_date=START) as dag:
        NotebookOperator.partial(task_id="nb", notebook=str(nb), kernel_conn_id="gw").expand(
            parameters=[{"i": i} for i in range(4)]
        )
    res = run_dag(dag)
    outs = [res[f"nb[{i}]"] for i in range(4)]
    assert [r.state for r in outs] == ["success"] * 4
    for i, r in enumerate(outs):
        assert stream_text(code_cells(read_nb(r.xcom["return_value"]))[2]) == f"square {i * i}\n"


def test_a_200_cell_notebook(airflow_db, gateway_conn, make_notebook, tmp_path) -> None:
    nb = make_notebook("total = 0", *[f"total += {i}\nprint({i})" for i in range(199)])
    out = tmp_path / "out.ipynb"
    assert run_dag(gw_task("t_gw_200", nb, out))["nb"].state == "success"
    cells = code_cells(read_nb(out))
    assert len(cells) == 200 and stream_text(cells[-1]) == "198\n"
    assert all(c["metadata"]["papermill"]["status"] == "completed" for c in cells)


def test_an_r_notebook_on_the_gateway(airflow_db, gateway_conn: Gateway, make_notebook, tmp_path) -> None:
    if "ir" not in gateway_conn.api("GET", "/api/kernelspecs").json()["kernelspecs"]:
        pytest.skip("IRkernel is not installed (r-cran-irkernel; .ci/run installs it)")
    nb = make_notebook("#parameters\ncity <- 'x'\nn <- 1", "cat(city, n * 2, '\\n')",
                       kernelspec={"name": "ir", "display_name": "R", "language": "R"})
    out = tmp_path / "out.ipynb"
    assert run_dag(gw_task("t_gw_r", nb, out, parameters={"city": "Zürich", "n": 21}))["nb"].state == "success"
    assert stream_text(code_cells(read_nb(out))[2]) == "Zürich 42 \n"


def test_the_gateway_kernel_works_in_its_own_folder_unless_cwd_is_set(
    airflow_db, gateway_conn: Gateway, make_notebook, tmp_path
) -> None:
    nb = make_notebook("import os\nprint(os.getcwd())")
    out = tmp_path / "out.ipynb"
    assert run_dag(gw_task("t_gw_cwd", nb, out))["nb"].state == "success"
    assert stream_text(code_cells(read_nb(out))[0]).strip() == str(gateway_conn.folder)
