"""What a DAG author relies on from the operator itself: a subclass's run callbacks all run, and which failures
Airflow retries (a wrong argument fails without retries; a bug inside the provider is not taken for one)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.engine import RunHooks
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")


class CountingOperator(NotebookOperator):
    """A subclass that watches the run, as the ``run_hooks`` docstring invites (metrics, say)."""

    seen: list[str] = []

    def run_hooks(self, context: Any) -> RunHooks:
        return RunHooks(
            on_cell_end=lambda index, cell, failure: self.seen.append(f"cell {index}"),
            on_write=lambda kind, size: self.seen.append(f"write {kind}"),
            on_finish=lambda nb: self.seen.append(f"finish {len(nb.cells)} cells"),
        )


def test_every_callback_of_run_hooks_runs_on_finish_included(airflow_db, make_notebook, output_base: Path) -> None:
    nb = make_notebook("#parameters\nx = 1", "print(x)")
    CountingOperator.seen = []
    with DAG(dag_id="t_run_hooks", schedule=None, start_date=START) as dag:
        CountingOperator(task_id="nb", notebook=str(nb), parameters={"x": 2}, report_formats=["html"])
    res = run_dag(dag)
    assert res["nb"].state == "success"
    seen = CountingOperator.seen
    assert "write first" in seen and "write final" in seen
    assert any(s.startswith("cell ") for s in seen)
    assert seen.count("finish 3 cells") == 1  # parameters, injected parameters, print
    assert "html" in res["nb"].xcom["reports"]  # the operator's own end-of-run step ran too


def test_a_wrong_argument_that_is_not_templated_fails_when_the_dag_is_parsed(tmp_path: Path) -> None:
    """A typo in ``unknown_parameters`` or ``cell_timeout`` is an import error of the DAG file, naming the argument
    and what it takes, instead of a failed task at 3 a.m."""
    (tmp_path / "typo_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        "with DAG(dag_id='typo', schedule='@daily', start_date=pendulum.datetime(2024, 1, 1, tz='UTC')):\n"
        "    NotebookOperator(task_id='a', notebook='/nb.ipynb', unknown_parameters='sometimes')\n"
        "    NotebookOperator(task_id='b', notebook='/nb.ipynb', cell_timeout='10m')\n"
    )
    # Parsed in a process of its own, as the dag-processor does (parsing configures Airflow's logging in-process).
    parse = ("import json, sys\nfrom tests.helpers import _dagbag\nbag = _dagbag()(dag_folder=sys.argv[1])\n"
             "print(json.dumps({'dags': sorted(bag.dags), 'errors': list(bag.import_errors.values())}))")
    proc = subprocess.run([sys.executable, "-c", parse, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    bag = json.loads(proc.stdout.strip().splitlines()[-1])
    errors = "\n".join(bag["errors"])
    assert "typo" not in bag["dags"]
    assert "`unknown_parameters` must be 'warn', 'fail' or 'ignore', got 'sometimes'" in errors


def test_a_bug_inside_the_provider_is_retried_not_taken_for_a_wrong_argument(
    airflow_db, make_notebook, monkeypatch
) -> None:
    """A ValueError or TypeError raised while preparing the run is not taken for a wrong argument: it is retried."""
    nb = make_notebook("print(1)")

    def broken(op: NotebookOperator, kernels: Any) -> Any:
        raise TypeError("an internal bug")

    # A fault that cannot be caused for real: the settings the operator builds from its arguments.
    monkeypatch.setattr("airflow_notebook_provider.operators.notebook.execution_settings", broken)
    with DAG(dag_id="t_internal_bug", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), retries=1, retry_delay=dt.timedelta(0))
    res = run_dag(dag)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 2)  # tried again: a bug may be passing
