"""Bad input, all in one DAG run: each task fails with an error naming the thing and the fix, before any cell
runs, with nothing written over. Old or unusual but readable notebooks (nbformat 3, a future 4.x minor, no
kernelspec and no language) run, with a warning saying what was assumed and how to fix the notebook."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import nbformat
import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import read_nb, run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def notebook_json(marker: Path, **metadata: object) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'a').write('ran\\n')")])
    nb.metadata.update(metadata)
    return json.loads(nbformat.writes(nb))


def test_bad_input_fails_clearly_before_any_cell_runs(airflow_db, tmp_path: Path, output_base: Path, own_kernels, capfd, caplog) -> None:
    marker = tmp_path / "a-cell-ran"
    py3 = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    files: dict[str, bytes | None] = {
        "missing": None,
        "not_json": b"{this is not json",
        "not_a_notebook": json.dumps({"name": "config", "cells_count": 3}).encode(),
        "future_major": json.dumps({**notebook_json(marker, **py3), "nbformat": 5, "nbformat_minor": 0}).encode(),
        "unknown_kernel": json.dumps(notebook_json(marker, kernelspec={"name": "julia-9.9", "display_name": "J"})).encode(),
        "other_language": json.dumps(notebook_json(marker, language_info={"name": "R"})).encode(),
        "good": json.dumps(notebook_json(marker, **py3)).encode(),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.ipynb"
        if content is not None:
            paths[name].write_bytes(content)
    good = str(paths["good"])
    good_before = paths["good"].read_bytes()
    unwritable = "/proc/rel-outputs/out.ipynb" if os.geteuid() == 0 else "/rel-not-writable/out.ipynb"
    cases: dict[str, tuple[dict[str, object], list[str]]] = {
        "missing": ({"notebook": str(paths["missing"])}, ["NotebookTaskInputError", "does not exist", "Fix `notebook`"]),
        "not_json": ({"notebook": str(paths["not_json"])}, ["NotebookTaskInputError", "not valid JSON", "Open and save it in Jupyter"]),
        "not_a_notebook": ({"notebook": str(paths["not_a_notebook"])}, ["NotebookTaskInputError", "not a Jupyter notebook", "Point `notebook` at an .ipynb file"]),
        "future_major": ({"notebook": str(paths["future_major"])}, ["NotebookTaskInputError", "nbformat 5", "Upgrade the nbformat package"]),
        "unknown_kernel": ({"notebook": str(paths["unknown_kernel"])}, ["NotebookTaskInputError", "'julia-9.9'", "Installed kernels", "set `kernel_name`"]),
        "unknown_kernel_arg": ({"notebook": good, "kernel_name": "nope-kernel"}, ["NotebookTaskInputError", "'nope-kernel' (asked for by `kernel_name`)"]),
        "other_language": ({"notebook": str(paths["other_language"])}, ["NotebookTaskInputError", "language is 'R'", "set `kernel_name`"]),
        "output_is_input": ({"notebook": good, "output_notebook": good, "retries": 2}, ["NotebookTaskConfigError", "is the input notebook", "Set `output_notebook`"]),
        "output_unwritable": ({"notebook": good, "output_notebook": unwritable}, [f"Cannot write {unwritable}", "Make the folder writable"]),
        "bad_param_name": ({"notebook": good, "parameters": {"my-param": 1}, "retries": 2}, ["NotebookTaskConfigError", "'my-param' is not a valid Python identifier", "Rename the key"]),
        "bad_param_type": ({"notebook": good, "parameters": {"when": {1, 2}}, "retries": 2}, ["NotebookTaskConfigError", "'when'", "builtins.set", "convert it"]),
        "bad_template": ({"notebook": good, "parameters": {"day": "{{ no_such_variable.attr }}"}}, ["field 'parameters'", "no_such_variable"]),
        "missing_conn": ({"notebook": good, "conn_id": "no_such_conn"}, ["NotebookTaskInputError", "Connection 'no_such_conn' (conn_id) does not exist", "Create it"]),
    }
    with DAG(dag_id="rel_bad_input", schedule=None, start_date=START) as dag:
        for task_id, (kwargs, _) in cases.items():
            NotebookOperator(task_id=task_id, retry_delay=dt.timedelta(0), **kwargs)
    res = run_dag(dag)
    text = "".join(capfd.readouterr()) + caplog.text  # Airflow's rendering error goes through logging only
    lines = text.splitlines()
    for task_id, (_, expected) in cases.items():
        assert res[task_id].state == "failed", task_id
        assert res[task_id].try_number == 1, f"{task_id} was retried"
        assert "output_notebook" not in res[task_id].xcom, task_id
        hits = [line for line in lines if all(part in line for part in expected)]
        assert hits, f"{task_id}: no log line holds all of {expected}: {[x for x in lines if task_id in x]}"
    assert not marker.exists(), "a cell ran"
    assert not (output_base / "rel_bad_input").exists(), "something was written"
    assert paths["good"].read_bytes() == good_before
    assert not own_kernels(), "the kernel started while the input was read outlived its task"


def test_old_and_unlabelled_notebooks_run_with_a_warning(airflow_db, tmp_path: Path, capfd, caplog) -> None:
    marker = tmp_path / "ran"
    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_code_cell(input=f"open({str(marker)!r}, 'a').write('v3\\n')")])])
    paths = {"nbformat3": tmp_path / "v3.ipynb", "future_minor": tmp_path / "future.ipynb", "unlabelled": tmp_path / "bare.ipynb"}
    paths["nbformat3"].write_text(nbformat.v3.writes_json(v3))
    future = notebook_json(marker, kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"})
    future["nbformat_minor"] = 99
    paths["future_minor"].write_text(json.dumps(future))
    paths["unlabelled"].write_text(json.dumps(notebook_json(marker)))  # no kernelspec, no language_info
    with DAG(dag_id="rel_readable_input", schedule=None, start_date=START) as dag:
        for task_id, path in paths.items():
            NotebookOperator(task_id=task_id, notebook=str(path))
    res = run_dag(dag)
    text = "".join(capfd.readouterr()) + caplog.text
    for task_id in paths:
        assert res[task_id].state == "success", task_id
        out = read_nb(res[task_id].xcom["output_notebook"])
        assert out["nbformat"] == 4
    assert "is nbformat 3; it is upgraded to nbformat 4 for this run" in text
    assert "has nbformat 4.99, newer than" in text
    assert "names no kernel (no metadata.kernelspec); running it with 'python3'. Set `kernel_name`" in text
    assert marker.read_text().count("ran") + marker.read_text().count("v3") == 3
