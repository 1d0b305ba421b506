"""What the JupyterLab panel costs: the ``runs`` route with N attempts of one notebook, and ``debug`` of a failed
200-cell notebook, against a real Airflow (api-server, scheduler, dag-processor) and a real Jupyter server from
``.venv-jupyter`` (``make jupyter``). Not in CI.

    .venv/bin/python -m bench.jupyter_panel --attempts 50

Prints the medians of 5 calls of each route (the first, cold, call apart).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import nbformat

from tests.airflow_servers import start_airflow
from tests.helpers import python_notebook
from tests.jupyter.jupyter_servers import api_get, api_post, jupyter_server


def _timed(call: object, n: int = 5) -> tuple[float, float]:
    """(first call, median of the next ``n``) in seconds."""
    times = []
    for _ in range(n + 1):
        started = time.perf_counter()
        resp = call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
        assert resp.status_code == 200, resp.text
    return times[0], statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-jupyter-") as tmp:
        base = Path(tmp)
        root, dags, home, lab = base / "root", base / "dags", base / "airflow", base / "lab"
        for p in (root, dags, home, lab):
            p.mkdir()
        nbformat.write(python_notebook("#parameters\nn = 0", "print(n)"), str(root / "small.ipynb"))
        nbformat.write(python_notebook("#parameters\nfail = True", *[f"x_{i} = {i}" for i in range(198)],
                                       "assert not fail, 'failed on purpose'"), str(root / "big.ipynb"))
        (dags / "bench_dags.py").write_text(
            "import pendulum\nfrom airflow.sdk import DAG\n"
            "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
            "for dag_id, nb in (('bench_small', 'small.ipynb'), ('bench_big', 'big.ipynb')):\n"
            "    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC'),\n"
            "             max_active_runs=64):\n"
            f"        NotebookOperator(task_id='nb', notebook={str(root)!r} + '/' + nb)\n")
        af = start_airflow(home, dags)
        try:
            for dag_id in ("bench_small", "bench_big"):
                af.wait_for(f"{dag_id} parsed", lambda d=dag_id: af.api("GET", f"/api/v2/dags/{d}"), 180)
            # A busy api-server (one worker, tasks starting) can take longer than Airflow.api's 15 s.
            rest = httpx.Client(base_url=af.base, timeout=120, headers={"Authorization": f"Bearer {af.token()}"})

            def trigger(dag_id: str, run_id: str) -> str:
                for _ in range(5):  # SQLite: "database is locked" while the scheduler writes
                    resp = rest.post(f"/api/v2/dags/{dag_id}/dagRuns",
                                     json={"logical_date": None, "dag_run_id": run_id})
                    if resp.status_code < 500:
                        break
                    time.sleep(2)
                assert resp.status_code == 200, f"{resp.status_code} {resp.text}\n{af.tails()}"
                return run_id

            run_ids = [trigger("bench_small", f"bench_{i}") for i in range(args.attempts)]
            big = trigger("bench_big", "bench_big_1")

            def ended(dag_id: str, run_id: str) -> bool:
                resp = rest.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
                return resp.json()["state"] in ("success", "failed")

            af.wait_for(f"{args.attempts} runs end", lambda: all(ended("bench_small", r) for r in run_ids),
                        60 + 20 * args.attempts)
            af.wait_for("the 200-cell run ends", lambda: ended("bench_big", big), 300)
            env = {"AIRFLOW_NOTEBOOK_API_URL": af.base, "AIRFLOW_NOTEBOOK_API_USERNAME": af.username,
                   "AIRFLOW_NOTEBOOK_API_PASSWORD": af.password}
            with jupyter_server(root, lab, env) as server, server.browser() as client:
                listed = api_get(client, "runs", path="small.ipynb", limit=args.attempts).json()["attempts"]
                assert len(listed) == args.attempts, len(listed)
                cold, warm = _timed(lambda: api_get(client, "runs", path="small.ipynb", limit=args.attempts))
                print(f"runs route, {args.attempts} attempts: first {cold:.3f} s, median of 5 {warm:.3f} s")
                attempt = {"dag_id": "bench_big", "run_id": big, "task_id": "nb", "map_index": -1, "try_number": 1,
                           "path": "big.ipynb"}
                cold, warm = _timed(lambda: api_post(client, "debug", attempt))
                print(f"debug route, 200-cell notebook: first {cold:.3f} s, median of 5 {warm:.3f} s")
        finally:
            af.stop()


if __name__ == "__main__":
    main()
