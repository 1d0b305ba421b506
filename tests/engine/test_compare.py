"""The comparison behind the viewer's "Compare" and ``airflow-notebook diff``, on notebooks built by hand: cells
aligned when one was inserted, stream chunks joined, images compared by content, banners left out."""

from __future__ import annotations

import base64
import copy
import difflib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from airflow_notebook_provider.notebook.compare import MAX_DIFF_LINES, compare
from airflow_notebook_provider.notebook.record import ERROR_MARKER_TAG
from bench.compare_scale import notebook as scale_notebook
from tests.helpers import AIRFLOW_NOTEBOOK

EXE = AIRFLOW_NOTEBOOK


def notebook_pair(n: int, shape: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two runs of an ``n``-cell notebook, as ``python -m bench.compare_scale`` builds them."""
    return scale_notebook(n, shape, "a"), scale_notebook(n, shape, "b")


def cell(source: str, outputs: list[dict[str, Any]] | None = None, status: str = "completed",
         duration: float = 0.1, tags: list[str] | None = None) -> dict[str, Any]:
    c = nbformat.v4.new_code_cell(source)
    c.outputs = outputs or []
    c.metadata["tags"] = tags or []
    c.metadata["papermill"] = {"status": status, "duration": duration}
    return dict(c)


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def image(payload: bytes) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(payload).decode(), "text/plain": "<Figure size 640x480>"}}


def notebook(cells: list[dict[str, Any]], parameters: dict[str, Any] | None = None, sha: str = "aaa",
             failed: bool = False) -> dict[str, Any]:
    meta = {"papermill": {"parameters": parameters or {}, "input_path": "/n/in.ipynb", "start_time": "t",
                          "end_time": "t", "duration": 1.0, "exception": True if failed else None},
            "airflow_notebook": {"input_sha256": sha}}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


def test_identical_runs_are_the_same_whatever_the_times_and_stream_chunks() -> None:
    a = notebook([cell("x = 1"), cell("print('a'); print('b')", [stream("a\n"), stream("b\n")], duration=0.2)])
    b = copy.deepcopy(a)
    b["cells"][1]["outputs"] = [stream("a\nb\n")]  # the kernel split the same text differently
    b["cells"][1]["metadata"]["papermill"]["duration"] = 3.0
    result = compare(a, b)
    assert result.same and not result.parameters and not result.input_changed
    assert [(c.duration_a, c.duration_b) for c in result.cells][1] == (0.2, 3.0)


def test_parameters_outputs_and_first_status_difference() -> None:
    a = notebook([cell("limit = 1", tags=["parameters"]), cell("limit = 5", tags=["injected-parameters"]),
                  cell("print(limit)", [stream("5\n")]), cell("check(limit)"), cell("print('done')", [stream("done\n")])],
                 parameters={"limit": 5, "region": "eu"})
    b = notebook([cell("limit = 1", tags=["parameters"]), cell("limit = 500", tags=["injected-parameters"]),
                  cell("print(limit)", [stream("500\n")]),
                  cell("check(limit)", [{"output_type": "error", "ename": "ValueError", "evalue": "\x1b[31mtoo many",
                                         "traceback": []}], status="failed"),
                  cell("print('done')", status="pending")],
                 parameters={"limit": 500}, failed=True)
    result = compare(a, b)
    assert not result.same
    assert [(p.name, p.a, p.b, p.in_b) for p in result.parameters] == [("limit", 5, 500, True),
                                                                       ("region", "eu", None, False)]
    assert not result.input_changed and result.changed_sources == []  # the injected cell is not the input's
    first = result.first_status_difference
    assert first is not None and (first.label, first.status_a, first.status_b) == ("cell 4", "completed", "failed")
    changed = {c.label: c.output_diff for c in result.changed_outputs}
    assert changed["cell 3"] == ("@@ -1 +1 @@", "-[stdout] 5", "+[stdout] 500")
    assert changed["cell 4"][-1] == "+[error] ValueError: too many"  # colour codes stripped
    assert changed["cell 5"][-1] == "-[stdout] done"
    assert result.to_json()["first_status_difference"]["label"] == "cell 4"


def test_changed_input_lists_the_cells_whose_source_differs_and_aligns_an_inserted_cell() -> None:
    cells = [cell("a = 1"), cell("b = 2"), cell("c = 3")]
    a = notebook(cells)
    inserted = nbformat.v4.new_code_cell("new = 0")
    edited = copy.deepcopy(cells[2])
    edited["source"] = "c = 4"
    b = notebook([cells[0], dict(inserted, metadata={"papermill": {"status": "completed"}}), cells[1], edited],
                 sha="bbb")
    result = compare(a, b)
    assert result.input_changed
    assert [c.label for c in result.changed_sources] == ["cell 2 (only in B)", "cell 3 → 4"]
    assert result.changed_sources[1].source_diff == ("@@ -1 +1 @@", "-c = 3", "+c = 4")
    assert [c.label for c in result.cells][2] == "cell 2 → 3"  # b = 2 moved down, paired with itself


def test_images_are_changed_or_not_by_content_and_banners_are_left_out() -> None:
    a = notebook([cell("plot()", [image(b"one")])])
    b = notebook([cell("plot()", [image(b"two")])])
    result = compare(a, b)
    (only,) = result.changed_outputs
    assert only.images_changed and only.output_diff == ()  # the text fallback is the same: "changed", no diff
    banner = nbformat.v4.new_markdown_cell("<span>An Exception was encountered</span>")
    banner.metadata["tags"] = [ERROR_MARKER_TAG]
    c = notebook([dict(banner), cell("plot()", [image(b"one")])])
    assert compare(a, c).same and compare(a, c).cells[0].label == "cell 1"


def test_a_huge_output_diff_is_cut() -> None:
    a = notebook([cell("spam()", [stream("".join(f"line {i}\n" for i in range(5000)))])])
    b = notebook([cell("spam()", [stream("".join(f"LINE {i}\n" for i in range(5000)))])])
    diff = compare(a, b).cells[0].output_diff
    assert len(diff) == MAX_DIFF_LINES + 1 and diff[-1].startswith("… ") and diff[-1].endswith("more diff lines")


# -- at scale: the work grows with the notebook, not with its square -------------------------------------------


class _TooMuchWork(Exception):
    pass


def python_lines(func: Any, *args: Any, limit: int | None = None) -> int:
    """How many lines of Python ``func(*args)`` executes (``sys.settrace`` line events), stopping with
    ``_TooMuchWork`` beyond ``limit``. A count of steps, not a time: the same on any machine, however loaded."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if limit is not None and count > limit:
                raise _TooMuchWork(f"more than {limit:,} lines of Python executed")
        return tracer

    sys.settrace(tracer)
    try:
        func(*args)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("shape", ["repeated", "unique"])
def test_ten_times_the_cells_is_at_most_fifteen_times_the_work(shape: str) -> None:
    """Two runs of an nbformat 4.4 notebook (fresh cell ids each run, so cells pair up by source) where every 100th
    cell prints something else and every 1,000th was edited; ``repeated``: the sources cycle through 10
    statements, the case that made the alignment quadratic. The work is counted in Python lines executed (not
    timed: that would flake on a loaded machine); CPU seconds at 400 / 4,000 / 40,000 cells are in bench/README.md
    (``python -m bench.compare_scale``)."""
    small = python_lines(compare, *notebook_pair(1_000, shape))
    a, b = notebook_pair(10_000, shape)
    try:
        big = python_lines(compare, a, b, limit=15 * small)
    except _TooMuchWork as exc:
        pytest.fail(f"10,000 cells ({shape}): {exc}, 15 times what 1,000 cells take ({small:,})")
    assert big <= 15 * small
    result = compare(a, b)
    assert len(result.changed_outputs) == 100 and len(result.changed_sources) == 10
    assert [c.label for c in result.changed_sources][:2] == ["cell 1002", "cell 2002"]  # 2 cells before cell 1


def test_a_large_notebook_pairs_its_cells_as_difflib_does() -> None:
    """Above the size where difflib's matcher is used whole, cells still pair up as it would pair them: an
    inserted cell, a removed one, edited ones, a moved one, and a stretch of identical cells around them."""
    cells = [cell(f"x_{i} = {i}", [stream(f"{i}\n")]) for i in range(1_500)]
    cells[700:700] = [cell("pass") for _ in range(40)]  # 40 identical cells: no source to anchor them on
    a = notebook(copy.deepcopy(cells))
    changed = copy.deepcopy(cells)
    changed.insert(100, cell("inserted = True"))
    del changed[401]
    changed[900]["source"] = "x_edited = 1"
    changed.insert(1_300, changed.pop(50))  # moved down
    changed[720:720] = [cell("pass")]
    b = notebook(changed, sha="bbb")
    for c in a["cells"] + b["cells"]:
        del c["id"]  # an nbformat 4.4 input: cells pair up by source

    def key(c: dict[str, Any]) -> str:
        return f"{c['cell_type']}\0{c['source']}"

    opcodes = difflib.SequenceMatcher(None, [key(c) for c in a["cells"]], [key(c) for c in b["cells"]],
                                      autojunk=False).get_opcodes()
    expected = [(i1 + k + 1 if i1 + k < i2 else None, j1 + k + 1 if j1 + k < j2 else None)
                for _, i1, i2, j1, j2 in opcodes for k in range(max(i2 - i1, j2 - j1))]
    assert [(c.a, c.b) for c in compare(a, b).cells] == expected


def test_a_long_cell_is_diffed_on_its_first_lines_and_the_comparison_says_so() -> None:
    """A cell printing 30,000 lines: the line diff covers its first lines (what the page and the terminal can
    show anyway), the cell is still "changed" when only later lines differ, and both say what was left out."""
    lines = [f"row {i}: ok\n" for i in range(30_000)]
    late = lines[:29_000] + ["row 29000: CHANGED\n"] + lines[29_001:]
    early = ["row 0: CHANGED\n"] + lines[1:]
    a = notebook([cell("show(rows)", [stream("".join(lines))]), cell("show(rows)", [stream("".join(lines))])])
    b = notebook([cell("show(rows)", [stream("".join(early))]), cell("show(rows)", [stream("".join(late))])])
    result = compare(a, b)
    first, second = result.changed_outputs
    assert first.output_diff[:3] == ("@@ -1,2 +1,2 @@", "-[stdout] row 0: ok", "+[stdout] row 0: CHANGED")
    assert second.output_diff == ()  # the difference lies beyond the lines compared
    for c in (first, second):
        assert c.diff_notes == ("output: compared line by line on its first 10,000 lines only (A has 30,000, "
                                "B 30,000)",)
    assert result.limits == ("2 cells were compared line by line on their first 10,000 lines only.",)
    assert result.to_json()["limits"] == list(result.limits)


def test_the_comparison_stops_diffing_lines_once_it_has_diffed_enough() -> None:
    """Twelve cells of 10,000 changed lines each: the first ones are diffed, the rest are reported as changed
    with no line diff, and the comparison says why."""
    def run(word: str) -> dict[str, Any]:
        return notebook([cell(f"report({k})", [stream("".join(f"{k}.{i} {word}\n" for i in range(10_000)))])
                         for k in range(12)])

    result = compare(run("ok"), run("CHANGED"))
    assert len(result.changed_outputs) == 12
    diffed = [c for c in result.changed_outputs if c.output_diff]
    skipped = [c for c in result.changed_outputs if not c.output_diff]
    assert len(diffed) == 5 and len(skipped) == 7
    assert skipped[0].diff_notes == ("output: not compared line by line: the comparison's limit of 100,000 lines "
                                     "was reached (A has 10,000, B 10,000)",)
    assert result.limits == ("7 cells were not compared line by line: the comparison's limit of 100,000 lines was "
                             "reached.",)


def test_diff_of_two_40000_cell_runs_in_the_terminal(tmp_path: Path) -> None:
    """``airflow-notebook diff`` as a user runs it, on two runs of a 40,000-cell notebook whose sources repeat
    (the size the quadratic alignment took minutes for), and on a cell of 30,000 lines: it answers, pairs every
    cell, and says what it did not diff line by line. Not timed: the subprocess has the suite's generous guard."""
    files = {}
    for name, (n, shape) in {"big": (40_000, "repeated"), "long": (1_200, "lines")}.items():
        for side in "ab":
            files[name + side] = tmp_path / f"{name}-{side}.ipynb"
            files[name + side].write_text(json.dumps(scale_notebook(n, shape, side)))
    big = subprocess.run([EXE, "diff", str(files["biga"]), str(files["bigb"]), "--json"], capture_output=True,
                         text=True, timeout=600)
    assert big.returncode == 1, big.stderr
    report = json.loads(big.stdout)
    assert len(report["cells"]) == 40_002 and not any(c["cell_a"] is None or c["cell_b"] is None
                                                      for c in report["cells"])
    assert len(report["changed_outputs"]) == 400 and len(report["input"]["changed_cells"]) == 40
    assert report["limits"] == []
    long = subprocess.run([EXE, "diff", str(files["longa"]), str(files["longb"])], capture_output=True, text=True,
                          timeout=600)
    assert long.returncode == 1, long.stderr
    assert "Limits: 1 cell was compared line by line on its first 10,000 lines only.\n" in long.stdout
    assert "      (output: compared line by line on its first 10,000 lines only (A has 30,000, B 30,000))\n" \
        in long.stdout
    assert "      -[stdout] row 999: ok\n      +[stdout] row 999: CHANGED\n" in long.stdout
