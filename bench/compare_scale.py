"""What Compare costs as notebooks grow: ``python -m bench.compare_scale [--sizes 400,4000,40000] [--timeout 900]``.

Two outputs of one notebook, as two runs of an nbformat 4.4 input leave them (every run gives each cell a fresh
id, so cells pair up by source, not by id), in three shapes:

- ``repeated``: N cells whose sources cycle through 10 statements (a generated or copy-pasted notebook: the case
  where aligning by source was quadratic); in B every 100th cell prints something else and every 1,000th has an
  edited source.
- ``unique``: N cells, every source different; the same changes.
- ``lines``: one cell printing N × 25 lines (10,000 / 100,000 / 1,000,000 for the default sizes), every 1,000th
  of them different in B: what the line diff of one cell costs.

Each figure is the CPU seconds (user + system) of one fresh process per case: ``compare()`` itself (the
comparison the viewer's Compare page and ``airflow-notebook diff`` share), the terminal text of ``diff``
(``format_comparison``) and the viewer's page (``compare_page.render``); and ``airflow-notebook diff A B`` run
as a user runs it (whole process: interpreter start, imports, reading both files). A process that runs longer than
``--timeout`` wall seconds is stopped and shown as ``> <CPU seconds spent> (stopped)``. Figures: bench/README.md
("Compare at scale").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).with_name("airflow-notebook"))
SHAPES = ("repeated", "unique", "lines")
_STATEMENTS = [f"step_{k}(data)" for k in range(10)]


def _cell(source: str, text: str, ids: random.Random, tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "id": f"{ids.getrandbits(64):016x}", "execution_count": None,
            "metadata": {"tags": tags or [], "papermill": {"status": "completed", "duration": 0.01}},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": text}], "source": source}


def notebook(n: int, shape: str, side: str) -> dict[str, Any]:
    """Side ``a`` or ``b`` of the pair ``shape`` with ``n`` cells (``lines``: one cell of ``n`` × 25 lines)."""
    ids = random.Random(f"{shape}{n}{side}")  # fresh ids for each run, as nbformat gives a 4.4 input
    limit = 5 if side == "a" else 500
    cells = [_cell("limit = 1", "", ids, ["parameters"]),
             _cell(f"limit = {limit}", "", ids, ["injected-parameters"])]
    if shape == "lines":
        lines = "".join(f"row {i}: {'CHANGED' if side == 'b' and i % 1000 == 999 else 'ok'}\n"
                        for i in range(n * 25))
        cells.append(_cell("for row in rows:\n    print(row)", lines, ids))
    else:
        for i in range(n):
            source = _STATEMENTS[i % 10] if shape == "repeated" else f"value_{i} = step(data, {i})"
            if side == "b" and i % 1000 == 999:
                source += "  # edited"
            text = f"step {i % 10}: {'other' if side == 'b' and i % 100 == 50 else 'ok'}\n"
            cells.append(_cell(source, text, ids))
    meta = {"papermill": {"parameters": {"limit": limit}, "input_path": "/dags/report.ipynb", "duration": 1.0,
                          "exception": None},
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def write_pair(folder: Path, n: int, shape: str) -> tuple[Path, Path]:
    paths = folder / f"{shape}-{n}-a.ipynb", folder / f"{shape}-{n}-b.ipynb"
    for path, side in zip(paths, "ab", strict=True):
        path.write_text(json.dumps(notebook(n, shape, side)))
    return paths


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(a: Path, b: Path) -> dict[str, Any]:
    """In the child process: CPU seconds of compare(), format_comparison() and compare_page.render()."""
    from airflow_notebook_provider.cli.diff import format_comparison
    from airflow_notebook_provider.notebook.compare import compare
    from airflow_notebook_provider.viewer import compare_page

    nb_a, nb_b = json.loads(a.read_text()), json.loads(b.read_text())
    t0 = _cpu()
    result = compare(nb_a, nb_b)
    t1 = _cpu()
    text = format_comparison(result)
    t2 = _cpu()
    page = compare_page.render(result, title="t", side_a=("A", "/a", None), side_b=("B", "/b", None), choices=[],
                               back_url="/")
    t3 = _cpu()
    return {"compare": t1 - t0, "format": t2 - t1, "render": t3 - t2, "cells": len(result.cells),
            "changed_outputs": len(result.changed_outputs), "text_bytes": len(text), "page_bytes": len(page)}


def _child_cpu(cmd: list[str], timeout: float) -> tuple[float, str | None]:
    """(CPU seconds of the process, its stdout); stdout None when it ran past ``timeout`` wall seconds (it is
    then stopped, and the CPU seconds are what it had spent)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = _children()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    out: str | None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        out = None
    return _children() - before, out


def run(sizes: list[int], shapes: list[str], timeout: float) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="anp-compare-bench-") as tmp:
        for shape in shapes:
            for n in sizes:
                a, b = write_pair(Path(tmp), n, shape)
                cpu, out = _child_cpu([sys.executable, "-m", "bench.compare_scale", "--measure", str(a), str(b)],
                                      timeout)
                row: dict[str, Any] = {"shape": shape, "n": n, "measure_process": cpu, "stopped": out is None,
                                       **(json.loads(out) if out is not None else {})}
                cpu, out = _child_cpu([EXE, "diff", str(a), str(b)], timeout)
                row["cli_diff"], row["cli_stopped"] = cpu, out is None
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fmt(value: float | None, stopped: bool) -> str:
    return f"> {value:.0f} (stopped)" if stopped and value is not None else "-" if value is None else f"{value:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| shape | n | compare() CPU s | format CPU s | render CPU s | `airflow-notebook diff` CPU s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        n = f"{r['n'] * 25:,} lines" if r["shape"] == "lines" else f"{r['n']:,} cells"
        compare = r["measure_process"] if r["stopped"] else r.get("compare")
        lines.append(f"| {r['shape']} | {n} | {_fmt(compare, r['stopped'])} | {_fmt(r.get('format'), False)} "
                     f"| {_fmt(r.get('render'), False)} | {_fmt(r['cli_diff'], r['cli_stopped'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="400,4000,40000", help="cells per notebook (lines: × 25 lines)")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a case is stopped")
    parser.add_argument("--measure", nargs=2, metavar=("A", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return
    started = time.monotonic()
    rows = run([int(s) for s in args.sizes.split(",")], args.shapes.split(","), args.timeout)
    print(table(rows))
    print(f"({time.monotonic() - started:.0f} s wall)")


if __name__ == "__main__":
    main()
