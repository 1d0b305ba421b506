"""Benchmark: this project's engine and operator against plain nbclient (the floor), papermill and Airflow's
PapermillOperator, on the same notebooks, in one run, alternating the order of the variants to cancel drift.

    python -m bench.run                  # the full benchmark (under 14 minutes on 2 cores), writes bench/results/
    python -m bench.run --smoke          # one quick run of every variant: correctness only (CI)

Each variant runs in a long-lived worker process of its own (``bench/one.py``), as tasks run in a worker; the
first run of each notebook is a warm-up and is not counted. Writes to a local output are counted with inotify (a write is a
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

from bench import gateway
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


class Worker:
    """One long-lived ``bench.one`` process for one variant, with its own AIRFLOW_HOME (a copy of a fresh DB)."""

    def __init__(self, variant: str, tmp: Path, db_template: Path, env_extra: dict[str, str] | None = None,
                 tag: str = "") -> None:
        self.variant, self.tmp, self.n = variant, tmp / f"worker-{variant}{tag}{'-s3' if env_extra else ''}", 0
        home = self.tmp / "airflow-home"
        home.mkdir(parents=True)
        shutil.copy(db_template, home / "airflow.db")
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "PYTHONPATH": str(REPO), **(env_extra or {})}
        self.log = (self.tmp / "worker.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.one", variant], cwd=REPO, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        self._expect("READY")
        self.pending: dict[str, Any] | None = None

    def _expect(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line
        tail = (self.tmp / "worker.log").read_text(errors="replace")[-12000:]
        raise RuntimeError(f"{self.variant} worker exited (code {self.proc.wait()}):\n{tail}")

    def submit(self, notebook: Path) -> None:
        """Start one run; the output goes to a fresh folder watched for writes."""
        self.n += 1
        out_dir = self.tmp / f"run-{self.n}"
        out_dir.mkdir()
        output = out_dir / "output.ipynb"
        self.pending = {"counter": WriteCounter(out_dir, output.name), "output": output, "dir": out_dir}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"notebook": str(notebook), "output": str(output)}) + "\n")
        self.proc.stdin.flush()

    def collect(self) -> dict[str, Any]:
        assert self.pending is not None
        res = json.loads(self._expect("BENCH ")[6:])
        res["writes"] = self.pending["counter"].close()
        res["variant"] = self.variant
        if "error" in res:
            tail = (self.tmp / "worker.log").read_text(errors="replace")[-12000:]
            raise RuntimeError(f"{self.variant} failed: {res['error']}\n{tail}")
        if self.variant in WRITES_OUTPUT:
            res["output_ok"] = check_output(self.pending["output"])
        shutil.rmtree(self.pending["dir"], ignore_errors=True)
        self.pending = None
        return res

    def run(self, notebook: Path) -> dict[str, Any]:
        self.submit(notebook)
        return self.collect()

    def run_to_url(self, notebook: Path | str, url: str) -> dict[str, Any]:
        """One run writing to an object-storage URL (writes are counted by the store, not here)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"notebook": str(notebook), "output": url}) + "\n")
        self.proc.stdin.flush()
        res = json.loads(self._expect("BENCH ")[6:])
        if "error" in res:
            raise RuntimeError(f"{self.variant} to {url} failed: {res['error']}")
        return res

    def close_input(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def stop(self) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        self.log.close()


def check_output(path: Path) -> bool:
    """The output is a valid notebook with the injected parameters and no error."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    return len(injected) == 1 and f"label = {PARAMETERS['label']!r}" in injected[0].source.replace('"', "'") and not errors


def kernel_start(books: dict[str, Path], tmp: Path, db: Path, runs: int) -> dict[str, list[float]]:
    """Kernel start-up alone, in a long-lived worker as every variant runs (one start not counted), two ways: the
    kernel's boot until it answers (what the engine waits for) and jupyter_client's ``wait_for_ready`` (what nbclient,
    hence the floor and papermill, wait for). Alternating, like the rest."""
    workers = {how: Worker(f"kernel_{how}", tmp, db) for how in ("boot", "wait_for_ready")}
    out: dict[str, list[float]] = {how: [] for how in workers}
    try:
        for r in range(runs + 1):
            for how in (list(workers) if r % 2 == 0 else list(workers)[::-1]):
                seconds = workers[how].run(books["small3"])["seconds"]
                if r:
                    out[how].append(seconds)
    finally:
        for w in workers.values():
            w.stop()
    return out


def s3_input(books: dict[str, Path], tmp: Path, db: Path, runs: int) -> dict[str, dict[str, float]]:
    """The operator with its input and output on S3 (moto), with and without starting the kernel while the input is
    fetched: task time and the wait from ``execute()`` to the kernel's first answer, medians, alternating.

    Each run is the first S3 task of a fresh worker process (after a local warm-up run that starts Airflow's
    in-process API), as in Airflow where every task instance runs in a new process: the S3 client is set up
    inside the task, which is the time a kernel started early can boot in."""
    sys.path.insert(0, str(REPO))
    from tests.helpers import s3_client, start_moto

    server = start_moto(tmp)
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="in/small3.ipynb", Body=books["small3"].read_bytes())
        conn = json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                           "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"}})
        env = {"AIRFLOW_CONN_BENCH_S3": conn, "BENCH_CONN_ID": "bench_s3"}
        envs = {"early": env, "late": {**env, "BENCH_NO_EARLY_KERNEL": "1"}}
        res: dict[str, list[dict[str, Any]]] = {k: [] for k in envs}
        for r in range(runs):
            for k in (list(envs) if r % 2 == 0 else list(envs)[::-1]):
                worker = Worker("operator", tmp, db, envs[k], tag=f"-{k}-{r}")
                try:
                    worker.run(books["small3"])  # warm-up on a local file: Airflow's in-process API, not S3
                    res[k].append(worker.run_to_url("s3://bench/in/small3.ipynb", f"s3://bench/out/{k}-{r}.ipynb"))
                finally:
                    worker.stop()
        return {k: {"median_s": round(statistics.median(x["seconds"] for x in v), 3),
                    "kernel_ready_s": round(statistics.median(x["kernel_ready_s"] for x in v), 3)} for k, v in res.items()}
    finally:
        server.stop()


def s3_puts(notebooks: dict[str, Path], tmp: Path, db: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """PUT requests to the output key on moto's S3 server, for the engine and papermill writing to S3."""
    sys.path.insert(0, str(REPO))
    from tests.helpers import s3_client, start_moto

    server = start_moto(tmp)
    try:
        s3_client(server.endpoint).create_bucket(Bucket="bench")
        env = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        counts: dict[str, dict[str, int]] = {}
        for variant in ("engine", "papermill"):
            worker = Worker(variant, tmp, db, env)
            try:
                for name in names:
                    key = f"{name}-{variant}.ipynb"
                    worker.run_to_url(notebooks[name], f"s3://bench/{key}")
                    counts.setdefault(name, {})[variant] = sum(
                        1 for r in server.requests() if r["method"] == "PUT" and r["path"].split("?")[0] == f"/bench/{key}")
            finally:
                worker.stop()
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
                # Noise on a shared machine only ever adds time: the best run shows what a variant costs at least.
                "best_s": round(min(r["seconds"] for r in runs), 3),
                "runs_s": [round(r["seconds"], 3) for r in runs],
                "ratio_to_floor": round(med / floor, 3), "overhead_ms": round((med - floor) * 1000),
                "writes": max(r["writes"] for r in runs) if variant in WRITES_OUTPUT else 0,
                # The median of the runs' peaks: a worker keeps memory that an earlier, larger notebook made it take.
                "peak_rss_mb": round(statistics.median(r["rss_kb"] for r in runs) / 1024, 1),
                "outputs_ok": all(r.get("output_ok", True) for r in runs),
                "kernel_ready_s": round(statistics.median(r["kernel_ready_s"] for r in runs), 3)
                if "kernel_ready_s" in runs[0] else None,
            })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| notebook | variant | runs | median s | × floor | overhead ms | best s | writes | peak RSS MB |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['notebook']} | {r['variant']} | {r['runs']} | {r['median_s']:.3f} | {r['ratio_to_floor']:.3f} | "
        f"{r['overhead_ms']} | {r['best_s']:.3f} | {r['writes'] if r['variant'] in WRITES_OUTPUT else '–'} | "
        f"{r['peak_rss_mb']} |\n"
        for r in rows
    )


