"""Old code against new, side by side: ``python -m bench.ab OLD_CHECKOUT [--variant engine] [--runs 15]``.

Two long-lived ``bench.one`` workers of one variant, one importing this checkout's package and one another
checkout's (``git worktree add /tmp/old <commit>``), fed the same notebooks alternately (A B, B A, ...), so that a
drift of the machine falls on both alike. Used to tell a change of the code from a change of the machine between
two full runs of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.notebooks import build
from bench.run import REPO, init_db


def _worker(repo: Path, variant: str, home: Path, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(repo),
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags")}
    proc = subprocess.Popen([sys.executable, "-m", "bench.one", variant], cwd=repo, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"), start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY"):
            return proc
    raise RuntimeError(f"worker for {repo} did not start: see {log}")


def _run(proc: subprocess.Popen[str], notebook: Path, output: Path) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"notebook": str(notebook), "output": str(output)}) + "\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if line.startswith("BENCH "):
            out: dict[str, Any] = json.loads(line[len("BENCH "):])
            if "error" in out:
                raise RuntimeError(out["error"])
            return out
    raise RuntimeError("worker exited")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="another checkout of this project (the code before a change)")
    ap.add_argument("--variant", default="engine", choices=["engine", "operator"])
    ap.add_argument("--runs", type=int, default=15, help="alternated pairs per notebook, after one warm-up each")
    ap.add_argument("--notebooks", default="small3,trivial200,output20mb")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nb-ab-"))
    workers: dict[str, subprocess.Popen[str]] = {}
    try:
        books = build(tmp / "notebooks", 1.0)
        db = init_db(tmp)
        for tag, repo in (("old", args.old.resolve()), ("new", REPO)):
            home = tmp / f"home-{tag}"
            home.mkdir()
            shutil.copy(db, home / "airflow.db")
            workers[tag] = _worker(repo, args.variant, home, tmp / f"{tag}.log")
        for name in args.notebooks.split(","):
            alternate(workers, books[name], tmp, label=f"{args.variant} {name}", runs=args.runs)
    finally:
        stop(workers, tmp)
    return 0


def alternate(workers: dict[str, subprocess.Popen[str]], notebook: Path, tmp: Path, *, label: str, runs: int) -> None:
    """One warm-up per worker, then ``runs`` rounds in alternating order (A B, B A, ...); prints each worker's
    median and best seconds."""
    first, second = list(workers)
    times: dict[str, list[float]] = {tag: [] for tag in workers}
    for tag, proc in workers.items():
        _run(proc, notebook, tmp / f"warm-{tag}.ipynb")
    for r in range(runs):
        for tag in ((first, second) if r % 2 == 0 else (second, first)):
            times[tag].append(_run(workers[tag], notebook, tmp / f"{tag}-{notebook.stem}-{r}.ipynb")["seconds"])
    for tag, seconds in times.items():
        print(f"{label} {tag}: median {statistics.median(seconds):.3f} s, best {min(seconds):.3f} s "
              f"({len(seconds)} runs)", flush=True)


def stop(workers: dict[str, subprocess.Popen[str]], tmp: Path) -> None:
    """Close each worker's input (it exits), wait for it, and remove the temporary folder."""
    for proc in workers.values():
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=120)
    shutil.rmtree(tmp, ignore_errors=True)


def median_ms(fn: Any, runs: int) -> float:
    """Median milliseconds of ``fn()`` over ``runs`` calls, after one call that is not counted."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    raise SystemExit(main())
