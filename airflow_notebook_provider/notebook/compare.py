"""What changed between two runs of a notebook: parameters, the input notebook, each cell's outputs, status and time.

One comparison, read from two output notebooks (plain JSON or ``NotebookNode``), used by the viewer's "Compare"
page and by ``airflow-notebook diff``, so both say the same thing. Pure: no kernel, no I/O, no Airflow.

Why not nbdime: its diff is a generic structural patch of the JSON (``addrange``/``patch`` operations on paths)
that would still have to be mapped back to "this cell's outputs differ"; it knows nothing of papermill's record
(statuses, durations, the injected cell, the error banner); and it brings jupyter_server, tornado and GitPython
into Airflow's api-server. Cells are aligned here over cell ids (or sources), which is what nbdime does for cells
too, in a hundred lines over nbformat's JSON.

Cost: near-linear in cells and lines, whatever the notebooks (``engine.align``: difflib for normal sizes, anchors on
unique cells beyond). What is diffed line by line is capped (``MAX_LINES_PER_CELL`` lines of each side of a cell,
``MAX_LINES`` in all); a cell beyond the caps is still reported as changed, and ``Comparison.limits`` says what was
left out, for the page and the terminal to show.

Cells are numbered as the rest of the tool numbers them (``record.read_run``): 1-based among the notebook's own
cells, papermill's error-banner cells left out, the injected parameters cell counted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_notebook_provider.notebook.align import matching_blocks, opcodes, unified
from airflow_notebook_provider.notebook.origin import NotebookOrigin, read_origin, version_difference
from airflow_notebook_provider.notebook.parameters import INJECTED_TAG
from airflow_notebook_provider.notebook.record import is_banner, read_run
from airflow_notebook_provider.notebook.text import printable

DIFF_CONTEXT = 1
"""Unchanged lines shown around each change of a line diff."""
MAX_DIFF_LINES = 200
"""Lines of one cell's diff kept; the rest is summed up in one line (a 100 MB output must not become the page)."""
MAX_LINE_CHARS = 2_000
"""Characters of one diff line kept; the rest is summed up at its end."""
MAX_LINES_PER_CELL = 10_000
"""Lines of each side of one cell's source or outputs compared line by line; beyond them a cell is diffed on its first
lines only (more than a page shows: ``MAX_DIFF_LINES``)."""
MAX_LINES = 100_000
"""Lines compared line by line in one comparison (both sides, every cell); a cell that would go beyond is reported
as changed without a line diff."""
_TEXT_TYPES = ("text/plain", "text/markdown", "text/latex", "application/json", "text/html")


@dataclass(frozen=True)
class ParameterChange:
    name: str
    a: Any
    b: Any
    in_a: bool
    in_b: bool


@dataclass(frozen=True)
class CellComparison:
    """One cell of A paired with one of B (or present in one of them only)."""

    a: int | None
    """Position in A (1-based, banners left out); None: the cell is only in B."""
    b: int | None
    cell_type: str
    first_line: str
    injected: bool
    """The injected parameters cell: its source follows the parameters, so it is not part of the input's changes."""
    sources_equal: bool
    source_diff: tuple[str, ...]
    """Unified line diff of the source (no header); empty when the sources are equal (or beyond the caps)."""
    outputs_equal: bool
    output_diff: tuple[str, ...]
    """Line diff of the cell's text outputs (streams, results, errors); empty when they are equal."""
    images_changed: bool
    status_a: str | None
    status_b: str | None
    duration_a: float | None
    duration_b: float | None
    diff_notes: tuple[str, ...] = ()
    """What the line diffs above leave out (the caps), e.g. ``output: compared line by line on its first … lines``."""

    @property
    def label(self) -> str:
        """``cell 5``, ``cell 5 → 6`` (moved), ``cell 5 (only in A)``."""
        if self.b is None:
            return f"cell {self.a} (only in A)"
        if self.a is None:
            return f"cell {self.b} (only in B)"
        return f"cell {self.a}" if self.a == self.b else f"cell {self.a} → {self.b}"

    @property
    def source_changed(self) -> bool:
        return not self.injected and (self.a is None or self.b is None or not self.sources_equal)

    @property
    def status_differs(self) -> bool:
        return self.status_a != self.status_b

    def to_json(self) -> dict[str, Any]:
        return {
            "cell_a": self.a, "cell_b": self.b, "label": self.label, "type": self.cell_type,
            "first_line": self.first_line, "injected_parameters": self.injected,
            "source_changed": self.source_changed, "source_diff": list(self.source_diff),
            "outputs_equal": self.outputs_equal, "output_diff": list(self.output_diff),
            "images_changed": self.images_changed, "status_a": self.status_a, "status_b": self.status_b,
            "duration_a": self.duration_a, "duration_b": self.duration_b, "diff_notes": list(self.diff_notes),
        }


