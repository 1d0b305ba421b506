"""Declare a notebook task, run it with ``dag.test()`` on a real SQLite metadata DB and a real kernel, and check
what a data engineer would look at: task state, output notebooks, XCom, the link, the log."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, kernel_processes, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
LINK_KEY = "_link_NotebookOutputLink"


def dag_with(dag_id: str, **op_kwargs: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False) as dag:
        NotebookOperator(task_id=op_kwargs.pop("task_id", "nb"), **op_kwargs)
    return dag


def test_templated_parameters_default_output_xcom_and_link(airflow_db, make_notebook, output_base: Path) -> None:
    nb = make_notebook(
        "#parameters\nday = 'x'\nn = 0\nregions = []\nnested = {}",
        "print(repr(day), type(n).__name__, n, regions, nested['when'])",
    )
    dag = dag_with(
        "t_templating",
        notebook=str(nb),
        parameters={"day": "{{ ds }}", "n": 3, "regions": ["eu", "{{ dag.dag_id }}"], "nested": {"when": ["{{ ds_nodash }}"]}},
    )
    res = run_dag(dag, logical_date=dt.datetime(2024, 5, 17, tzinfo=dt.timezone.utc))
    task, run_id = res["nb"], res["__run__"].xcom["run_id"]
    assert task.state == "success"
    expected = output_base / "t_templating" / run_id / "nb" / "attempt-1.ipynb"
    assert task.xcom["output_notebook"] == str(expected)
    assert task.xcom["return_value"] == str(expected)
    link = task.xcom[LINK_KEY]
    assert "/notebook/dags/t_templating/view?" in link and "dag_id=" not in link and "try_number=1" in link
    out = read_nb(expected)
    assert stream_text(code_cells(out)[2]) == "'2024-05-17' int 3 ['eu', 't_templating'] ['20240517']\n"
    assert out["metadata"]["papermill"]["parameters"] == {
        "day": "2024-05-17", "n": 3, "regions": ["eu", "t_templating"], "nested": {"when": ["20240517"]}}
    af = out["metadata"]["airflow"]
    assert (af["dag_id"], af["run_id"], af["task_id"], af["map_index"], af["try_number"]) == ("t_templating", run_id, "nb", -1, 1)
    assert af["logical_date"].startswith("2024-05-17")
    provenance = out["metadata"]["airflow_notebook"]
    assert provenance["input_sha256"] == hashlib.sha256(nb.read_bytes()).hexdigest()
    assert provenance["hostname"] and provenance["versions"]["airflow"].startswith("3.")
    assert not kernel_processes()


def test_failure_fails_the_task_with_the_link_and_the_evidence(airflow_db, make_notebook, capfd) -> None:
    nb = make_notebook("print('step one')", "raise ValueError('bad input row 17')", "print('never')")
    res = run_dag(dag_with("t_failure", notebook=str(nb)))
    task = res["nb"]
    assert task.state == "failed"
    output = task.xcom["output_notebook"]
    assert "/notebook/dags/t_failure/view?" in task.xcom[LINK_KEY]
    out = read_nb(output)
    assert out["metadata"]["papermill"]["exception"] is True
    assert "papermill-error-cell-tag" in out["cells"][0]["metadata"]["tags"]
    failing = [c for c in out["cells"] if c.get("metadata", {}).get("papermill", {}).get("status") == "failed"]
    assert len(failing) == 1 and failing[0]["outputs"][0]["evalue"] == "bad input row 17"
    log = capfd.readouterr()
    text = log.out + log.err
    assert "NotebookTaskFailed" in text
    msg = next(line for line in text.splitlines() if "NotebookTaskFailed:" in line)
    for part in (str(nb), "cell 2", "ValueError", "bad input row 17", output, "/notebook/dags/t_failure/view?"):
        assert part in msg, (part, msg)


def test_retries_keep_every_attempt(airflow_db, make_notebook, output_base: Path) -> None:
    nb = make_notebook("#parameters\nattempt = 0", "assert int(attempt) > 1, f'attempt {attempt} fails'", "print('ok')")
    dag = dag_with("t_retries", notebook=str(nb), parameters={"attempt": "{{ ti.try_number }}"}, retries=2,
                   retry_delay=dt.timedelta(0))
    res = run_dag(dag)
    task, run_id = res["nb"], res["__run__"].xcom["run_id"]
    assert (task.state, task.try_number) == ("success", 2)
    first = read_nb(output_base / "t_retries" / run_id / "nb" / "attempt-1.ipynb")
    second = read_nb(output_base / "t_retries" / run_id / "nb" / "attempt-2.ipynb")
    assert first["metadata"]["papermill"]["exception"] is True and first["metadata"]["airflow"]["try_number"] == 1
    assert second["metadata"]["papermill"]["exception"] is None and second["metadata"]["airflow"]["try_number"] == 2
    assert task.xcom["output_notebook"].endswith("attempt-2.ipynb")


def test_retry_of_a_fixed_output_name_does_not_overwrite(airflow_db, make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("#parameters\nattempt = 0", "assert int(attempt) > 1")
    out = tmp_path / "runs" / "report.ipynb"
    dag = dag_with("t_fixed_out", notebook=str(nb), output_notebook=str(out), parameters={"attempt": "{{ ti.try_number }}"},
                   retries=1, retry_delay=dt.timedelta(0))
    res = run_dag(dag)
    assert res["nb"].state == "success"
    assert read_nb(out)["metadata"]["airflow"]["try_number"] == 1  # the failed attempt's evidence is intact
    second = tmp_path / "runs" / "report.attempt-2.ipynb"
    assert read_nb(second)["metadata"]["airflow"]["try_number"] == 2
    assert res["nb"].xcom["output_notebook"] == str(second)


@pytest.mark.parametrize("bad", [{"bad-name": 1}, {"class": 1}, {"ok": object()}])
def test_bad_parameter_runs_nothing_and_is_not_retried(airflow_db, make_notebook, output_base: Path, bad, capfd) -> None:
    marker = output_base.parent / f"marker-{os.getpid()}"
    nb = make_notebook(f"open({str(marker)!r}, 'w').write('ran')")
    dag_id = f"t_badparam_{abs(hash(str(bad))) % 10_000}"
    res = run_dag(dag_with(dag_id, notebook=str(nb), parameters=bad, retries=3, retry_delay=dt.timedelta(0)))
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)
    assert "output_notebook" not in res["nb"].xcom
    assert not marker.exists() and not (output_base / dag_id).exists()
    text = "".join(capfd.readouterr())
    assert "NotebookTaskConfigError" in text and "Parameter" in text


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "does not exist"), (b"{not json", "not valid JSON"), (b'{"a": 1}', "not a Jupyter notebook")],
)
def test_missing_or_invalid_input_fails_clearly(airflow_db, tmp_path: Path, output_base: Path, content, match, capfd) -> None:
    path = tmp_path / "input.ipynb"
    if content is not None:
        path.write_bytes(content)
    dag_id = f"t_badinput_{match.split()[-1]}"
    res = run_dag(dag_with(dag_id, notebook=str(path)))
    assert res["nb"].state == "failed"
    assert not (output_base / dag_id).exists()
    text = "".join(capfd.readouterr())
    assert "NotebookTaskInputError" in text and match in text and str(path) in text


def test_output_equal_to_input_is_refused(airflow_db, make_notebook, capfd) -> None:
    nb = make_notebook("print(1)")
    before = nb.read_bytes()
    res = run_dag(dag_with("t_same_out", notebook=str(nb), output_notebook=str(nb)))
    assert res["nb"].state == "failed"
    assert nb.read_bytes() == before
    assert "is the input notebook" in "".join(capfd.readouterr())


def test_output_pushed_before_the_kernel_starts(airflow_db, make_notebook, tmp_path: Path, monkeypatch) -> None:
    kdir = tmp_path / "jupyter" / "kernels" / "broken"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text('{"argv": ["/nonexistent/python", "-f", "{connection_file}"], "display_name": "Broken", "language": "python"}')
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = make_notebook("print(1)")
    res = run_dag(dag_with("t_xcom_first", notebook=str(nb), kernel_name="broken"))
    task = res["nb"]
    assert task.state == "failed"
    out = read_nb(task.xcom["output_notebook"])  # the kernel never started, yet the location was pushed and written
    assert out["metadata"]["papermill"]["exception"] is True
    assert task.xcom[LINK_KEY]


def test_relative_files_are_found_from_the_notebook_folder(airflow_db, make_notebook, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "input.csv").write_text("a,b\n1,2\n")
    nb = make_notebook("print(open('data/input.csv').read().splitlines()[1])", folder=folder)
    res = run_dag(dag_with("t_cwd", notebook=str(nb)))
    assert res["nb"].state == "success"
    assert stream_text(code_cells(read_nb(res["nb"].xcom["output_notebook"]))[0]) == "1,2\n"


def test_execution_timeout_stops_the_kernel_and_keeps_the_notebook(airflow_db, make_notebook) -> None:
    nb = make_notebook("print('working', flush=True)", "import time; time.sleep(120)", "print('never')")
    res = run_dag(dag_with("t_exec_timeout", notebook=str(nb), execution_timeout=dt.timedelta(seconds=4)))
    task = res["nb"]
    assert task.state == "failed"
    out = read_nb(task.xcom["output_notebook"])
    assert out["metadata"]["papermill"]["exception"] is True
    assert "stopped" in "".join(out["cells"][0]["source"])
    sleeping = [c for c in out["cells"] if "time.sleep(120)" in "".join(c["source"])][0]
    assert sleeping["metadata"]["papermill"]["status"] == "failed"
    assert not kernel_processes()


def test_output_in_a_folder_that_cannot_be_written(airflow_db, make_notebook, tmp_path: Path, capfd) -> None:
    if os.geteuid() == 0:
        target = "/proc/notebook-outputs/out.ipynb"  # not writable even by root
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro / "out.ipynb")
    nb = make_notebook("print(1)")
    res = run_dag(dag_with("t_unwritable", notebook=str(nb), output_notebook=target))
    assert res["nb"].state == "failed"
    text = "".join(capfd.readouterr())
    assert f"Cannot write {target}" in text and "Make the folder writable" in text
