"""Benchmark row: the 3-cell notebook on a Jupyter gateway's kernel against the local kernel, in the same run.

    python -m bench.gateway [--runs 10]      # also run by `python -m bench.run` (its "gateway" section)

Both variants go through the engine (``Execution``, the kernel started while the notebook is read, as the operator
does), alternating local and gateway, after one warm-up each. The gateway is a real Jupyter Enterprise Gateway
3.3.0 in local-process mode on 127.0.0.1 with token auth (``tests/gateway/server.py``), so the difference is the
gateway's own cost: REST calls, the websocket, and its kernel launch; a network hop would add its round trips.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_notebook_provider.engine import Execution, ExecutionSettings, LocalKernels
from airflow_notebook_provider.engine.kernels.gateway import GatewayKernels, GatewaySettings
from bench.notebooks import PARAMETERS, build


def one_run(notebook: Path, out: Path, settings: ExecutionSettings) -> float:
    t0 = time.perf_counter()
    with Execution(str(notebook), parameters=PARAMETERS, settings=settings) as execution:
        data = notebook.read_bytes()
        execution.run(data, str(out), save=out.write_bytes)
    return time.perf_counter() - t0


def measure(notebook: Path, runs: int, tmp: Path) -> dict[str, Any]:
    """Median and best seconds per variant, and the gateway's kernels left over (must be 0)."""
    from tests.gateway.server import start_gateway

    gw = start_gateway(tmp / "gateway")
    try:
        variants = {
            "local kernel": lambda: ExecutionSettings(kernel_name="python3", kernels=LocalKernels()),
            "gateway kernel": lambda: ExecutionSettings(
                kernel_name="python3", kernels=GatewayKernels(GatewaySettings(gw.url, token=gw.token))),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        for make in variants.values():  # warm-up: imports, the first kernel start on each side
            one_run(notebook, tmp / "warm.ipynb", make())
        for r in range(runs):
            for v in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                times[v].append(one_run(notebook, tmp / f"{v.split()[0]}-{r}.ipynb", variants[v]()))
                print(f"gateway bench {v}: {times[v][-1]:.3f} s", file=sys.stderr, flush=True)
        left = len(gw.kernels())
    finally:
        gw.stop()
    rows = {v: {"median_s": round(statistics.median(t), 3), "best_s": round(min(t), 3), "runs": [round(x, 3) for x in t]}
            for v, t in times.items()}
    return {"notebook": notebook.stem, "runs": runs, "variants": rows, "kernels_left_on_gateway": left,
            "gateway": "Jupyter Enterprise Gateway 3.3.0, local-process mode, 127.0.0.1, token auth"}


def table(report: dict[str, Any]) -> str:
    local = report["variants"]["local kernel"]["median_s"]
    lines = ["| notebook | kernel | median s (× local) | best s |", "|---|---|---|---|"]
    for v, r in report["variants"].items():
        lines.append(f"| {report['notebook']} | {v} | {r['median_s']:.3f} ({r['median_s'] / local:.2f}) | {r['best_s']:.3f} |")
    return "\n".join(lines) + f"\n\nKernels left on the gateway after the runs: {report['kernels_left_on_gateway']}.\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nb-bench-gw-"))
    report = measure(build(tmp / "notebooks")["small3"], args.runs, tmp)
    print(table(report))
    print(json.dumps(report, indent=1))
    return 1 if report["kernels_left_on_gateway"] else 0


if __name__ == "__main__":
    sys.exit(main())
