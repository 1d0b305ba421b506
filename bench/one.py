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

import functools
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

    from airflow_notebook_provider.notebook.parameters import inject

    t0 = time.perf_counter()
    nb = nbformat.read(str(notebook), as_version=4)
    inject(nb, PARAMETERS)  # the same cells run as in every other variant
    NotebookClient(nb, kernel_name="python3").execute()
    return {"seconds": time.perf_counter() - t0}


CELL_RESOURCES_SWITCH = "BENCH_CELL_RESOURCES"
"""``off`` in a worker's environment: its engine runs record durations only (``bench.sampling`` compares)."""


def engine(notebook: Path, output: Path) -> dict[str, Any]:
    from airflow_notebook_provider.engine import ExecutionSettings, execute_notebook
    from airflow_notebook_provider.engine.storage import Storage

    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    store = Storage()
    result = execute_notebook(store.read(str(notebook)), input_path=str(notebook), output_path=str(output),
                              save=lambda b: store.write(str(output), b), parameters=PARAMETERS,
                              settings=ExecutionSettings(cell_resources=os.environ.get(CELL_RESOURCES_SWITCH) != "off"),
                              log=logging.getLogger("bench"))
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


@functools.cache
def _timed_operator_class() -> Any:
    """``NotebookOperator`` noting when ``execute()`` starts and when the kernel first answers (its ``run_hooks``),
    to tell how long a task waits for its kernel. ``BENCH_NO_EARLY_KERNEL=1`` turns off the start of the kernel
    while the input is fetched."""
    from airflow_notebook_provider.engine import RunHooks
    from airflow_notebook_provider.operators.notebook import NotebookOperator

    class TimedNotebookOperator(NotebookOperator):
        start_kernel_early = not os.environ.get("BENCH_NO_EARLY_KERNEL")
        marks: dict[str, float] = {}

        def execute(self, context: Any) -> Any:
            self.marks["execute"] = time.perf_counter()
            return super().execute(context)

        def run_hooks(self, context: Any) -> RunHooks:
            return RunHooks(on_kernel_ready=lambda _ready: self.marks.__setitem__("ready", time.perf_counter()))

    return TimedNotebookOperator


def operator(notebook: Path | str, output: Path | str) -> dict[str, Any]:
    timed = _timed_operator_class()
    out = _dag_test(lambda: timed(task_id="nb", notebook=str(notebook), output_notebook=str(output),
                                  conn_id=os.environ.get("BENCH_CONN_ID"), parameters=PARAMETERS, log_output=False),
                    "bench_operator")
    out["kernel_ready_s"] = timed.marks["ready"] - timed.marks["execute"]
    return out


def pm_operator(notebook: Path, output: Path) -> dict[str, Any]:
    from airflow.providers.papermill.operators.papermill import PapermillOperator

    return _dag_test(lambda: PapermillOperator(task_id="nb", input_nb=str(notebook), output_nb=str(output),
                                               parameters=PARAMETERS, kernel_name="python3"), "bench_pm_operator")


async def _kernel_answers(wait_for_ready: bool) -> float:
    from airflow_notebook_provider.engine import LocalKernel

    kernel = LocalKernel("python3", env={}, cwd=None)
    t0 = time.perf_counter()
    await kernel.spawn()
    try:
        if wait_for_ready:
            kc = kernel.kc = kernel.km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
        else:
            await kernel.connect(timeout=60)  # as the engine waits: kernel_info answered and IOPub live
        return time.perf_counter() - t0
    finally:
        await kernel.shutdown(now=True)


def kernel_boot(notebook: Path, output: Path) -> dict[str, Any]:
    """Kernel start-up alone: spawn the python3 kernel until it answers (shell reply and IOPub live)."""
    import asyncio

    return {"seconds": asyncio.run(_kernel_answers(wait_for_ready=False))}


def kernel_wait_for_ready(notebook: Path, output: Path) -> dict[str, Any]:
    """What nbclient (hence the floor and papermill) waits for: jupyter_client's ``wait_for_ready``, which ends with
    0.2 s of quiet on IOPub."""
    import asyncio

    return {"seconds": asyncio.run(_kernel_answers(wait_for_ready=True))}


VARIANTS = {"kernel_boot": kernel_boot, "kernel_wait_for_ready": kernel_wait_for_ready, "floor": floor, "engine": engine,
            "papermill": papermill_variant, "operator": operator, "pm_operator": pm_operator}


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
            notebook = job["notebook"]
            out: dict[str, Any] = fn(*(Path(x) if "://" not in x else x for x in (notebook, output)))
            out["rss_kb"] = _peak_rss_kb()
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which fails the benchmark
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print("BENCH " + json.dumps(out), flush=True)
    # Every run has shut its kernel down. Exit at once: interpreter shutdown with Airflow loaded (its in-process API
    # server's threads) can take tens of seconds, which would only slow the benchmark down, not any run in it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
