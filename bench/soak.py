"""Soak: many notebook tasks through two Celery workers, against no-op tasks and Airflow's PapermillOperator.

``make soak`` (= ``python -m bench.soak --tasks 1000``) starts the distributed cluster of ``tests/distributed``
(PostgreSQL, Redis, moto's S3, api-server, scheduler, dag-processor, two Celery workers with their own host name,
HOME and /tmp), then runs three phases one after the other, each ``--tasks`` task instances in runs of ``--per-run``:

- ``notebook``: ``NotebookOperator`` mapped over the run's items plus a few plain (unmapped) tasks; one item in
  ``--fail-every`` fails on its first try on purpose and succeeds on its retry; outputs to S3 (``output_base``);
- ``noop``: a ``PythonOperator`` doing nothing, same shape: the floor of Airflow + Celery per task;
- ``papermill``: ``apache-airflow-providers-papermill``'s ``PapermillOperator`` on the same notebook, output to S3.

Figures per phase, from the metadata DB, moto's access log and /proc: tasks/min, p50/p95/max of queued-to-done and
of run time, outputs written vs task attempts, kernels and temp files left on the workers, worker RSS at start
and end, S3 PUTs per task. Printed, and written to ``bench/results/soak-<tasks>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.distributed.services import (  # noqa: E402
    Cluster,
    cpu_seconds,
    rss_kb,
    start_cluster,
    wait_dags_parsed,
)
from tests.helpers import processes_with_env  # noqa: E402

PHASES = ("notebook", "noop", "papermill")

DAGS = '''
from __future__ import annotations

import datetime as dt

import pendulum
from airflow.providers.papermill.operators.papermill import PapermillOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

NB = {nb!r}
MAPPED, PLAIN, FAIL_EVERY = {mapped}, {plain}, {fail_every}
START = pendulum.datetime(2024, 1, 1, tz="UTC")
ITEMS = [{{"i": i, "fail_on_try": 1 if i % FAIL_EVERY == FAIL_EVERY - 1 else 0, "try_number": "{{{{ ti.try_number }}}}"}}
         for i in range(MAPPED)]
RETRY = dict(retries=1, retry_delay=dt.timedelta(seconds=0))


def noop(fail_on_try=0, try_number=1, **_):
    if int(fail_on_try) == int(try_number):  # the same failures on purpose as the notebooks'
        raise RuntimeError(f"failing on purpose on try {{try_number}}")


with DAG("soak_notebook", schedule=None, start_date=START, max_active_runs=64, max_active_tasks=64) as d1:
    NotebookOperator.partial(task_id="mapped", notebook=NB, log_output=False, **RETRY).expand(
        parameters=ITEMS)
    for j in range(PLAIN):
        NotebookOperator(task_id=f"plain_{{j}}", notebook=NB, log_output=False, parameters={{"i": j}}, **RETRY)

with DAG("soak_noop", schedule=None, start_date=START, max_active_runs=64, max_active_tasks=64) as d2:
    PythonOperator.partial(task_id="mapped", python_callable=noop, **RETRY).expand(op_kwargs=ITEMS)
    for j in range(PLAIN):
        PythonOperator(task_id=f"plain_{{j}}", python_callable=noop, **RETRY)

with DAG("soak_papermill", schedule=None, start_date=START, max_active_runs=64, max_active_tasks=64) as d3:
    PapermillOperator.partial(
        task_id="mapped", input_nb=NB, kernel_name="python3",
        output_nb="s3://notebooks/papermill/{{{{ run_id }}}}/mapped-{{{{ ti.map_index }}}}-{{{{ ti.try_number }}}}.ipynb",
        **RETRY,
    ).expand(parameters=ITEMS)
    for j in range(PLAIN):
        PapermillOperator(task_id=f"plain_{{j}}", input_nb=NB, kernel_name="python3", parameters={{"i": j}},
                          output_nb=f"s3://notebooks/papermill/{{{{{{{{ run_id }}}}}}}}/plain_{{j}}-{{{{{{{{ ti.try_number }}}}}}}}.ipynb",
                          **RETRY)
'''


def notebook() -> nbformat.NotebookNode:
    """A small report: parameters, a computation, a printed result, and a failure on purpose on a chosen try."""
    params = nbformat.v4.new_code_cell("i = 0\nfail_on_try = 0\ntry_number = 1")
    params.metadata["tags"] = ["parameters"]
    cells = [
        params,
        nbformat.v4.new_code_cell("total = sum(k * k for k in range(10_000 + int(i)))"),
        nbformat.v4.new_code_cell("print(f'item {i}: {total}')"),
        nbformat.v4.new_code_cell(
            "if int(fail_on_try) == int(try_number):\n    raise RuntimeError(f'failing on purpose on try {try_number}')"),
    ]
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                          "display_name": "Python 3",
                                                                          "language": "python"}})


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def query(cluster: Cluster, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=cluster.postgres.port, user="airflow", dbname="airflow")
    try:
        with con.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        con.close()


def temp_files(cluster: Cluster) -> set[str]:
    """Files and folders in the workers' /tmp (each worker's private one)."""
    return {os.path.join(root, n) for w in cluster.workers.values() for root, dirs, files in os.walk(w.tmp)
            for n in dirs + files}


def puts(cluster: Cluster) -> int:
    return sum(1 for r in cluster.moto.requests() if r["method"] == "PUT")


def components(cluster: Cluster) -> dict[str, int]:
    """Each component's root process: Airflow's (api-server, scheduler, dag-processor), the Celery workers (their
    pool, task processes and kernels), and the services."""
    roots = {name: proc.pid for name, proc in cluster.procs.items()}
    roots.update({f"worker {w.name}": w.proc.pid for w in cluster.workers.values() if w.proc})
    roots.update({"postgresql": cluster.postgres.proc.pid, "redis": cluster.redis.proc.pid,
                  "moto (S3)": cluster.moto.proc.pid})
    return roots


def cpu_by_component(cluster: Cluster) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in components(cluster).items()}


def run_phase(cluster: Cluster, phase: str, runs: int, timeout: float) -> dict[str, Any]:
    dag_id = f"soak_{phase}"
    cpu_start = cpu_by_component(cluster)
    rss_start = {w.name: rss_kb(w.proc.pid) for w in cluster.workers.values() if w.proc}
    tmp_start, puts_start = temp_files(cluster), puts(cluster)
    t0 = time.monotonic()
    run_ids = [f"{phase}-{k:03d}" for k in range(runs)]
    for run_id in run_ids:
        cluster.trigger(dag_id, run_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        left = query(cluster, "SELECT count(*) FROM dag_run WHERE dag_id = %s AND state NOT IN ('success', 'failed')",
                     dag_id)[0][0]
        if left == 0:
            break
        time.sleep(2)
    wall = time.monotonic() - t0
    rows = query(cluster, """
        SELECT state, try_number, hostname, EXTRACT(EPOCH FROM end_date - queued_dttm),
               EXTRACT(EPOCH FROM end_date - start_date), queued_dttm, end_date
        FROM task_instance WHERE dag_id = %s""", dag_id)
    first_tries = query(cluster, "SELECT count(*) FROM task_instance_history WHERE dag_id = %s", dag_id)[0][0]
    hosts = [w.name for w in cluster.workers.values()]
    settle = time.monotonic() + 30  # the last tasks' kernels may still be shutting down
    while True:
        kernels = sum(len(processes_with_env("ANP_HOSTNAME", h)) for h in hosts)
        if kernels == 0 or time.monotonic() > settle:
            break
        time.sleep(1)
    cpu_end = cpu_by_component(cluster)
    done = [r for r in rows if r[0] == "success"]
    first_queued = min(r[5] for r in rows if r[5] is not None)
    last_end = max(r[6] for r in rows if r[6] is not None)
    span = (last_end - first_queued).total_seconds()
    if phase == "notebook":
        outputs = len([k for k in cluster.s3_keys("runs/soak_notebook/") if k.endswith(".ipynb")])
    elif phase == "papermill":
        outputs = len([k for k in cluster.s3_keys("papermill/") if k.endswith(".ipynb")])
    else:
        outputs = 0
    result = {
        "phase": phase,
        "tasks": len(rows),
        "succeeded": len(done),
        "failed": len(rows) - len(done),
        "retried": sum(1 for r in rows if r[1] > 1),
        "attempts": len(rows) + first_tries,
        "by_host": {h: sum(1 for r in rows if r[2] == h) for h in hosts},
        "wall_s": round(wall, 1),
        "span_s": round(span, 1),
        "tasks_per_min": round(len(rows) / span * 60, 1) if span else None,
        "queued_to_done_s": {k: round(pct([float(r[3]) for r in done], q), 2) for k, q in
                             (("p50", 0.5), ("p95", 0.95), ("max", 1.0))},
        "run_time_s": {k: round(pct([float(r[4]) for r in done], q), 2) for k, q in
                       (("p50", 0.5), ("p95", 0.95), ("max", 1.0))},
        "mean_run_time_s": round(statistics.fmean(float(r[4]) for r in done), 3) if done else None,
        "outputs_written": outputs,
        "kernels_left": kernels,
        "temp_files_left": len(left := sorted(temp_files(cluster) - tmp_start)),
        "temp_files_left_sample": left[:5],
        "worker_pss_mb_start": {k: round(v / 1024, 1) for k, v in rss_start.items()},
        "worker_pss_mb_end": {w.name: round(rss_kb(w.proc.pid) / 1024, 1) for w in cluster.workers.values() if w.proc},
        "s3_puts": puts(cluster) - puts_start,
    }
    result["s3_puts_per_task"] = round(result["s3_puts"] / max(1, len(rows)), 2)
    # Where the machine's time went: CPU seconds per task instance, by component (workers include their task
    # processes and kernels).
    per_task = {name: (cpu_end.get(name, 0.0) - cpu_start.get(name, 0.0)) / max(1, len(rows)) for name in cpu_end}
    result["cpu_s_per_task"] = {name: round(v, 3) for name, v in per_task.items()}
    result["cpu_s_per_task_total"] = round(sum(per_task.values()), 3)
    result["slot_after_task_s"] = slot_after_task(cluster, f"soak_{phase}")
    return result


def slot_after_task(cluster: Cluster, dag_id: str) -> dict[str, Any]:
    """How long each task's Celery slot stayed busy after the task's last log line (the supervisor noticing that
    the task process exited): its p50 and mean, and how many took 4 s or more."""
    started: dict[str, str] = {}
    finished: dict[str, datetime.datetime] = {}
    for worker in cluster.workers.values():
        text = worker.log.read_text(errors="replace")
        for m in re.finditer(r"Executing workload in Celery: .*?log_path='([^']+)' ti=TaskInstanceDTO\(id=UUID\('([0-9a-f-]+)'",
                             text):
            started[m.group(2)] = m.group(1)
        for m in re.finditer(r"^(\S+) \[info\s*\] Workload finished .*?workload_id=([0-9a-f-]+)", text, re.M):
            finished[m.group(2)] = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    gaps = []
    for ti_id, log_path in started.items():
        if not log_path.startswith(f"dag_id={dag_id}/") or ti_id not in finished:
            continue
        try:
            last = [json.loads(line) for line in (cluster.logs / log_path).read_text().splitlines()
                    if line.startswith("{")][-1]["timestamp"]
        except (OSError, IndexError, KeyError, ValueError):
            continue
        gaps.append((finished[ti_id] - datetime.datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds())
    if not gaps:
        return {}
    return {"p50": round(pct(gaps, 0.5), 3), "mean": round(statistics.fmean(gaps), 3),
            "at_least_4s": sum(1 for g in gaps if g >= 4), "of": len(gaps)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="task instances per phase")
    parser.add_argument("--per-run", type=int, default=50, help="task instances per DAG run (mapped + plain)")
    parser.add_argument("--plain", type=int, default=5, help="unmapped tasks per DAG run")
    parser.add_argument("--fail-every", type=int, default=25, help="one mapped item in N fails its first try")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency (two workers)")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per phase at most")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for every component, e.g. AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1")
    args = parser.parse_args(argv)
    runs = max(1, args.tasks // args.per_run)
    staging = Path(tempfile.mkdtemp(prefix="anp-soak-", dir="/var/tmp"))
    (staging / "dags").mkdir()
    # The workers import the provider from a copy taken now: the checkout may change while the soak runs.
    shutil.copytree(REPO / "airflow_notebook_provider", staging / "src" / "airflow_notebook_provider",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # ... ahead of the checkout's editable install, whose import hook would otherwise win over PYTHONPATH.
    (staging / "src" / "sitecustomize.py").write_text(
        "import sys\nsys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in str(f)]\n")
    nbformat.write(notebook(), str(staging / "soak.ipynb"))
    (staging / "dags" / "soak_dags.py").write_text(DAGS.format(
        nb=str(staging / "soak.ipynb"), mapped=args.per_run - args.plain, plain=args.plain,
        fail_every=args.fail_every))
    cluster = None
    results: dict[str, Any] = {"tasks_per_phase": runs * args.per_run, "runs": runs, "per_run": args.per_run,
                               "concurrency": f"2 workers x {args.concurrency}", "cpus": os.cpu_count(),
                               "env": args.env}
    try:
        t0 = time.monotonic()
        cluster = start_cluster(staging / "dags", concurrency=args.concurrency, boto_endpoint=True,  # papermill's S3
                                extra_env={"PYTHONPATH": f"{staging / 'src'}{os.pathsep}{REPO}",
                                           "AIRFLOW__NOTEBOOK__CHECKPOINT_INTERVAL": "30",
                                           "AIRFLOW__CORE__PARALLELISM": "32",
                                           **dict(e.split("=", 1) for e in args.env)})
        print(f"cluster up in {time.monotonic() - t0:.0f} s at {cluster.base}", flush=True)
        wait_dags_parsed(cluster, [f"soak_{p}" for p in PHASES], timeout=180)
        for phase in args.phases.split(","):
            res = run_phase(cluster, phase, runs, args.timeout)
            results[phase] = res
            print(json.dumps(res), flush=True)
        base = results.get("notebook")
        for other in ("noop", "papermill"):
            if base and other in results:
                o = results[other]
                results[f"notebook_vs_{other}"] = {
                    "tasks_per_min": round(base["tasks_per_min"] / o["tasks_per_min"], 2),
                    "run_time_p50": round(base["run_time_s"]["p50"] / max(o["run_time_s"]["p50"], 1e-9), 2),
                    "queued_to_done_p50": round(base["queued_to_done_s"]["p50"] / max(o["queued_to_done_s"]["p50"],
                                                                                      1e-9), 2),
                }
    finally:
        if cluster is not None:
            cluster.stop()
            if os.environ.get("SOAK_KEEP"):  # the logs, for a closer look: SOAK_KEEP=1 python -m bench.soak ...
                print(f"kept {cluster.base}")
            else:
                shutil.rmtree(cluster.base, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    out = REPO / "bench" / "results" / f"soak-{results['tasks_per_phase']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # bench/results/ is not in a fresh clone
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
