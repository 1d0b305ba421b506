"""The comparison behind the viewer's "Compare" and ``airflow-notebook diff``, on notebooks built by hand: cells
aligned when one was inserted, stream chunks joined, images compared by content, banners left out."""

from __future__ import annotations

import base64
import copy
from typing import Any

import nbformat

from airflow_notebook_provider.engine.compare import MAX_DIFF_LINES, compare
from airflow_notebook_provider.engine.record import ERROR_MARKER_TAG


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
