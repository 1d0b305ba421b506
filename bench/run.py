"""Benchmark: this project's engine and operator against plain nbclient (the floor), papermill and Airflow's
PapermillOperator, on the same notebooks, in one run, alternating the order of the variants to cancel drift.

    python -m bench.run                  # the full benchmark (about 13 minutes on 2 cores), writes bench/results/
    python -m bench.run --smoke          # one quick run of every variant: correctness only (CI)

Each run is a fresh process (``bench/one.py``). Writes to a local output are counted with inotify (a write is a
file closed after writing, or renamed into place, under the output's name); PUTs to S3 are counted in the access log
of moto's server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.notebooks import PARAMETERS, build

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ["floor", "engine", "papermill", "operator", "pm_operator"]
WRITES_OUTPUT = {"engine", "papermill", "operator", "pm_operator"}

IN_CLOSE_WRITE, IN_MOVED_TO = 0x00000008, 0x00000080


class WriteCounter:
    """Counts completed writes of one file name in one folder, with Linux inotify (no polling, nothing missed)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name, self.count = name.encode(), 0
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK)
        if self._fd < 0 or self._libc.inotify_add_watch(self._fd, str(folder).encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify failed")
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            buf = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        i = 0
        while i + 16 <= len(buf):
            _wd, mask, _cookie, length = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16: i + 16 + length].rstrip(b"\0")
            if name == self.name and mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                self.count += 1
            i += 16 + length

    def _loop(self) -> None:
        while not self._stop:
            if select.select([self._fd], [], [], 0.1)[0]:
                self._drain()

    def close(self) -> int:
        time.sleep(0.05)
        self._stop = True
        self._thread.join()
        self._drain()
        os.close(self._fd)
        return self.count


