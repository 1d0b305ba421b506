"""The benchmark's notebooks, generated so that the benchmark needs no files of its own."""

from __future__ import annotations

from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
PARAMETERS = {"label": "bench", "n": 3}


def _nb(*sources: str) -> nbformat.NotebookNode:
    params = nbformat.v4.new_code_cell("label = 'default'\nn = 1")
    params.metadata["tags"] = ["parameters"]
    cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})


def build(folder: Path, long_seconds: float = 90.0) -> dict[str, Path]:
    """Write the four notebooks of the benchmark into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    books = {
        "small3": _nb("x = n * 2", "print(label, x)", "x"),
        "trivial200": _nb(*[f"v{i} = {i} + n" for i in range(200)]),
        # 20 cells of 1 MiB of stdout each: 20 MiB of output in total.
        "output20mb": _nb(*["import sys\nsys.stdout.write(('y' * 1023 + '\\n') * 1024)" for _ in range(20)]),
        "long90": _nb(f"import time\ntime.sleep({long_seconds})", "print('done')"),
    }
    out = {}
    for name, nb in books.items():
        path = folder / f"{name}.ipynb"
        nbformat.write(nb, str(path))
        out[name] = path
    return out
