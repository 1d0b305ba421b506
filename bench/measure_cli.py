"""The figures for `params`, `diff` and `clean` in the docs (docs/benchmarks.md, "The command-line tool"): wall time
of the installed command (a user's view, start-up included), median of 5, and the in-process time of the work itself.

    .venv/bin/python -m bench.measure_cli [WORKDIR]

Builds a 200-cell notebook (20 parameters), runs it twice with `airflow-notebook run` (limit 5 passes, limit 500
fails at cell 190), then times `params` on it, `diff` of the two outputs, and `clean --older-than 30d` (dry run,
then for real) on a tree shaped like tests/test_retention.py's (3 DAGs x 30 runs x 12 tasks: 4,140 files and
attempt folders, 18 of the 30 runs 45 days old).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

EXE = str(Path(sys.executable).with_name("airflow-notebook"))


# jsonschema imports rfc3987_syntax when it is installed (it builds a lark grammar at import: 2-8 s on a loaded
# 2-core machine); nbformat imports jsonschema. Timed both ways: as installed, and with that import blocked.
BLOCKED = [sys.executable, "-c", "import sys; sys.modules['rfc3987_syntax'] = None; "
           "from airflow_notebook_provider.cli import main; sys.exit(main(sys.argv[1:]))"]


def timed(*args: str, repeat: int = 5, ok: tuple[int, ...] = (0,), blocked: bool = False) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([*(BLOCKED if blocked else [EXE]), *args], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        assert proc.returncode in ok, proc.stderr
    return statistics.median(times)


def notebook_200(path: Path) -> None:
    params = "\n".join([f"p{i} = {i}  # parameter {i}" for i in range(19)] + ["limit = 10  # rows"])
    cells = [nbformat.v4.new_code_cell(params)]
    cells[0].metadata["tags"] = ["parameters"]
    for i in range(1, 200):
        src = "if limit > 100:\n    raise ValueError('too many rows')" if i == 188 else f"print({i} * limit, 'rows')"
        cells.append(nbformat.v4.new_code_cell(src))
    ks = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ks}), str(path))


def tree(base: Path) -> int:
    old = time.time() - 45 * 86400
    count = 0
    for d in range(3):
        for r in range(30):
            for t in range(12):
                folder = base / f"dag_{d}" / f"scheduled__2024-01-{r + 1:02d}" / f"task_{t}"
                folder.mkdir(parents=True)
                for n in range(1, (2 if t % 4 == 0 else 1) + 1):
                    nb, rec = folder / f"attempt-{n}.ipynb", folder / f"attempt-{n}.record.json"
                    nb.write_bytes(b'{"cells": [], "metadata": {}}' + b" " * 2000)
                    rec.write_text(json.dumps({"location": str(nb), "try_number": n}))
                    paths = [nb, rec]
                    if t % 5 == 0:
                        (folder / f"attempt-{n}.html").write_text("<p>report</p>" * 100)
                        (folder / f"attempt-{n}" / "plots").mkdir(parents=True)
                        (folder / f"attempt-{n}" / "plots" / "a.png").write_bytes(b"x" * 5000)
                        paths += [folder / f"attempt-{n}.html", folder / f"attempt-{n}" / "plots" / "a.png",
                                  folder / f"attempt-{n}" / "plots", folder / f"attempt-{n}"]
                    for p in paths:
                        count += 1
                        if r < 18:
                            os.utime(p, (old, old))
    return count


def main() -> None:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="anp-figures-"))
    nb = work / "nb200.ipynb"
    notebook_200(nb)
    a, b = work / "a.ipynb", work / "b.ipynb"
    subprocess.run([EXE, "run", str(nb), "-o", str(a), "-p", "limit", "5"], check=True, capture_output=True)
    subprocess.run([EXE, "run", str(nb), "-o", str(b), "-p", "limit", "500"], capture_output=True)

    print(f"params, 200-cell notebook:         {timed('params', str(nb)):.2f} s (command), "
          f"{timed('params', str(nb), blocked=True):.2f} s without rfc3987_syntax")
    print(f"diff, two 200-cell outputs:        {timed('diff', str(a), str(b), ok=(1,)):.2f} s (command), "
          f"{timed('diff', str(a), str(b), ok=(1,), blocked=True):.2f} s without rfc3987_syntax")
    from airflow_notebook_provider.notebook.compare import compare
    from airflow_notebook_provider.notebook.introspect import declared_parameters
    from airflow_notebook_provider.notebook.load import load

    na, nb_ = json.loads(a.read_text()), json.loads(b.read_text())
    start = time.perf_counter()
    for _ in range(20):
        compare(na, nb_)
    print(f"  compare() in process:            {(time.perf_counter() - start) / 20 * 1000:.1f} ms")
    node = load(nb.read_bytes(), str(nb))
    start = time.perf_counter()
    for _ in range(20):
        declared_parameters(node, "python")
    print(f"  declared_parameters() in process: {(time.perf_counter() - start) / 20 * 1000:.1f} ms")

    base = work / "outputs"
    files = tree(base)
    start = time.perf_counter()
    dry = subprocess.run([EXE, "clean", "--older-than", "30d", "--dry-run", "--output-base", str(base), "--json"],
                         check=True, capture_output=True, text=True)
    dry_s = time.perf_counter() - start
    start = time.perf_counter()
    real = subprocess.run([EXE, "clean", "--older-than", "30d", "--output-base", str(base), "--json"],
                          check=True, capture_output=True, text=True)
    real_s = time.perf_counter() - start
    rd, rr = json.loads(dry.stdout), json.loads(real.stdout)
    print(f"clean, {files} files: dry run {dry_s:.2f} s (in process {rd['seconds']:.2f} s), "
          f"clean {real_s:.2f} s (in process {rr['seconds']:.2f} s): {rr['entries']} entries, "
          f"{rr['bytes']} bytes freed, {rr['tombstones']} tombstones")


if __name__ == "__main__":
    main()
