"""Each code cell's duration, peak memory and CPU seconds, measured on a real ipykernel and found in the output."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from pathlib import Path

import pytest

from airflow_notebook_provider.engine import ExecutionSettings, NotebookRun, load
from airflow_notebook_provider.engine.storage import write_atomic
from airflow_notebook_provider.launcher import server
from airflow_notebook_provider.notebook.resources import cell_costs
from tests.helpers import python_notebook, read_nb, run_dag

MB = 2**20
# Allocated and written page by page (a fresh bytearray is mapped zero pages: not resident until touched), then
# freed in the same cell: only a sample while it lives, or the kernel's high-water mark, can see it.
ALLOCATE = "b = bytearray(200 * 2**20)\nb[::4096] = b'\\x01' * (len(b) // 4096)\ndel b"
CHILD = ("import subprocess, sys\nsubprocess.run([sys.executable, '-c', "
         "\"import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * (len(b) // 4096); time.sleep(0.6)\"], "
         "check=True)")
SLEEP = "import time\ntime.sleep(0.3)"
BUSY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:\n    pass"


def run(tmp_path: Path, *sources: str) -> dict:
    src = tmp_path / "in.ipynb"
    out = tmp_path / "out.ipynb"
    import nbformat

    nbformat.write(python_notebook(*sources), str(src))
    nb = load(src.read_bytes(), str(src))
    log = logging.getLogger(f"test.resources.{tmp_path.name}")
    log.setLevel(logging.INFO)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        NotebookRun(nb, input_path=str(src), output_path=str(out), save=lambda data: write_atomic(out, data),
                    settings=ExecutionSettings(), log=log).run()
    finally:
        log.removeHandler(handler)
    return {**read_nb(out), "log": messages}


def test_each_code_cell_records_duration_peak_memory_and_cpu(tmp_path: Path) -> None:
    nb = run(tmp_path, "x = 1", ALLOCATE, CHILD, SLEEP, BUSY, "", "print('done')")
    costs = {c.first_line.split("\n")[0]: c for c in cell_costs(nb)}
    assert len(costs) == 6  # the empty cell does not run and gets no figures
    small, big, child = costs["x = 1"], costs[ALLOCATE.splitlines()[0]], costs["import subprocess, sys"]
    sleep, busy = costs["import time"], next(c for c in cell_costs(nb) if c.position == 5)
    assert big.peak_rss_bytes is not None and big.peak_rss_bytes > 200 * MB
    assert small.peak_rss_bytes is not None and 10 * MB < small.peak_rss_bytes < 200 * MB
    assert child.peak_rss_bytes is not None and child.peak_rss_bytes > 200 * MB  # a child of the kernel counts
    assert sleep.duration_s is not None and sleep.duration_s >= 0.3
    assert busy.cpu_s is not None and busy.cpu_s > 0
    for cell in nb["cells"]:
        if cell["source"]:  # papermill's own timing fields are kept beside ours
            pm = cell["metadata"]["papermill"]
            assert pm["status"] == "completed" and pm["duration"] is not None and pm["start_time"]
            res = cell["metadata"]["airflow_notebook"]["resources"]
            assert set(res) == {"duration_s", "peak_rss_bytes", "cpu_s", "samples"} and res["samples"] >= 2


def test_sampling_switched_off_records_durations_only(airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[notebook] cell_resources = off`` (an admin's setting) reaches a task's run: durations only."""
    import nbformat
    import pendulum
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.notebook import NotebookOperator

    monkeypatch.setenv("AIRFLOW__NOTEBOOK__CELL_RESOURCES", "off")
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(python_notebook(SLEEP), str(src))
    with DAG("cell_resources_off", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(src), output_notebook=str(out))
    assert run_dag(dag)["nb"].state == "success"
    (cost,) = cell_costs(read_nb(out))
    assert cost.duration_s is not None and cost.duration_s >= 0.3
    assert cost.peak_rss_bytes is None and cost.cpu_s is None

    monkeypatch.setenv("AIRFLOW__NOTEBOOK__CELL_RESOURCES", "sometimes")
    with DAG("cell_resources_bad", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(src), output_notebook=str(tmp_path / "bad.ipynb"))
    assert run_dag(dag)["nb"].state == "failed"
    assert not (tmp_path / "bad.ipynb").exists()


def test_a_kernel_forked_by_the_workers_launcher_is_measured_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tempfile.mkdtemp(prefix="nkl-")
    with (Path(folder) / "server.log").open("wb") as err:
        # pytest changes PYTEST_CURRENT_TEST between set-up and call: a launcher with it would fork nothing
        proc, path = server.start(folder, stderr=err, env={k: v for k, v in os.environ.items()
                                                             if k != "PYTEST_CURRENT_TEST"})
    try:
        monkeypatch.setenv(server.ENV_VAR, path)
        nb = run(tmp_path, ALLOCATE, BUSY)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert any("forked by the worker's kernel launcher" in m for m in nb["log"])
    big, busy = cell_costs(nb)
    assert big.peak_rss_bytes is not None and big.peak_rss_bytes > 200 * MB
    assert busy.cpu_s is not None and busy.cpu_s > 0
