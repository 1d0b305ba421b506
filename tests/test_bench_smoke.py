"""The benchmark runs end to end (one quick run of every variant and stage) and every variant's output is correct.

Correctness only: timing figures live in bench/README.md, never in assertions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_smoke(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    rows = {(r["notebook"], r["variant"]): r for r in report["rows"]}
    variants = {"floor", "engine", "papermill", "operator", "pm_operator"}
    assert {v for _, v in rows} == variants
    assert all(r["outputs_ok"] for r in rows.values())
    # Our writes do not grow with the cell count; papermill's do (2N+3 for N cells).
    assert rows[("small3", "engine")]["writes"] == 2 and rows[("small3", "operator")]["writes"] == 2
    assert rows[("small3", "papermill")]["writes"] == 2 * 5 + 3
    # The same on S3, counted as PUT requests on moto's server.
    assert report["s3_puts"]["small3"] == {"engine": 2, "papermill": 2 * 5 + 3}
    # The other stages ran and measured something: kernel start-up alone, the operator on S3 with and without the
    # kernel started while the input is fetched (its kernel answered after execute() began, in both).
    assert all(k["median"] > 0 for k in report["kernel_start_s"].values())
    assert set(report["s3_input"]) == {"early", "late"}
    assert all(0 < v["kernel_ready_s"] < v["median_s"] for v in report["s3_input"].values())
    # The gateway row: the same notebook on a Jupyter gateway's kernel and on the local one, nothing left behind.
    assert set(report["gateway"]["variants"]) == {"local kernel", "gateway kernel"}
    assert all(v["median_s"] > 0 for v in report["gateway"]["variants"].values())
    assert report["gateway"]["kernels_left_on_gateway"] == 0


def test_soak_and_gateway_benchmarks_start(tmp_path: Path) -> None:
    """The soak (``make soak``, not run in CI: an hour) and the gateway benchmark at least import and parse their
    arguments, so a refactor of the helpers they share with the tests cannot break them unnoticed."""
    for module in ("bench.soak", "bench.gateway", "bench.task_cpu", "bench.compare_scale"):
        proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 and "usage:" in proc.stdout, f"{module}: {proc.stderr[-3000:]}"
