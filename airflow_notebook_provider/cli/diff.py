"""``diff``: what changed between two runs (``notebook.compare``, the comparison the viewer's "Compare" page shows),
for two output notebooks given as paths, URLs or viewer links. Exit status as ``diff``'s: 0 same, 1 different."""

from __future__ import annotations

import argparse
import json
from typing import Any

from airflow_notebook_provider.cli.debug import fetch
from airflow_notebook_provider.cli.untrusted import echo
from airflow_notebook_provider.engine import load
from airflow_notebook_provider.notebook.compare import CellComparison, Comparison, compare


def cmd_diff(args: argparse.Namespace) -> int:
    notebooks = []
    for location in (args.a, args.b):
        found, data = fetch(location, args.conn_id)
        notebooks.append((found, load(data, found)))
    (loc_a, nb_a), (loc_b, nb_b) = notebooks
    result = compare(nb_a, nb_b, label_a=loc_a, label_b=loc_b)
    echo(json.dumps(result.to_json(), indent=2, default=str) if args.json else format_comparison(result))
    return 0 if result.same else 1


def _value(value: Any, present: bool) -> str:
    return json.dumps(value, default=str) if present else "(not set)"


def _seconds(value: float | None) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _indent(lines: Any, prefix: str = "      ") -> list[str]:
    return [prefix + line for line in lines]


def _notes(cell: CellComparison, what: str) -> list[str]:
    """The cell's notes on what its ``what`` ("source", "output") diff leaves out, as indented lines."""
    return _indent(f"({note})" for note in cell.diff_notes if note.startswith(f"{what}:"))


def format_comparison(c: Comparison) -> str:
    """The comparison as the terminal shows it, in the issue's order: parameters, input, outputs, status, times;
    first, what the caps on line diffs left out, if anything."""
    lines = [f"A  {c.a}  ({c.status_a}, {_seconds(c.duration_a)} s)",
             f"B  {c.b}  ({c.status_b}, {_seconds(c.duration_b)} s)", ""]
    if c.limits:
        lines += [f"Limits: {' '.join(c.limits)}", ""]
    if c.parameters:
        lines.append(f"Parameters: {len(c.parameters)} differ")
        width = max(len(p.name) for p in c.parameters)
        lines += [f"  {p.name:<{width}}  {_value(p.a, p.in_a)} → {_value(p.b, p.in_b)}" for p in c.parameters]
    else:
        lines.append("Parameters: same")
    if c.version_note:
        lines.append(c.version_note)
    sha_a, sha_b = (c.input_sha256_a or "?")[:12], (c.input_sha256_b or "?")[:12]
    if c.input_changed:
        changed = c.changed_sources
        lines.append(f"Input notebook: changed (sha256 {sha_a}… → {sha_b}…); {len(changed)} cells differ")
        for cell in changed:
            lines.append(f"  {cell.label}: {cell.first_line[:70]}")
            lines += _indent(cell.source_diff) + _notes(cell, "source")
    else:
        lines.append(f"Input notebook: unchanged (sha256 {sha_a}…)")
    outputs = c.changed_outputs
    lines.append(f"Outputs: {len(outputs)} cells differ" if outputs else "Outputs: same")
    for cell in outputs:
        what = " (images changed)" if cell.images_changed else ""
        lines.append(f"  {cell.label}{what}: {cell.first_line[:70]}")
        lines += _indent(cell.output_diff) + _notes(cell, "output")
    first = c.first_status_difference
    if first is not None:
        lines.append(f"First cell whose status differs: {first.label}: {first.status_a or '-'} → "
                     f"{first.status_b or '-'}  ({first.first_line[:60]})")
    else:
        lines.append(f"Cell statuses: same (runs {c.status_a} / {c.status_b})")
    lines += ["", f"{'cell':>9}  {'status A':<10} {'status B':<10} {'s A':>8} {'s B':>8}  source"]
    lines += [_row(cell) for cell in c.cells if cell.cell_type == "code"]
    lines.append("")
    lines.append("Same (times aside)." if c.same else "Different.")
    return "\n".join(lines)


def _row(cell: CellComparison) -> str:
    cell_no = str(cell.a if cell.a == cell.b else f"{cell.a or '-'}→{cell.b or '-'}")
    mark = "*" if cell.status_differs or not cell.outputs_equal or cell.source_changed else " "
    return (f"{mark}{cell_no:>8}  {cell.status_a or '-':<10} {cell.status_b or '-':<10} "
            f"{_seconds(cell.duration_a):>8} {_seconds(cell.duration_b):>8}  {cell.first_line[:50]}")
