"""What reading a text notebook (jupytext) adds to a task, in milliseconds: ``notebook.load.load`` of the same
notebook as ``.ipynb`` JSON and as a ``py:percent`` / jupytext Markdown text, for 20 and 200 code cells (median of
``--runs`` calls after one warm-up), and the one-time import of jupytext in a fresh process (what the first text
notebook a worker process reads pays; a Celery worker's preload pays it once).

    .venv/bin/python -m bench.text_parse [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from bench.ab import median_ms


def _import_ms(module: str, runs: int = 5) -> float:
    """Median wall time of ``import module`` in a fresh interpreter (nbformat already imported, as in a task)."""
    code = f"import nbformat, time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    import jupytext  # type: ignore[import-untyped]
    import nbformat

    from airflow_notebook_provider.notebook.load import load

    results: dict[str, Any] = {"runs": args.runs, "jupytext": jupytext.__version__}
    for n in (20, 200):
        params = nbformat.v4.new_code_cell("day = '2024-01-01'\nlimit = 10", metadata={"tags": ["parameters"]})
        cells = [params, *(nbformat.v4.new_code_cell(f"x{i} = {i} * limit\nprint(x{i})") for i in range(n - 1))]
        nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                            "language": "python"}})
        ipynb = nbformat.writes(nb).encode()
        percent = jupytext.writes(nb, fmt="py:percent").encode()
        markdown = jupytext.writes(nb, fmt="md").encode()
        results[f"{n}_cells"] = {
            f"{name}_ms": round(median_ms(lambda d=data, s=source: load(d, s), args.runs), 3)
            for name, data, source in (("ipynb", ipynb, "nb.ipynb"), ("py_percent", percent, "nb.py"),
                                       ("markdown", markdown, "nb.md"))
        }
    results["import_jupytext_ms"] = round(_import_ms("jupytext"), 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