def start_run(variant: str, notebook: Path, workdir: Path, db_template: Path, env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Start one run in a fresh process; return a handle for ``finish_run``."""
    workdir.mkdir(parents=True)
    home = workdir / "airflow-home"
    home.mkdir()
    shutil.copy(db_template, home / "airflow.db")
    out_dir = workdir / "out"
    out_dir.mkdir()
    output = out_dir / "output.ipynb"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "PYTHONPATH": str(REPO), **(env_extra or {})}
    counter = WriteCounter(out_dir, output.name)
    log = (workdir / "run.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bench.one", variant, str(notebook), str(output)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    return {"variant": variant, "proc": proc, "counter": counter, "output": output, "workdir": workdir, "log": log}


def finish_run(h: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    try:
        stdout, _ = h["proc"].communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(h["proc"].pid, 9)
        raise
    h["log"].close()
    writes = h["counter"].close()
    line = next((ln for ln in stdout.decode().splitlines() if ln.startswith("BENCH ")), None)
    if h["proc"].returncode != 0 or line is None:
        tail = (h["workdir"] / "run.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{h['variant']} failed (exit {h['proc'].returncode}):\n{tail}")
    res = json.loads(line[6:])
    res["writes"] = writes
    res["variant"] = h["variant"]
    if h["variant"] in WRITES_OUTPUT:
        res["output_ok"] = check_output(h["output"])
    shutil.rmtree(h["workdir"], ignore_errors=True)
    return res


def check_output(path: Path) -> bool:
    """The output is a valid notebook with the injected parameters and no error."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    return len(injected) == 1 and f"label = {PARAMETERS['label']!r}" in injected[0].source.replace('"', "'") and not errors


def run_one(variant: str, notebook: Path, tmp: Path, db: Path, n: int) -> dict[str, Any]:
    return finish_run(start_run(variant, notebook, tmp / f"{notebook.stem}-{variant}-{n}", db))


def kernel_start(runs: int) -> list[float]:
    """Kernel start-up on its own: start the python3 kernel, wait until it answers, shut it down."""
    code = (
        "import time\nfrom jupyter_client.manager import start_new_kernel\n"
        "t=time.perf_counter(); km, kc = start_new_kernel(kernel_name='python3'); s=time.perf_counter()-t\n"
        "kc.stop_channels(); km.shutdown_kernel(now=True); print('BENCH', s)\n"
    )
    out = []
    for _ in range(runs + 1):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        out.append(float(p.stdout.split()[-1]))
    return out[1:]


def s3_puts(notebooks: dict[str, Path], tmp: Path, db: Path) -> dict[str, dict[str, int]]:
    """PUT requests to the output key on moto's S3 server, for the engine and papermill writing to S3."""
    sys.path.insert(0, str(REPO))
    from tests.helpers import s3_client, start_moto

    server = start_moto(tmp)
    try:
        s3_client(server.endpoint).create_bucket(Bucket="bench")
        env = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        counts: dict[str, dict[str, int]] = {}
        for name in ("small3", "trivial200"):
            for variant in ("engine", "papermill"):
                key = f"{name}-{variant}.ipynb"
                workdir = tmp / f"s3-{key}"
                workdir.mkdir()
                proc = subprocess.run([sys.executable, "-m", "bench.one", variant, str(notebooks[name]), f"s3://bench/{key}"],
                                      cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
                                      capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr[-3000:])
                counts.setdefault(name, {})[variant] = sum(
                    1 for r in server.requests() if r["method"] == "PUT" and r["path"].split("?")[0] == f"/bench/{key}")
        return counts
    finally:
        server.stop()


def init_db(tmp: Path) -> Path:
    home = tmp / "template-home"
    home.mkdir()
    code = ("from airflow.utils import db; db.initdb()\n"
            "from airflow.dag_processing.bundles.manager import DagBundlesManager; DagBundlesManager().sync_bundles_to_db()")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "AIRFLOW_HOME": str(home),
                   "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags")},
                   check=True, capture_output=True, timeout=300)
    return home / "airflow.db"


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    rows = []
    for name, per_variant in results.items():
        floor = statistics.median(r["seconds"] for r in per_variant["floor"])
        for variant in VARIANTS:
            runs = per_variant.get(variant, [])
            if not runs:
                continue
            med = statistics.median(r["seconds"] for r in runs)
            rows.append({
                "notebook": name, "variant": variant, "runs": len(runs), "median_s": round(med, 3),
                "ratio_to_floor": round(med / floor, 3), "overhead_ms": round((med - floor) * 1000),
                "writes": max(r["writes"] for r in runs) if variant in WRITES_OUTPUT else 0,
                "peak_rss_mb": round(max(r["rss_kb"] for r in runs) / 1024, 1),
                "outputs_ok": all(r.get("output_ok", True) for r in runs),
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = "| notebook | variant | runs | median s | × floor | overhead ms | writes | peak RSS MB |\n|---|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['notebook']} | {r['variant']} | {r['runs']} | {r['median_s']:.3f} | {r['ratio_to_floor']:.3f} | "
        f"{r['overhead_ms']} | {r['writes'] if r['variant'] in WRITES_OUTPUT else '–'} | {r['peak_rss_mb']} |\n"
        for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per variant and notebook (after one warm-up)")
    ap.add_argument("--long-seconds", type=float, default=90.0, help="how long the long cell sleeps")
    ap.add_argument("--smoke", action="store_true", help="one run of each variant on small notebooks, no timing claims")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs, args.long_seconds = 1, 1.0
    tmp = Path(tempfile.mkdtemp(prefix="nb-bench-"))
    t_start = time.monotonic()
    try:
        books = build(tmp / "notebooks", args.long_seconds)
        db = init_db(tmp)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        sequential = ["small3"] if args.smoke else ["small3", "trivial200", "output20mb"]
        n = 0
        for name in sequential:
            results[name] = {v: [] for v in VARIANTS}
            if not args.smoke:
                for v in VARIANTS:  # warm-up: caches, bytecode, first kernel start
                    n += 1
                    run_one(v, books[name], tmp, db, n)
            for r in range(args.runs):
                for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):  # A B … then … B A
                    n += 1
                    results[name][v].append(run_one(v, books[name], tmp, db, n))
                    print(f"{name} {v}: {results[name][v][-1]['seconds']:.3f} s", file=sys.stderr, flush=True)
        # The long notebook sleeps, so its runs of one round go side by side (one of each variant at once).
        results["long90"] = {v: [] for v in VARIANTS}
        for r in range(args.runs):
            handles = []
            for v in VARIANTS:
                n += 1
                handles.append(start_run(v, books["long90"], tmp / f"long-{v}-{n}", db))
            for h in handles:
                res = finish_run(h)
                results["long90"][res["variant"]].append(res)
            print(f"long90 round {r + 1} done", file=sys.stderr, flush=True)
        rows = summarize(results)
        report: dict[str, Any] = {"rows": rows, "parameters": PARAMETERS, "runs": args.runs,
                                  "long_seconds": args.long_seconds, "python": sys.version.split()[0], "cpus": os.cpu_count()}
        if not args.smoke:
            ks = kernel_start(args.runs)
            report["kernel_start_s"] = {"median": round(statistics.median(ks), 3), "runs": [round(x, 3) for x in ks]}
            report["s3_puts"] = s3_puts(books, tmp, db)
        report["elapsed_s"] = round(time.monotonic() - t_start, 1)
        text = table(rows)
        print(text)
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "smoke" if args.smoke else "latest"
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        (args.out / f"{stem}.md").write_text(text)
        bad = [r for r in rows if not r["outputs_ok"]]
        if bad:
            print(f"invalid outputs: {bad}", file=sys.stderr)
            return 1
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
