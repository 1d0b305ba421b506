"""The engine alone on a gateway kernel (no Airflow): a stop from outside, as ``on_kill`` after SIGTERM does it,
saves the notebook with the reason and deletes the kernel on the gateway; and the early kernel is deleted too when
the notebook turns out to want another kernel."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nbformat
import pytest

from airflow_notebook_provider.engine import Execution, ExecutionSettings, NotebookExecutionError
from airflow_notebook_provider.engine.kernels.gateway import GatewayKernels, GatewaySettings
from tests.gateway.server import WORKER_KERNEL, Gateway, assert_nothing_left
from tests.processes import wait_for


def settings(gw: Gateway, **kw: object) -> ExecutionSettings:
    return ExecutionSettings(kernels=GatewayKernels(GatewaySettings(gw.url, token=gw.token, label="test")), **kw)


def notebook(*sources: str, kernel: str = "python3") -> bytes:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources],
                                  metadata={"kernelspec": {"name": kernel, "display_name": kernel, "language": "python"}})
    return nbformat.writes(nb).encode()


def test_a_stop_from_outside_saves_the_notebook_and_deletes_the_kernel(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    marker = tmp_path / "started"
    data = notebook("print('one')", f"import time, pathlib\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(300)")
    with Execution(str(tmp_path / "in.ipynb"), settings=settings(gateway, kernel_name="python3")) as execution:
        stopper = threading.Thread(target=lambda: (wait_for(marker.exists, 60, "the long cell"),
                                                   execution.stop("SIGTERM: the worker is shutting down")))
        stopper.start()
        t0 = time.monotonic()
        with pytest.raises(NotebookExecutionError) as info:
            execution.run(data, str(out), save=out.write_bytes)
        stopper.join()
    assert time.monotonic() - t0 < 30
    assert info.value.kind == "stopped", info.value
    assert "The run was stopped (SIGTERM: the worker is shutting down)" in out.read_text()
    assert_nothing_left(gateway)


def test_the_early_kernel_is_deleted_when_the_notebook_wants_another(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    posts = gateway.log.read_text().count("POST /api/kernels ")
    with Execution(str(tmp_path / "in.ipynb"), settings=settings(gateway, kernel_name=WORKER_KERNEL)) as execution:
        execution.run(notebook("print(1)", kernel=WORKER_KERNEL), str(out), save=out.write_bytes)
    assert gateway.log.read_text().count("POST /api/kernels ") == posts + 1  # started early, and used
    with Execution(str(tmp_path / "in.ipynb"), settings=settings(gateway)) as execution:  # no kernel_name: not early
        execution.run(notebook("print(1)", kernel=WORKER_KERNEL), str(out), save=out.write_bytes)
    assert gateway.log.read_text().count("POST /api/kernels ") == posts + 2
    assert_nothing_left(gateway)


def test_a_failing_cell_raises_with_the_notebook_written(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    with Execution(str(tmp_path / "in.ipynb"), settings=settings(gateway, kernel_name="python3")) as execution:
        with pytest.raises(NotebookExecutionError) as info:
            execution.run(notebook("1/0"), str(out), save=out.write_bytes)
    assert info.value.ename == "ZeroDivisionError"
    assert "ZeroDivisionError" in out.read_text()
    assert_nothing_left(gateway)
