"""Kernel faults, each through a real task (``dag.test()`` on SQLite) and a real kernel: the task ends failed,
the output notebook says what happened (banner, failed cell, error output) and no kernel is left running."""

from __future__ import annotations

import datetime as dt
import html
import json
import sys
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import read_nb, run_dag
from tests.processes import processes_matching
from tests.reliability.faults import CASES

START = pendulum.datetime(2024, 1, 1, tz="UTC")
BANNER_TAG = "papermill-error-cell-tag"


def dag_with(dag_id: str, **op_kwargs: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False) as dag:
        NotebookOperator(task_id="nb", **op_kwargs)
    return dag


def failed_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if c.get("metadata", {}).get("papermill", {}).get("status") == "failed"]
    assert len(cells) == 1, [c["metadata"].get("papermill") for c in nb["cells"]]
    return cells[0]


def errors_of(cell: dict) -> str:
    return " | ".join(f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", []) if o["output_type"] == "error")


@pytest.mark.parametrize("case", sorted(CASES))
def test_cell_fault_fails_the_task_and_marks_the_cell(airflow_db, make_notebook, own_kernels, case: str, capfd) -> None:
    source, kwargs, expected = CASES[case]
    nb = make_notebook("print('before', flush=True)", source, "print('never')")
    res = run_dag(dag_with(f"rel_fault_{case}", notebook=str(nb), **kwargs))
    task = res["nb"]
    assert task.state == "failed"
    out = read_nb(task.xcom["output_notebook"])
    assert out["metadata"]["papermill"]["exception"] is True
    assert BANNER_TAG in out["cells"][0]["metadata"]["tags"]
    cell = failed_cell(out)
    assert source in "".join(cell["source"])
    assert expected in errors_of(cell), errors_of(cell)
    assert [c["metadata"]["papermill"]["status"] for c in out["cells"] if "never" in "".join(c["source"])] == ["pending"]
    assert "before" in json.dumps(out["cells"])
    text = "".join(capfd.readouterr())
    assert "NotebookTaskFailed" in text and expected.split(":")[0] in text
    if case == "memory_limit":  # the kernel's MemoryError carries no message: the banner and the task say it
        assert "the kernel ran out of memory" in "".join(out["cells"][0]["source"])
        assert "MemoryError: the kernel ran out of memory" in text
    assert not own_kernels()


def write_kernelspec(root: Path, name: str, argv: list[str]) -> None:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))


def test_broken_kernelspec_and_silent_kernel_are_recorded(airflow_db, make_notebook, own_kernels, tmp_path: Path, monkeypatch, capfd) -> None:
    root = tmp_path / "jupyter"
    write_kernelspec(root, "broken", ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    marker = f"silent-kernel-{tmp_path.name}"
    write_kernelspec(root, "silent", [sys.executable, "-c", f"import time; time.sleep(300)  # {marker}", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    nb = make_notebook("print('never')")
    with DAG(dag_id="rel_kernel_start", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="broken", notebook=str(nb), kernel_name="broken")
        NotebookOperator(task_id="silent", notebook=str(nb), kernel_name="silent", startup_timeout=3)
    res = run_dag(dag)
    for task_id, why in (("broken", "/nonexistent/python"), ("silent", "")):
        task = res[task_id]
        assert task.state == "failed"
        out = read_nb(task.xcom["output_notebook"])
        banner = html.unescape("".join(out["cells"][0]["source"]))
        assert BANNER_TAG in out["cells"][0]["metadata"]["tags"]
        assert f"kernel {task_id!r} did not start" in banner and why in banner, banner
        assert "startup_timeout" in banner and "jupyter kernelspec list" in banner
        assert [c["metadata"]["papermill"]["status"] for c in out["cells"] if c["cell_type"] == "code"] == ["pending"]
    text = "".join(capfd.readouterr())
    assert "could not start its kernel" in text
    assert not processes_matching(marker), "the kernel that never answered is still running"
    assert not own_kernels()


def test_execution_timeout_in_process(airflow_db, make_notebook, own_kernels) -> None:
    nb = make_notebook("print('working', flush=True)", "import time; time.sleep(120)", "print('never')")
    res = run_dag(dag_with("rel_exec_timeout", notebook=str(nb), execution_timeout=dt.timedelta(seconds=4)))
    out = read_nb(res["nb"].xcom["output_notebook"])
    assert res["nb"].state == "failed"
    assert "The run was stopped" in "".join(out["cells"][0]["source"])
    assert "AirflowTaskTimeout" in errors_of(failed_cell(out))
    assert not own_kernels()


# A kernel launcher that, the first time, finds its shell port taken by another process (as when two tasks' kernels
# start side by side and jupyter_client hands both the same free port): ipykernel cannot bind it and exits.
PORT_TAKEN_LAUNCHER = """\
import json, os, socket, subprocess, sys
conn, launches = sys.argv[1], sys.argv[2]
with open(launches, "a") as f:
    f.write("launch\\n")
argv = [sys.executable, "-m", "ipykernel_launcher", "-f", conn]
if open(launches).read().count("launch") == 1:
    info = json.load(open(conn))
    taken = socket.socket()
    taken.bind((info["ip"], info["shell_port"]))
    taken.listen()
    sys.exit(subprocess.call(argv))
os.execv(sys.executable, argv)
"""


def test_kernel_that_dies_while_starting_is_started_again(airflow_db, make_notebook, own_kernels, tmp_path: Path, monkeypatch, capfd) -> None:
    root = tmp_path / "jupyter"
    launcher, launches = tmp_path / "launcher.py", tmp_path / "launches.txt"
    launcher.write_text(PORT_TAKEN_LAUNCHER)
    write_kernelspec(root, "port_taken", [sys.executable, str(launcher), "{connection_file}", str(launches)])
    write_kernelspec(root, "always_dies", [sys.executable, "-c", "import sys; sys.exit(7)", "{connection_file}"])
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    nb = make_notebook("print('ran', 6 * 7)")
    with DAG(dag_id="rel_kernel_restart", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="port_taken", notebook=str(nb), kernel_name="port_taken")
        NotebookOperator(task_id="always_dies", notebook=str(nb), kernel_name="always_dies")
    res = run_dag(dag)
    text = "".join(capfd.readouterr())

    # The port clash is survived: a second kernel on fresh ports runs the notebook, and the log says why.
    assert res["port_taken"].state == "success", text[-3000:]
    assert launches.read_text().count("launch") == 2
    out = read_nb(res["port_taken"].xcom["output_notebook"])
    assert "ran 42" in json.dumps(out["cells"]), out["cells"]
    assert "Address already in use" in text
    assert "Kernel port_taken exited while starting" in text and "attempt 2 of 3" in text

    # A kernel that can never start is tried three times, then recorded as a start-up failure.
    task = res["always_dies"]
    assert task.state == "failed"
    banner = html.unescape("".join(read_nb(task.xcom["output_notebook"])["cells"][0]["source"]))
    assert "kernel 'always_dies' did not start (3 attempts)" in banner, banner
    assert "Kernel died before replying to kernel_info" in banner
    assert "exited with code 7" in text and "attempt 3 of 3" in text
    assert not own_kernels()
