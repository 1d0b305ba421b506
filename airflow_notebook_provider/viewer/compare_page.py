"""The viewer's "Compare" page: ``notebook.compare`` (the comparison ``airflow-notebook diff`` prints) as HTML.

Plain HTML built here, every value escaped (``page.esc``); no notebook HTML is embedded, no inline style (its
rules are ``page.COMPARE_STYLE``, part of the viewer's one stylesheet), and the page is served with the header page's
Content-Security-Policy (``responses.PAGE_CSP``: no script, no inline style).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow_notebook_provider.notebook.compare import CellComparison, Comparison
from airflow_notebook_provider.viewer.page import _duration, _head, _state, esc


def _diff(lines: Sequence[str]) -> str:
    spans = []
    for line in lines:
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else "hunk" if line.startswith("@@") else ""
        spans.append(f"<span class='{cls}'>{esc(line) or '&nbsp;'}</span>")
    return f"<div class='anp-diff'>{''.join(spans)}</div>"


def _value(value: Any, present: bool) -> str:
    return f"<code>{esc(json.dumps(value, default=str))}</code>" if present else "<i>not set</i>"


def _seconds(value: float | None) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else "—"


def _notes(cell: CellComparison, what: str) -> str:
    """What the caps left out of the cell's ``what`` ("source", "output") diff."""
    return "".join(f"<p class='anp-note'>{esc(note)}</p>" for note in cell.diff_notes if note.startswith(f"{what}:"))


def _cell_head(cell: CellComparison) -> str:
    return f"<b>{esc(cell.label)}</b> <code>{esc(cell.first_line[:80])}</code>"


def render(
    c: Comparison,
    *,
    title: str,
    side_a: tuple[str, str, str | None],
    side_b: tuple[str, str, str | None],
    choices: Sequence[tuple[str, str, bool]],
    back_url: str,
    chart: str = "",
) -> str:
    """The page. ``side_*`` are (label, viewer URL, Airflow state); ``choices`` (label, compare URL, current);
    ``chart``: the per-cell time and memory difference (``history.compare_figure``), HTML already escaped."""
    def side(name: str, s: tuple[str, str, str | None], status: str, duration: float | None) -> str:
        label, url, state = s
        return (f"<tr><th>{name}</th><td><a href='{esc(url)}'>{esc(label)}</a></td><td>{_state(state)}</td>"
                f"<td>notebook {esc(status)}</td><td class='num'>{esc(_duration(duration))}</td></tr>")

    parts = [f"<h1>{esc(title)}</h1>",
             f"<div class='anp-actions'><a href='{esc(back_url)}' id='anp-back-to-view'>Back to the notebook</a></div>",
             "<table id='anp-sides'>", side("A", side_a, c.status_a, c.duration_a),
             side("B", side_b, c.status_b, c.duration_b), "</table>",
             f"<p id='anp-verdict' class='{'anp-same' if c.same else 'anp-changed'}'>"
             f"{'Same parameters, input, outputs and statuses (times aside).' if c.same else 'These runs differ.'}</p>"]
    if c.limits:  # what the caps on line diffs left out: said first, so no one reads a partial diff as whole
        parts.append(f"<p id='anp-limits' class='anp-note'>Line diffs limited: {esc(' '.join(c.limits))}</p>")

    parts.append("<h2>Parameters that differ</h2>")
    if c.parameters:
        parts.append("<table id='anp-param-diff'><tr><th>Parameter</th><th>A</th><th>B</th></tr>" + "".join(
            f"<tr><td><code>{esc(p.name)}</code></td><td>{_value(p.a, p.in_a)}</td><td>{_value(p.b, p.in_b)}</td></tr>"
            for p in c.parameters) + "</table>")
    else:
        parts.append("<p id='anp-param-diff' class='anp-same'>None: both ran with the same parameters.</p>")

    parts.append("<h2>Input notebook</h2><div id='anp-input'>")
    if c.version_note:
        parts.append(f"<p id='anp-versions' class='anp-changed'>{esc(c.version_note)}</p>")
    sha = f"<code>{esc(c.input_sha256_a or '?')}</code>"
    if c.input_changed:
        parts.append(f"<p class='anp-changed'>Changed: sha256 {sha} → <code>{esc(c.input_sha256_b or '?')}</code>"
                     f"; {len(c.changed_sources)} cells differ.</p>")
        for cell in c.changed_sources:
            added = cell.a is None or cell.b is None
            diff = _diff(cell.source_diff or ["(cell added or removed)"]) if cell.source_diff or added else ""
            parts.append(f"<div>{_cell_head(cell)}</div>{diff}{_notes(cell, 'source')}")
    else:
        parts.append(f"<p class='anp-same'>Unchanged (sha256 {sha}).</p>")
    parts.append("</div>")

    parts.append("<h2>Outputs</h2><div id='anp-outputs'>")
    if c.changed_outputs:
        parts.append(f"<p>{len(c.changed_outputs)} cells have different outputs.</p>")
        for cell in c.changed_outputs:
            images = " <span class='anp-changed'>images changed</span>" if cell.images_changed else ""
            parts.append(f"<div>{_cell_head(cell)}{images}</div>")
            if cell.output_diff:
                parts.append(_diff(cell.output_diff))
            parts.append(_notes(cell, "output"))
    else:
        parts.append("<p class='anp-same'>Every cell has the same outputs.</p>")
    parts.append("</div>")

    first = c.first_status_difference
    parts.append("<h2>First cell whose status differs</h2>")
    if first is not None:
        parts.append(f"<p id='anp-first-status'>{_cell_head(first)} — {esc(first.status_a or '—')} in A, "
                     f"{esc(first.status_b or '—')} in B.</p>")
    else:
        parts.append("<p id='anp-first-status' class='anp-same'>None: every cell ended the same way.</p>")

    parts.append(chart)
    parts.append("<h2>Cells side by side</h2><table id='anp-cells'><tr><th>Cell</th><th>Status A</th>"
                 "<th>Status B</th><th>Duration A</th><th>Duration B</th><th>Source</th></tr>")
    for cell in c.cells:
        if cell.cell_type != "code":
            continue
        classes = " ".join(x for x in ("anp-first" if cell is first else "",
                                       "anp-differs" if (cell.status_differs or not cell.outputs_equal
                                                         or cell.source_changed) else "") if x)
        parts.append(f"<tr class='{classes}'><td>{esc(cell.label)}</td><td>{esc(cell.status_a or '—')}</td>"
                     f"<td>{esc(cell.status_b or '—')}</td><td class='num'>{_seconds(cell.duration_a)}</td>"
                     f"<td class='num'>{_seconds(cell.duration_b)}</td><td><code>{esc(cell.first_line[:80])}</code>"
                     "</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Compare with another attempt</h2><ul class='anp-pick' id='anp-pick'>" + "".join(
        f"<li><a{' class=anp-current' if current else ''} href='{esc(url)}'>{esc(label)}</a></li>"
        for label, url, current in choices) + "</ul>")
    return (f"{_head(title)}<body class='anp-compare-page'><div class='anp-compare' id='anp-compare'>"
            f"{''.join(parts)}</div></body></html>")
