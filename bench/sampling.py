"""What measuring each cell's memory and CPU costs: ``python -m bench.sampling [--runs 15]``.

Two long-lived ``bench.one engine`` workers of this checkout, one with the sampler switched off
(``BENCH_CELL_RESOURCES=off``: durations only), fed the same notebooks alternately (A B, B A, ...), so
that a drift of the machine falls on both alike; then the CPU time the sampling thread itself takes per second of a
running cell, sampling a real ipykernel process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_notebook_provider.engine.resources import INTERVAL, CellSampler
from bench.ab import _worker, alternate, stop
from bench.notebooks import build
from bench.one import CELL_RESOURCES_SWITCH as SWITCH
from bench.run import REPO, init_db


class _Process:
    pid: int

    def __init__(self, pid: int) -> None:
        self.pid = pid


def sampler_costs(seconds: float = 10.0, cells: int = 2000) -> tuple[float, int, float]:
    """Against a real ipykernel process: CPU seconds this process spends per second of sampling, the samples taken,
    and the CPU seconds of one ``start()`` + ``stop()`` pair (what each cell pays, however short)."""
    # The kernel writes its connection file (replacing whatever is there): a file of our own, never os.devnull.
    folder = tempfile.mkdtemp(prefix="nb-sampling-kernel-")
    kernel = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", os.path.join(folder, "kernel.json")],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # let it import
        sampler = CellSampler(_Process(kernel.pid))
        cpu0 = time.process_time()
        sampler.start()
        time.sleep(seconds)
        figures = sampler.stop()
        per_second = (time.process_time() - cpu0) / seconds
        cpu0 = time.process_time()
        for _ in range(cells):
            sampler.start()
            sampler.stop()
        return per_second, int(figures["samples"]), (time.process_time() - cpu0) / cells
    finally:
        kernel.kill()
        kernel.wait()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="alternated pairs per notebook, after one warm-up each")
    ap.add_argument("--notebooks", default="small3,trivial200", help="comma-separated; empty: the sampler's cost only")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nb-sampling-"))
    workers = {}
    try:
        books = build(tmp / "notebooks", 1.0)
        db = init_db(tmp)
        for tag in ("off", "on"):
            home = tmp / f"home-{tag}"
            home.mkdir()
            shutil.copy(db, home / "airflow.db")
            saved = os.environ.get(SWITCH)
            os.environ[SWITCH] = "off" if tag == "off" else "on"
            try:
                workers[tag] = _worker(REPO, "engine", home, tmp / f"{tag}.log")
            finally:
                os.environ.pop(SWITCH, None) if saved is None else os.environ.__setitem__(SWITCH, saved)
        for name in filter(None, args.notebooks.split(",")):
            alternate(workers, books[name], tmp, label=f"engine {name} sampling", runs=args.runs)
        cost, samples, per_cell = sampler_costs()
        print(f"sampling thread: {cost * 1000:.2f} ms CPU per second of a running cell ({samples} samples in 10 s, "
              f"every {INTERVAL * 1000:.0f} ms); start() + stop(): {per_cell * 1e6:.0f} µs CPU per cell", flush=True)
    finally:
        stop(workers, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
