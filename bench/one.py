"""A benchmark worker for one variant: ``python -m bench.one VARIANT``, fed runs on stdin by ``bench/run.py``.

Variants:
  floor        plain ``nbclient.NotebookClient(nb).execute()`` (kernel start + cells + shutdown), no output written
  engine       this project's engine alone (load, parameterize, execute, record, save), no Airflow
  papermill    ``papermill.execute_notebook`` with the same parameters
  operator     this project's ``NotebookOperator`` inside ``dag.test()``
  pm_operator  ``apache-airflow-providers-papermill``'s ``PapermillOperator`` inside ``dag.test()``

``seconds`` is the time from reading the input to the output being complete; for the operators it is the task
instance's own duration as Airflow records it (start_date to end_date). ``rss_kb`` is the peak RSS of this process
during that run (for the operators, the process that ran the task: dag.test runs it in-process), reset before each
run. Kernel processes are not counted.
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


_DAGS = iter(range(1, 1_000_000))


def _dag_test(make_task: Any, dag_id: str) -> dict[str, Any]:
    """Run one task under dag.test(); its duration is the one Airflow records for the task instance."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import DAG

    with DAG(dag_id=f"{dag_id}_{next(_DAGS)}", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        make_task()
    bag = DagBag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    dr = dag.test()
    (ti,) = dr.get_task_instances()
    if str(ti.state) != "success":
        raise RuntimeError(f"{dag.dag_id} ended {ti.state}")
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


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM), so each run reports its own peak (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    """Serve runs of one variant: read ``{"notebook", "output"}`` JSON lines on stdin, answer ``BENCH {...}``.

    One long-lived process per variant, like a worker: imports and Airflow's in-process API are paid once, in
    the warm-up runs, and every measured run pays what a task pays on a running worker.
    """
    variant = sys.argv[1]
    fn = VARIANTS[variant]
    print("READY", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        output = job["output"]
        _reset_peak_rss()
        try:
            out: dict[str, Any] = fn(Path(job["notebook"]), Path(output) if "://" not in output else output)  # type: ignore[arg-type]
            out["rss_kb"] = _peak_rss_kb()
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which fails the benchmark
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print("BENCH " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
