"""Notebooks in other kernel languages as tasks: the R example DAG as shipped, and choosing the parameters'
language (``language=``, the papermill shim's ``language_name``), with real kernels."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG
from jupyter_client.kernelspec import KernelSpecManager

from airflow_notebook_provider.operators.notebook import NotebookOperator
from airflow_notebook_provider.operators.papermill import PapermillOperator
from tests.helpers import code_cells, kernel_processes, load_example, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need_kernel(name: str) -> None:
    """Skip outside CI when the kernel is not installed; in CI (which installs it) its absence is a failure."""
    if name not in KernelSpecManager().find_kernel_specs():
        if IN_CI:
            pytest.fail(f"CI is set but the {name!r} kernel is not installed: .ci/run installs it")
        pytest.skip(f"no {name!r} kernel here (Debian: apt-get install r-cran-irkernel)")


def test_example_r_dag(airflow_db, output_base: Path) -> None:
    need_kernel("ir")
    res = run_dag(load_example("example_notebook_r").dag)
    assert res["r_report"].state == "success" and res["total"].state == "success"
    with open(Path(__file__).resolve().parents[2] / "example_dags" / "notebooks" / "data" / "sales.csv") as fh:
        picked = [float(r["amount"]) for r in csv.DictReader(fh) if r["region"] in ("eu", "us") and float(r["amount"]) >= 2]
    out = read_nb(res["r_report"].xcom["output_notebook"])
    injected = "".join(code_cells(out)[1]["source"])
    assert 'regions <- list("eu", "us")' in injected and "min_amount <- 2" in injected, injected
    # Amounts of at least 2 in eu and us: the R code ran on the injected values and recorded its results.
    assert res["r_report"].xcom["rows"] == len(picked) and res["r_report"].xcom["total"] == pytest.approx(sum(picked))
    assert res["total"].xcom["return_value"] == pytest.approx(sum(picked))
    assert out["metadata"]["kernelspec"]["name"] == "ir" and out["metadata"]["language_info"]["name"] == "R"
    assert not kernel_processes()


def test_language_argument_and_papermill_language_name(airflow_db, make_notebook, capfd) -> None:
    nb = make_notebook("#parameters\nx = 0", "print(repr(x))")
    with DAG(dag_id="t_language_arg", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="explicit", notebook=str(nb), parameters={"x": "a"}, language="python")
        NotebookOperator(task_id="unknown", notebook=str(nb), parameters={"x": "a"}, language="cobol", retries=2)
        PapermillOperator(task_id="shim", input_nb=str(nb), parameters={"x": "b"}, language_name="python")
    res = run_dag(dag)
    assert res["explicit"].state == "success" and res["shim"].state == "success"
    assert stream_text(code_cells(read_nb(res["shim"].xcom["output_notebook"]))[2]) == "'b'\n"
    # An unknown language fails before any cell runs, without retries, naming the language and the argument.
    assert (res["unknown"].state, res["unknown"].try_number) == ("failed", 1)
    log = "".join(capfd.readouterr())
    assert "No parameter translator for kernel language 'cobol'" in log and "`language=`" in log
    assert "output_notebook" not in res["unknown"].xcom  # nothing was written