def notes(report: dict[str, Any]) -> str:
    """The figures outside the table, as Markdown lines."""
    lines = []
    ks = report.get("kernel_start_s")
    if ks:
        lines.append(f"- Kernel start-up alone (python3, median of {len(ks['boot']['runs'])}): spawn until it answers "
                     f"{ks['boot']['median']:.3f} s; until jupyter_client's `wait_for_ready` returns "
                     f"{ks['wait_for_ready']['median']:.3f} s.")
    for r in report["rows"]:
        if r.get("kernel_ready_s") is not None:
            lines.append(f"- {r['notebook']}, operator: the kernel answers {r['kernel_ready_s']:.3f} s after `execute()` starts.")
    s3 = report.get("s3_input")
    if s3:
        lines.append(f"- Operator with input and output on S3 (small3): kernel started while the input is fetched "
                     f"{s3['early']['median_s']:.3f} s (kernel answers after {s3['early']['kernel_ready_s']:.3f} s); "
                     f"started after {s3['late']['median_s']:.3f} s ({s3['late']['kernel_ready_s']:.3f} s).")
    for name, counts in report.get("s3_puts", {}).items():
        lines.append(f"- S3 PUTs of the output, {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    return "\n".join(lines) + ("\n" if lines else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per variant and notebook (after one warm-up)")
    ap.add_argument("--long-seconds", type=float, default=90.0, help="how long the long cell sleeps")
    ap.add_argument("--stagger", type=float, default=3.0, help="seconds between the starts of the long runs")
    ap.add_argument("--smoke", action="store_true", help="one run of each variant on small notebooks, no timing claims")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs, args.long_seconds, args.stagger = 1, 1.0, 0.5
    tmp = Path(tempfile.mkdtemp(prefix="nb-bench-"))
    t_start = time.monotonic()
    workers: dict[str, Worker] = {}
    try:
        books = build(tmp / "notebooks", args.long_seconds)
        db = init_db(tmp)
        workers = {v: Worker(v, tmp, db) for v in VARIANTS}
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        sequential = ["small3"] if args.smoke else ["small3", "trivial200", "output20mb"]
        for name in sequential:
            results[name] = {v: [] for v in VARIANTS}
            for v in VARIANTS:  # warm-up: imports, caches, Airflow's in-process API, the first kernel start
                workers[v].run(books[name])
            for r in range(args.runs):
                for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):  # A B C … then … C B A
                    results[name][v].append(workers[v].run(books[name]))
                    print(f"{name} {v}: {results[name][v][-1]['seconds']:.3f} s", file=sys.stderr, flush=True)
        # The long notebook mostly sleeps: all its runs go at once, each in a worker of its own, their starts
        # `--stagger` seconds apart (alternating the order of the variants) so that no two kernel start-ups overlap.
        results["long90"] = {v: [] for v in VARIANTS}
        pool = {v: [workers[v]] for v in VARIANTS}
        extra = [Worker(v, tmp, db, tag=f"-{i}") for i in range(1, args.runs) for v in VARIANTS]
        for w in extra:  # warm-up of the extra workers, side by side, not counted
            w.submit(books["small3"])
        for w in extra:
            w.collect()
            pool[w.variant].append(w)
        workers.update({f"{w.variant}{i}": w for i, w in enumerate(extra)})
        started = []
        for r in range(args.runs):
            for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
                pool[v][r].submit(books["long90"])
                started.append(pool[v][r])
                time.sleep(args.stagger)
        for w in started:
            results["long90"][w.variant].append(w.collect())
            print(f"long90 {w.variant}: {results['long90'][w.variant][-1]['seconds']:.3f} s", file=sys.stderr, flush=True)
        print("long90 done", file=sys.stderr, flush=True)
        rows = summarize(results)
        report: dict[str, Any] = {"rows": rows, "parameters": PARAMETERS, "runs": args.runs,
                                  "long_seconds": args.long_seconds, "python": sys.version.split()[0], "cpus": os.cpu_count()}
        ks = kernel_start(books, tmp, db, args.runs)
        report["kernel_start_s"] = {k: {"median": round(statistics.median(v), 3), "runs": [round(x, 3) for x in v]}
                                    for k, v in ks.items()}
        report["s3_input"] = s3_input(books, tmp, db, args.runs)
        report["s3_puts"] = s3_puts(books, tmp, db, ["small3"] if args.smoke else ["small3", "trivial200"])
        report["gateway"] = gateway.measure(books["small3"], max(args.runs, 10) if not args.smoke else 1, tmp)
        report["elapsed_s"] = round(time.monotonic() - t_start, 1)
        text = table(rows) + "\n" + notes(report) + "\n## A Jupyter gateway's kernel against the local one\n\n" + \
            gateway.table(report["gateway"])
        print(text)
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "smoke" if args.smoke else "latest"
        (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
        (args.out / f"{stem}.md").write_text(text)
        bad = [r for r in rows if not r["outputs_ok"]]
        if report["gateway"]["kernels_left_on_gateway"]:
            bad.append({"gateway": "kernels left on the gateway"})
        if bad:
            print(f"invalid outputs: {bad}", file=sys.stderr)
            return 1
        return 0
    finally:
        for w in workers.values():  # end of input for all first, so that they exit side by side
            w.close_input()
        for w in workers.values():
            w.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
