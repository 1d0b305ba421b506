"""One benchmark run in a fresh process: ``python -m bench.one VARIANT NOTEBOOK OUTPUT``; prints one JSON line.

Variants:
  floor        plain ``nbclient.NotebookClient(nb).execute()`` (kernel start + cells + shutdown), no output written
  engine       this project's engine alone (load, parameterize, execute, record, save), no Airflow
  papermill    ``papermill.execute_notebook`` with the same parameters
  operator     this project's ``NotebookOperator`` inside ``dag.test()``
  pm_operator  ``apache-airflow-providers-papermill``'s ``PapermillOperator`` inside ``dag.test()``

``seconds`` is the time from reading the input to the output being complete; for the operators it is the task
instance's own duration as Airflow records it (start_date to end_date). ``rss_kb`` is the peak RSS of this process
(for the operators, the process that ran the task: dag.test runs it in-process). Kernel processes are not counted.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.notebooks import PARAMETERS


def floor(notebook: Path, output: Path) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    from airflow_notebook_provider.engine.parameters import inject

    t0 = time.perf_counter()
    nb = nbformat.read(str(notebook), as_version=4)
    inject(nb, PARAMETERS)  # the same cells run as in every other variant
    NotebookClient(nb, kernel_name="python3").execute()
    return {"seconds": time.perf_counter() - t0}


def engine(notebook: Path, output: Path) -> dict[str, Any]:
    from airflow_notebook_provider.engine import NotebookRun, load, prepare_parameters
    from airflow_notebook_provider.engine.storage import read_bytes, write_bytes

    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    data = read_bytes(str(notebook))
    run = NotebookRun(load(data, str(notebook)), input_path=str(notebook), output_path=str(output),
                      save=lambda b: write_bytes(str(output), b), parameters=prepare_parameters(PARAMETERS),
                      log=logging.getLogger("bench"))
    result = run.run()
    return {"seconds": time.perf_counter() - t0, "writes_reported": result.writes}


def papermill_variant(notebook: Path, output: Path) -> dict[str, Any]:
    import papermill

    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(output), parameters=PARAMETERS, kernel_name="python3",
                               progress_bar=False)
    return {"seconds": time.perf_counter() - t0}


def _dag_test(make_task: Any, dag_id: str) -> dict[str, Any]:
    import pendulum
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    def test(dag_id: str, make: Any) -> Any:
        with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            make()
        bag = DagBag(dag_folder=os.devnull)
        bag.bag_dag(dag)
        sync_bag_to_db(bag, "dags-folder", None)
        return dag.test()

    # dag.test() builds Airflow's in-process API on its first task, inside that task's recorded duration:
    # warm it up with a no-op task so that the measured task pays what a task pays on a running worker.
    test(f"{dag_id}_warmup", lambda: PythonOperator(task_id="noop", python_callable=lambda: None))
    dr = test(dag_id, make_task)
    (ti,) = dr.get_task_instances()
    if str(ti.state) != "success":
        raise RuntimeError(f"{dag_id} ended {ti.state}")
    return {"seconds": (ti.end_date - ti.start_date).total_seconds()}


def operator(notebook: Path, output: Path) -> dict[str, Any]:
    from airflow_notebook_provider.operators.notebook import NotebookOperator

    return _dag_test(lambda: NotebookOperator(task_id="nb", notebook=str(notebook), output_notebook=str(output),
                                              parameters=PARAMETERS, log_output=False), "bench_operator")


def pm_operator(notebook: Path, output: Path) -> dict[str, Any]:
    from airflow.providers.papermill.operators.papermill import PapermillOperator

    return _dag_test(lambda: PapermillOperator(task_id="nb", input_nb=str(notebook), output_nb=str(output),
                                               parameters=PARAMETERS, kernel_name="python3"), "bench_pm_operator")


VARIANTS = {"floor": floor, "engine": engine, "papermill": papermill_variant, "operator": operator,
            "pm_operator": pm_operator}


def main() -> None:
    variant, notebook, output = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    out: dict[str, Any] = VARIANTS[variant](notebook, Path(output) if "://" not in output else output)  # type: ignore[arg-type]
    out["rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("BENCH " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
