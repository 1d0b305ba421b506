"""Notebook tasks under CeleryExecutor: two workers (own host name, HOME, /tmp), PostgreSQL, Redis, outputs in S3
(moto's server), the viewer in the api-server, as a user deploys it. What a user checks after each event:

- the example DAGs run green, each worker ran some, and every attempt's notebook is in S3;
- the viewer, through the real login, renders a successful and a failed attempt a worker wrote;
- a local output folder under CeleryExecutor: the task log warns, the viewer explains instead of failing;
- a worker shut down with SIGTERM mid-notebook: the notebook is saved with a banner saying how it was stopped;
- a worker SIGKILLed mid-notebook: its orphaned task process stops its run (banner, kernel killed), Airflow fails
  the attempt and retries it on the other worker; both notebooks are in S3 and listed by the viewer.

No kernel is left on either host after any of it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.distributed.services import Cluster, wait_dags_parsed
from tests.helpers import processes_with_env

pytestmark = pytest.mark.timeout(420)

WORKERS = ("worker-a", "worker-b")
EXAMPLES = ["example_notebook_daily_report", "example_notebook_results", "example_notebook_retry",
            "example_notebook_s3", "example_notebook_trigger_form", "dist_spread"]
OURS = ["dist_killed", "dist_terminated", "dist_local"]
RUN = "dist1"


def _wait(what: str, probe: Any, timeout: float, cluster: Cluster) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{cluster.tails()}")


def _kernels() -> dict[str, list[str]]:
    return {host: processes_with_env("ANP_HOSTNAME", host) for host in WORKERS}


def _no_kernels(cluster: Cluster, timeout: float = 20) -> None:
    _wait("no kernel left on either worker", lambda: not any(_kernels().values()) or None, timeout, cluster)


def _view(cluster: Cluster, route: str, dag_id: str, run_id: str, task_id: str, **more: Any) -> tuple[int, str]:
    query = urlencode({"run_id": run_id, "task_id": task_id, **more})
    status, body = cluster.request("GET", f"/notebook/dags/{dag_id}/{route}?{query}")
    return status, body.decode(errors="replace")


def _task_log(cluster: Cluster, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    found = list(cluster.logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"))
    return found[0].read_text(errors="replace") if found else ""


def _marker(path: Path, cluster: Cluster, timeout: float = 120) -> str:
    """The worker a waiting notebook runs on (it writes ``<host> <pid>`` to ``path`` once it waits)."""
    text = _wait(f"{path.name} notebook is waiting", lambda: path.exists() and path.read_text(), timeout, cluster)
    return str(text).split()[0]


@pytest.fixture(scope="module")
def examples(cluster: Cluster) -> dict[str, str]:
    """Trigger every example DAG (and four parallel notebooks) once; their end states."""
    wait_dags_parsed(cluster, EXAMPLES + OURS)
    for dag_id in EXAMPLES:
        cluster.trigger(dag_id, RUN)
    return {dag_id: cluster.wait_run(dag_id, RUN, 240) for dag_id in EXAMPLES}


def test_example_dags_run_green_on_both_workers(cluster: Cluster, examples: dict[str, str]) -> None:
    assert examples == dict.fromkeys(EXAMPLES, "success"), cluster.tails()
    hosts: dict[str, set[str]] = {}
    for dag_id in EXAMPLES:
        keys = cluster.s3_keys(f"runs/{dag_id}/{RUN}/")
        for ti in cluster.task_instances(dag_id, RUN):
            assert ti["state"] == "success", ti
            assert ti["hostname"] in WORKERS, ti
            if dag_id == "example_notebook_s3" or "Notebook" not in (ti["operator"] or ""):
                continue  # its own output location (s3://analytics/...), or not a notebook task
            where = ti["task_id"] + (f"/map-{ti['map_index']}" if ti["map_index"] >= 0 else "")
            key = f"runs/{dag_id}/{RUN}/{where}/attempt-{ti['try_number']}.ipynb"
            assert key in keys, f"{key} not in S3: {keys}"
            nb = cluster.s3_json(key)
            assert nb["metadata"]["airflow"]["task_id"] == ti["task_id"]
            if cluster.private_tmp:  # each worker has a host name of its own: the notebook says which ran it
                assert nb["metadata"]["airflow_notebook"]["hostname"] == ti["hostname"]
            hosts.setdefault(ti["hostname"], set()).add(key)
    assert set(hosts) == set(WORKERS), f"outputs per worker: {hosts}"
    # Each worker forked its Python kernels from its kernel launcher (README, "Deploying"), and the task log says so.
    first = next(ti for ti in cluster.task_instances("example_notebook_daily_report", RUN)
                 if "Notebook" in (ti["operator"] or ""))
    task_log = _task_log(cluster, "example_notebook_daily_report", RUN, first["task_id"], first["try_number"])
    kernel_lines = [line[:300] for line in task_log.splitlines() if "Kernel" in line]
    for worker in cluster.workers.values():
        text = worker.log.read_text(errors="replace")
        said = [line for line in text.splitlines() if "launcher" in line.lower() or "preload" in line.lower()]
        assert "forked kernel" in text, f"worker {worker.name} forked no kernel: {said[-20:]}; task log: {kernel_lines}"
    assert "(forked by the worker's kernel launcher)" in task_log, kernel_lines
    s3_example = cluster.s3().list_objects_v2(Bucket="analytics", Prefix="runs/example_notebook_s3/").get("Contents", [])
    assert s3_example, "example_notebook_s3 wrote its output to s3://analytics/runs/..."
    _no_kernels(cluster)


def test_viewer_renders_attempts_a_worker_wrote(cluster: Cluster, examples: dict[str, str]) -> None:
    status, page = _view(cluster, "view", "example_notebook_daily_report", RUN, "daily_report")
    assert status == 200, page[:2000]
    assert f"notebooks/runs/example_notebook_daily_report/{RUN}/daily_report/attempt-1.ipynb" in page
    assert "Failed at cell" not in page

    status, page = _view(cluster, "view", "example_notebook_retry", RUN, "flaky", try_number=1)
    assert status == 200, page[:2000]
    assert "Failed at cell" in page and "upstream data not ready on attempt 1" in page
    status, page = _view(cluster, "view", "example_notebook_retry", RUN, "flaky", try_number=2)
    assert status == 200 and "Failed at cell" not in page and "attempt 2" in page

    status, body = cluster.request("GET", "/notebook/dags/example_notebook_daily_report/view?" + urlencode(
        {"run_id": RUN, "task_id": "daily_report"}), token="not-a-token")
    assert status in (401, 403), "the viewer must not answer without a valid login"


def test_local_output_under_celery_warns_and_viewer_explains(cluster: Cluster, examples: dict[str, str]) -> None:
    cluster.trigger("dist_local", "local1")
    assert cluster.wait_run("dist_local", "local1", 120) == "success", cluster.tails()
    (ti,) = cluster.task_instances("dist_local", "local1")
    path = "/tmp/notebook-outputs/local1/local.ipynb"
    log = _task_log(cluster, "dist_local", "local1", "local")
    assert "may not see" in log and "[notebook] output_base" in log and path in log, log[-3000:]
    assert log.index("may not see") < log.index("running on"), "the warning comes before the cells run"
    if not cluster.private_tmp:
        pytest.skip("workers share this host's /tmp here (no unshare): the api-server can read the file")
    assert (cluster.workers[ti["hostname"]].tmp / "notebook-outputs/local1/local.ipynb").exists()
    status, page = _view(cluster, "view", "dist_local", "local1", "local")
    assert status < 500, f"the viewer failed on a notebook it cannot read: {status}\n{page[:3000]}"
    assert path in page, page[:3000]
    assert ti["hostname"] in page and "[notebook] output_base" in page, page[:3000]  # the worker host and the fix


def test_worker_sigterm_saves_notebook_with_banner(cluster: Cluster, examples: dict[str, str],
                                                   staging: Path) -> None:
    cluster.trigger("dist_terminated", "term1")
    host = _marker(staging / "work" / "terminated", cluster)
    cluster.kill_worker(host, signal.SIGTERM, timeout=90)  # warm shutdown: the supervisor forwards SIGTERM
    try:
        assert cluster.wait_run("dist_terminated", "term1", 90) == "failed", cluster.tails()
        nb = cluster.s3_json("runs/dist_terminated/term1/terminated/attempt-1.ipynb")
        banner = "".join("".join(c["source"]) for c in nb["cells"]
                         if "papermill-error-cell-tag" in c.get("metadata", {}).get("tags", []))
        assert "The run was stopped" in banner and "SIGTERM" in banner, banner
        waiting = [c for c in nb["cells"] if c.get("cell_type") == "code" and "time.sleep(300)" in "".join(c["source"])]
        assert waiting[0]["metadata"]["papermill"]["status"] == "failed"
        _no_kernels(cluster)
    finally:
        cluster.start_worker(host)


def test_worker_sigkill_orphan_stops_and_task_retries_on_other_worker(cluster: Cluster, examples: dict[str, str],
                                                                      staging: Path) -> None:
    cluster.trigger("dist_killed", "kill1")
    host = _marker(staging / "work" / "killed", cluster)
    other = next(w for w in WORKERS if w != host)
    assert _kernels()[host], "the notebook's kernel runs on its worker"
    cluster.kill_worker(host, signal.SIGKILL)  # the whole worker group: the task process survives as an orphan
    key = "runs/dist_killed/kill1/killed/attempt-1.ipynb"

    def stopped() -> str | None:
        text = str(cluster.s3().get_object(Bucket="notebooks", Key=key)["Body"].read().decode())
        return text if "task supervisor is gone" in text else None

    first = _wait("the orphan saves its notebook with a banner", stopped, 30, cluster)
    assert "The run was stopped" in first
    _wait(f"the orphan's kernel on {host} is gone", lambda: not _kernels()[host] or None, 20, cluster)
    _wait(f"no process of the dead worker {host} is left",
          lambda: not processes_with_env("ANP_HOSTNAME", host, needle="") or None, 30, cluster)

    assert cluster.wait_run("dist_killed", "kill1", 180) == "success", cluster.tails()
    (ti,) = cluster.task_instances("dist_killed", "kill1")
    assert ti["try_number"] == 2 and ti["hostname"] == other, ti
    second = cluster.s3_json("runs/dist_killed/kill1/killed/attempt-2.ipynb")
    assert second["metadata"]["airflow"]["try_number"] == 2

    status, body = _view(cluster, "attempts", "dist_killed", "kill1", "killed")
    assert status == 200, body
    attempts = json.loads(body)["attempts"]
    assert [(a["try_number"], a["state"]) for a in attempts] == [(1, "failed"), (2, "success")], attempts
    status, page = _view(cluster, "view", "dist_killed", "kill1", "killed", try_number=1)
    assert status == 200 and "attempt 1" in page.lower(), page[:3000]
    # The notebook itself is the page's frame (``render``): the banner of the stopped run, the retry's output.
    status, page = _view(cluster, "render", "dist_killed", "kill1", "killed", try_number=1)
    assert status == 200 and "task supervisor is gone" in page, page[:3000]
    status, page = _view(cluster, "render", "dist_killed", "kill1", "killed", try_number=2)
    assert status == 200 and "finished on try 2" in page
    _no_kernels(cluster)