@dataclass(frozen=True)
class Comparison:
    """A against B, in the order a reader asks: parameters, input notebook, outputs, first status change, times."""

    a: str
    b: str
    status_a: str
    status_b: str
    duration_a: float | None
    duration_b: float | None
    parameters: tuple[ParameterChange, ...]
    input_path_a: str | None
    input_path_b: str | None
    input_sha256_a: str | None
    input_sha256_b: str | None
    cells: tuple[CellComparison, ...] = field(repr=False)
    cells_cut: int = 0
    """Cells compared line by line on their first ``MAX_LINES_PER_CELL`` lines only."""
    cells_not_diffed: int = 0
    """Changed cells given no line diff: ``MAX_LINES`` were compared already."""
    origin_a: NotebookOrigin | None = None
    origin_b: NotebookOrigin | None = None
    """Which bundle version of the notebook each run ran (``notebook.origin``), when it came from a DAG bundle."""

    @property
    def version_note(self) -> str | None:
        """A sentence when the runs ran different versions of their notebook (with the version of each), else None."""
        return version_difference(self.origin_a, self.origin_b)

    @property
    def limits(self) -> tuple[str, ...]:
        """What the caps left out, one sentence each (empty when every change was diffed whole)."""
        notes = []
        if self.cells_cut:
            notes.append(f"{_cells(self.cells_cut)} compared line by line on "
                         f"{'their' if self.cells_cut > 1 else 'its'} first {MAX_LINES_PER_CELL:,} lines only.")
        if self.cells_not_diffed:
            notes.append(f"{_cells(self.cells_not_diffed)} not compared line by line: the comparison's limit of "
                         f"{MAX_LINES:,} lines was reached.")
        return tuple(notes)

    @property
    def input_changed(self) -> bool:
        """Different input sha256; where one side recorded none (a papermill output), different cell sources."""
        if self.input_sha256_a and self.input_sha256_b:
            return self.input_sha256_a != self.input_sha256_b
        return bool(self.changed_sources)

    @property
    def changed_sources(self) -> list[CellComparison]:
        return [c for c in self.cells if c.source_changed]

    @property
    def changed_outputs(self) -> list[CellComparison]:
        return [c for c in self.cells if not c.outputs_equal]

    @property
    def first_status_difference(self) -> CellComparison | None:
        return next((c for c in self.cells if c.status_differs), None)

    @property
    def same(self) -> bool:
        """Nothing differs but times: same parameters, input, outputs, statuses (what ``diff`` exits 0 for)."""
        return (not self.parameters and not self.input_changed and not self.changed_sources
                and not self.changed_outputs and self.first_status_difference is None
                and self.status_a == self.status_b)

    def to_json(self) -> dict[str, Any]:
        first = self.first_status_difference
        return {
            "a": self.a, "b": self.b, "same": self.same,
            "status": {"a": self.status_a, "b": self.status_b},
            "duration": {"a": self.duration_a, "b": self.duration_b},
            "parameters": [{"name": p.name, "a": p.a, "b": p.b, "in_a": p.in_a, "in_b": p.in_b}
                           for p in self.parameters],
            "input": {"changed": self.input_changed, "path_a": self.input_path_a, "path_b": self.input_path_b,
                      "sha256_a": self.input_sha256_a, "sha256_b": self.input_sha256_b,
                      "changed_cells": [c.label for c in self.changed_sources],
                      "version_a": self.origin_a.to_json() if self.origin_a else None,
                      "version_b": self.origin_b.to_json() if self.origin_b else None,
                      "versions_differ": self.version_note is not None},
            "changed_outputs": [c.label for c in self.changed_outputs],
            "first_status_difference": first.to_json() if first else None,
            "limits": list(self.limits),
            "cells": [c.to_json() for c in self.cells],
        }


