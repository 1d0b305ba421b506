"""CPU time of one task's ``execute`` in a fresh process: what the operator itself costs, apart from Airflow.

``python -m bench.task_cpu notebook|papermill [--runs N]`` starts moto's S3 server on 127.0.0.1, runs one task with
``dag.test()`` on a throw-away SQLite metadata DB (a 3-cell notebook, output to S3), and prints the CPU seconds
spent inside ``execute``: the task process's own (``self``) and its reaped children's (``kernel``: the kernel's
start, cells and shutdown). Each run is a fresh process, as a task process under Celery is. Figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _children_cpu(pid: int) -> float:
    """CPU seconds of the children process ``pid`` has reaped (the kernels a launcher forked)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def one(kind: str, worker: bool = False) -> dict[str, Any]:
    """Runs in the child process: one task of ``kind``, its execute timed. ``worker``: set up as a Celery worker
    with ``airflow_notebook_provider.celery.worker`` is (engine preloaded, kernels forked by a launcher)."""
    home = Path(tempfile.mkdtemp(prefix="anp-task-cpu-"))
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    sys.path.insert(0, str(REPO))
    from tests.helpers import run_dag, s3_client, start_moto

    moto = start_moto(home)
    try:
        s3_client(moto.endpoint).create_bucket(Bucket="out")
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint  # papermill's boto3
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({"conn_type": "aws",
                                                             "extra": {"endpoint_url": moto.endpoint}})
        os.environ["AIRFLOW__NOTEBOOK__OUTPUT_BASE"] = "s3://aws_default@out/nb"
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.utils import db

        db.initdb()
        DagBundlesManager().sync_bundles_to_db()
        launcher_pid = None
        if worker:
            from airflow_notebook_provider.celery import worker as worker_setup

            worker_setup.preload()
            worker_setup.start_launcher()
            launcher_pid = worker_setup._launcher.pid
        nb = home / "nb.ipynb"
        nb.write_text(json.dumps({
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": meta,
                       "outputs": [], "source": src} for i, (src, meta) in enumerate([
                           ("i = 0", {"tags": ["parameters"]}), ("x = sum(range(1000))", {}), ("print(x)", {})])],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}))
        import pendulum
        from airflow.sdk import DAG

        with DAG(dag_id="task_cpu", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            if kind == "notebook":
                from airflow_notebook_provider.operators.notebook import NotebookOperator

                task = NotebookOperator(task_id="t", notebook=str(nb), parameters={"i": 1}, log_output=False)
            else:
                from airflow.providers.papermill.operators.papermill import PapermillOperator

                task = PapermillOperator(task_id="t", input_nb=str(nb), kernel_name="python3", parameters={"i": 1},
                                         output_nb="s3://out/pm/t-{{ ti.try_number }}.ipynb")
        spent: dict[str, float] = {}
        execute = type(task).execute

        def timed(self: Any, context: Any) -> Any:
            own, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
            try:
                return execute(self, context)
            finally:
                spent["self"] = _cpu(resource.RUSAGE_SELF) - own
                spent["kernel"] = _cpu(resource.RUSAGE_CHILDREN) - children
                if launcher_pid is not None:
                    spent["kernel_forked"] = _kernel_cpu_after(launcher_pid, forked_before)

        forked_before = _children_cpu(launcher_pid) if launcher_pid else 0.0
        type(task).execute = timed  # type: ignore[method-assign]
        state = run_dag(dag)["t"].state
        return {"kind": kind, "state": state, **{k: round(v, 3) for k, v in spent.items()}}
    finally:
        moto.stop()


def _kernel_cpu_after(launcher_pid: int, before: float) -> float:
    """The forked kernel's CPU, once the launcher has reaped it (it exits as ``execute`` returns)."""
    import time

    deadline = time.monotonic() + 10
    while (spent := _children_cpu(launcher_pid) - before) <= 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("notebook", "papermill"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", action="store_true",
                        help="set up as a Celery worker with airflow_notebook_provider.celery.worker (preload, launcher)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one(args.kind, args.worker)))
        return 0
    for _ in range(args.runs):
        proc = subprocess.run([sys.executable, "-m", "bench.task_cpu", args.kind, "--child",
                               *(["--worker"] if args.worker else [])], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        lines = proc.stdout.strip().splitlines()
        print(lines[-1] if proc.returncode == 0 and lines else f"failed: {proc.stderr[-2000:]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