def _cells(n: int) -> str:
    return f"{n:,} cells were" if n > 1 else "1 cell was"


class _Budget:
    """The lines a comparison may still diff, and what the caps left out (per cell, and cells counted)."""

    def __init__(self) -> None:
        self.left = MAX_LINES
        self.cut = self.not_diffed = 0
        self.notes: list[str] = []
        self._cut = self._not_diffed = False

    def diff(self, what: str, a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
        """``line_diff`` of ``a`` and ``b`` within the caps; a note for what it leaves out."""
        sizes = f"(A has {len(a):,}, B {len(b):,})"
        head_a, head_b = a[:MAX_LINES_PER_CELL], b[:MAX_LINES_PER_CELL]
        if len(head_a) + len(head_b) > self.left:
            self.notes.append(f"{what}: not compared line by line: the comparison's limit of {MAX_LINES:,} lines "
                              f"was reached {sizes}")
            self._not_diffed = True
            return ()
        self.left -= len(head_a) + len(head_b)
        if len(head_a) < len(a) or len(head_b) < len(b):
            self.notes.append(f"{what}: compared line by line on its first {MAX_LINES_PER_CELL:,} lines only {sizes}")
            self._cut = True
        return line_diff(head_a, head_b)

    def end_cell(self) -> tuple[str, ...]:
        """The notes of the cell just diffed; counts it among the cells cut or not diffed."""
        notes, self.notes = tuple(self.notes), []
        self.cut += self._cut
        self.not_diffed += self._not_diffed
        self._cut = self._not_diffed = False
        return notes


def compare(a: Mapping[str, Any], b: Mapping[str, Any], *, label_a: str = "A", label_b: str = "B") -> Comparison:
    """Compare output notebook ``a`` (usually the earlier run) with ``b``."""
    run_a, run_b = read_run(a), read_run(b)
    cells_a, cells_b = _own_cells(a), _own_cells(b)
    budget = _Budget()
    cells = tuple(_compare_cell(i, ca, j, cb, budget) for i, ca, j, cb in _align(cells_a, cells_b))
    return Comparison(
        a=label_a, b=label_b, status_a=run_a.status, status_b=run_b.status,
        duration_a=run_a.duration, duration_b=run_b.duration,
        parameters=tuple(_parameters(run_a.parameters, run_b.parameters)),
        input_path_a=run_a.input_path, input_path_b=run_b.input_path,
        input_sha256_a=run_a.input_sha256, input_sha256_b=run_b.input_sha256,
        cells=cells, cells_cut=budget.cut, cells_not_diffed=budget.not_diffed,
        origin_a=read_origin(a), origin_b=read_origin(b),
    )


def _parameters(a: Mapping[str, Any], b: Mapping[str, Any]) -> Iterator[ParameterChange]:
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b or _canonical(a[name]) != _canonical(b[name]):
            yield ParameterChange(name, a.get(name), b.get(name), name in a, name in b)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _own_cells(nb: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in nb.get("cells") or [] if not is_banner(c)]


def _injected(cell: Mapping[str, Any]) -> bool:
    return INJECTED_TAG in ((cell.get("metadata") or {}).get("tags") or [])


def _align(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[int | None, Mapping[str, Any] | None, int | None, Mapping[str, Any] | None]]:
    """Pair the cells of A and B: by cell id when the two share them (a notebook edited in Jupyter keeps its ids),
    else by source; within a changed stretch, cells pair up in order and the surplus is "only in A/B"."""
    ids_a = [str(c.get("id") or "") for c in a]
    ids_b = [str(c.get("id") or "") for c in b]
    shared = {i for i in ids_a if i} & {i for i in ids_b if i}
    by_id = len(shared) * 2 >= max(1, min(len(a), len(b)))
    keys_a = [ids_a[n] if by_id and ids_a[n] else _key(c) for n, c in enumerate(a)]
    keys_b = [ids_b[n] if by_id and ids_b[n] else _key(c) for n, c in enumerate(b)]
    for _op, i1, i2, j1, j2 in opcodes(matching_blocks(keys_a, keys_b, autojunk=False)):
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            yield (i + 1 if i < i2 else None, a[i] if i < i2 else None,
                   j + 1 if j < j2 else None, b[j] if j < j2 else None)


def _key(cell: Mapping[str, Any]) -> str:
    marker = "injected" if _injected(cell) else _text(cell.get("source"))
    return f"{cell.get('cell_type')}\0{marker}"


def _compare_cell(
    i: int | None, a: Mapping[str, Any] | None, j: int | None, b: Mapping[str, Any] | None, budget: _Budget
) -> CellComparison:
    some = b if b is not None else a  # the newer run names the cell
    assert some is not None
    src_a = _text(a.get("source")).splitlines() if a is not None else []
    src_b = _text(b.get("source")).splitlines() if b is not None else []
    text_a, images_a = _outputs(a)
    text_b, images_b = _outputs(b)
    pm_a = ((a.get("metadata") or {}).get("papermill") or {}) if a is not None else {}
    pm_b = ((b.get("metadata") or {}).get("papermill") or {}) if b is not None else {}
    source_diff = budget.diff("source", src_a, src_b) if src_a != src_b else ()
    output_diff = budget.diff("output", text_a, text_b) if text_a != text_b else ()
    return CellComparison(
        a=i, b=j, cell_type=str(some.get("cell_type")),
        first_line=next((ln for ln in _text(some.get("source")).splitlines() if ln.strip()), ""),
        injected=_injected(some),
        sources_equal=src_a == src_b, source_diff=source_diff,
        outputs_equal=text_a == text_b and images_a == images_b, output_diff=output_diff,
        images_changed=images_a != images_b,
        status_a=pm_a.get("status"), status_b=pm_b.get("status"),
        duration_a=pm_a.get("duration"), duration_b=pm_b.get("duration"), diff_notes=budget.end_cell(),
    )


def _outputs(cell: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """A cell's outputs as text lines (consecutive stream chunks joined: the kernel splits them at random) and
    the sha256 of each image. Execution counts and output metadata are left out: they are not what a run said."""
    if cell is None:
        return [], []
    lines: list[str] = []
    images: list[str] = []
    stream: tuple[str, list[str]] | None = None

    def flush() -> None:
        if stream is not None:
            lines.extend(f"[{stream[0]}] {ln}" for ln in "".join(stream[1]).splitlines())

    for out in cell.get("outputs") or []:
        kind = out.get("output_type")
        if kind == "stream":
            name = str(out.get("name") or "stdout")
            if stream is not None and stream[0] == name:
                stream[1].append(_text(out.get("text")))
                continue
            flush()
            stream = (name, [_text(out.get("text"))])
            continue
        flush()
        stream = None
        if kind == "error":
            lines.append(f"[error] {out.get('ename')}: {printable(out.get('evalue') or '')}")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data") or {}
            for mime, value in data.items():
                if mime.startswith("image/"):
                    images.append(hashlib.sha256(_text(value).encode()).hexdigest())
            text_mime = next((m for m in _TEXT_TYPES if m in data), None)
            if text_mime is None:
                text_mime = next((m for m in data if not m.startswith("image/")), None)
            if text_mime is not None:
                value = data[text_mime]
                text = value if isinstance(value, str | list) else json.dumps(value, sort_keys=True)
                prefix = "[result]" if kind == "execute_result" else "[display]"
                lines.extend(f"{prefix} {ln}" for ln in _text(text).splitlines())
    flush()
    return lines, images


def line_diff(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    """``difflib.unified_diff`` without its file header (``engine.align.unified``: the same diff, in near-linear
    time), cut at ``MAX_DIFF_LINES`` lines of ``MAX_LINE_CHARS`` characters."""
    lines = [_cut(line) for line in unified(a, b, DIFF_CONTEXT)]
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more diff lines"]
    return tuple(lines)


def _cut(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]} … ({len(line) - MAX_LINE_CHARS:,} more characters)"
