"""Time and memory per cell as pictures: the chart in an attempt's header, the task's history page, and the
per-cell difference on the compare page. The figures are what ``engine.resources`` recorded in each cell
(``notebook.resources.cell_costs``); the drawing is ``charts``'.

The history page (``/history``) answers "which cell got slow, and since when": the task's last N attempts across
its runs (``attempts.task_tries``) as bars of duration coloured by state, and the durations of the 5 slowest cells
across those attempts as lines. Each attempt's notebook is read as the attempt page reads it (``loading.load_attempt``); a
finished attempt's figures are kept in memory (its notebook is immutable), so a reload reads only new attempts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_notebook_provider.notebook.compare import Comparison
from airflow_notebook_provider.notebook.resources import CellCost, cell_costs
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import charts
from airflow_notebook_provider.viewer.attempts import IN_PROGRESS_STATES, TaskTry, ViewerError, task_tries
from airflow_notebook_provider.viewer.page import FAILING_ANCHOR, FRAME_NAME, _head, _state, esc

DEFAULT_ATTEMPTS = 50
MAX_ATTEMPTS = 200
_CACHE_ENTRIES = 2_000
_cache: OrderedDict[tuple[str, str, str, int, int], list[CellCost] | None] = OrderedDict()
_cache_lock = threading.Lock()


def _bar_title(c: CellCost) -> str:
    """A bar's tooltip: the figures only, not the cell's source (the header shows the run's record; the notebook's
    own text stays in its frame)."""
    parts = [f"cell {c.position}" + (" (failed)" if c.failed else ""), charts.seconds(c.duration_s)]
    if c.peak_rss_bytes is not None:
        parts.append(f"peak {charts.megabytes(c.peak_rss_bytes)}")
    if c.cpu_s is not None:
        parts.append(f"CPU {charts.seconds(c.cpu_s)}")
    return ", ".join(parts)


def cell_anchor(c: CellCost) -> str | None:
    """The fragment of the cell in the rendered notebook (nbconvert's ``cell-id=<id>``; the failing cell's id is
    replaced by ``page``'s marker), or None for a cell without a valid id."""
    if c.failed:
        return FAILING_ANCHOR
    return f"cell-id={c.cell_id}" if c.cell_id else None


def cell_figure(notebook: Mapping[str, Any], frame_url: str, history_url: str) -> str:
    """The header's chart: a bar per executed code cell (its duration; a click scrolls the notebook's frame to
    it), the kernel's peak memory as a line, the failing cell marked; and the link to the task's history."""
    history = f"<a href='{esc(history_url)}' id='anp-history-link'>History of this task</a>"
    costs = cell_costs(notebook)
    if not costs:
        return f"<div class='anp-attempts'>{history}</div>"
    bars = [charts.Bar(label=f"{c.position}", value=c.duration_s or 0.0, title=_bar_title(c),
                       second=c.peak_rss_bytes / 2**20 if c.peak_rss_bytes is not None else None, failed=c.failed,
                       href=f"{frame_url}#{a}" if (a := cell_anchor(c)) else None) for c in costs]
    measured = any(c.peak_rss_bytes is not None for c in costs)
    svg = charts.bar_chart(bars, label="Duration and peak memory per code cell", y_label="seconds",
                           second_label="peak MB" if measured else "", x_label="code cell (position in notebook)",
                           target=FRAME_NAME, chart_id="anp-cells-chart")
    note = ("Bars: each code cell's duration (click one to jump to it); line: the kernel's peak memory. "
            if measured else "Bars: each code cell's duration (click one to jump to it). Memory not measured: "
            "the kernel is not a process on the worker (e.g. on a Jupyter gateway). ")
    return charts.figure("Time and memory per cell", svg, figure_id="anp-cells", note=esc(note) + history)


def _costs_of(ti: TaskInstanceId, t: TaskTry) -> list[CellCost] | None:
    from airflow_notebook_provider.viewer.loading import load_attempt

    key = (ti.dag_id, t.run_id, ti.task_id, ti.map_index, t.try_number)
    final = (t.state or "") not in IN_PROGRESS_STATES and t.state is not None
    with _cache_lock:
        if final and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        costs: list[CellCost] | None = cell_costs(load_attempt(TaskInstanceId(ti.dag_id, t.run_id, ti.task_id, ti.map_index),
                                                       t.try_number).notebook)
    except ViewerError:
        costs = None  # removed, too large, unreachable: the attempt is listed without cell figures
    if final:
        with _cache_lock:
            _cache[key] = costs
            while len(_cache) > _CACHE_ENTRIES:
                _cache.popitem(last=False)
    return costs


@dataclass(frozen=True)
class Point:
    """One attempt on the history page."""

    run_id: str
    try_number: int
    state: str | None
    start: datetime | None
    duration: float | None
    cells: list[CellCost] | None


def gather(ti: TaskInstanceId, limit: int) -> list[Point]:
    """The task's last ``limit`` attempts across its runs, oldest first, with each one's cell figures."""
    points = []
    for t in reversed(task_tries(ti.dag_id, ti.task_id, ti.map_index, limit=limit)):
        duration = (t.end_date - t.start_date).total_seconds() if t.start_date and t.end_date else None
        points.append(Point(t.run_id, t.try_number, t.state, t.start_date, duration, _costs_of(ti, t)))
    return points


def _key(c: CellCost) -> str:
    return c.cell_id or f"#{c.position}"


def slowest(points: Sequence[Point], n: int = charts.SERIES) -> list[tuple[str, str, list[float | None]]]:
    """The ``n`` cells with the longest duration in any of the attempts: (key, label, duration per attempt)."""
    worst: dict[str, float] = {}
    labels: dict[str, str] = {}
    for p in points:
        for c in p.cells or []:
            k = _key(c)
            worst[k] = max(worst.get(k, 0.0), c.duration_s or 0.0)
            labels[k] = f"cell {c.position}: {c.first_line[:48]}" if c.first_line else f"cell {c.position}"
    keys = sorted(worst, key=lambda k: -worst[k])[:n]
    series = []
    for k in keys:
        values = [next((c.duration_s for c in p.cells or [] if _key(c) == k), None) for p in points]
        series.append((k, labels[k], values))
    return series


def _when(p: Point) -> str:
    return p.start.strftime("%Y-%m-%d %H:%M") if p.start else "?"


def history_page(ti: TaskInstanceId, points: Sequence[Point], *, limit: int, view_url: Callable[[str, int], str],
                 back_url: str | None) -> str:
    """The history page: attempts over time (bars: duration, colour: state; click: the attempt), the 5 slowest
    cells' durations across them (lines), and the attempts as a table."""
    title = f"History of {ti.task_id} — {ti.dag_id}"
    parts = [f"<h1>{esc(title)}</h1><div class='anp-actions'>"
             + (f"<a href='{esc(back_url)}' id='anp-back-to-view'>Back to the notebook</a>" if back_url else "")
             + "</div>",
             f"<p id='anp-history-count'>The last {len(points)} attempts (at most {limit}; <code>?limit=</code> "
             f"up to {MAX_ATTEMPTS}), oldest first.</p>"]
    if points:
        bars = [charts.Bar(label=_when(p), value=p.duration or 0.0, css=charts.state_css(p.state),
                           title=f"{_when(p)} · run {p.run_id}, attempt {p.try_number}: {p.state or 'no state'}, "
                                 f"{charts.seconds(p.duration)}",
                           href=view_url(p.run_id, p.try_number)) for p in points]
        svg = charts.bar_chart(bars, label="Duration and state of each attempt", y_label="seconds",
                               x_label="attempts over time (colour: state)", chart_id="anp-history-chart",
                               label_each=False)
        key = " ".join(f"{_state(s)}" for s in ("success", "failed", "up_for_retry"))
        parts.append(charts.figure("Attempts: duration and state", svg, figure_id="anp-history",
                                   note=f"Colour by state: {key}, grey for any other. Click a bar to open it."))
        series = slowest(points)
        if series:
            lines = [charts.Series(label, values) for _, label, values in series]
            svg = charts.line_chart(lines, [_when(p) for p in points], label="Durations of the slowest cells",
                                    y_label="seconds", x_label="attempts over time", chart_id="anp-slowest-chart")
            parts.append(charts.figure(f"The {len(series)} slowest cells across these attempts", svg,
                                       figure_id="anp-slowest"))
    rows = "".join(
        f"<tr><td>{esc(_when(p))}</td><td><code>{esc(p.run_id)}</code></td><td class='num'>{p.try_number}</td>"
        f"<td>{_state(p.state)}</td><td class='num'>{esc(charts.seconds(p.duration))}</td>"
        f"<td class='num'>{esc(charts.megabytes(_peak(p)))}</td>"
        f"<td><a href='{esc(view_url(p.run_id, p.try_number))}'>open</a></td></tr>" for p in reversed(points))
    parts.append("<h2>Attempts, newest first</h2><table id='anp-history-table'><tr><th>Started</th><th>Run</th>"
                 "<th>Attempt</th><th>State</th><th>Duration</th><th>Peak memory</th><th></th></tr>"
                 f"{rows}</table>")
    return (f"{_head(title)}<body class='anp-compare-page'><div class='anp-compare' id='anp-history-page'>"
            f"{''.join(parts)}</div></body></html>")


def _peak(p: Point) -> int | None:
    peaks = [c.peak_rss_bytes for c in p.cells or [] if c.peak_rss_bytes is not None]
    return max(peaks) if peaks else None


def compare_figure(c: Comparison, nb_a: Mapping[str, Any], nb_b: Mapping[str, Any]) -> str:
    """The compare page's chart: per code cell present in both, B's duration and peak memory minus A's."""
    costs_a = {x.position: x for x in cell_costs(nb_a)}
    costs_b = {x.position: x for x in cell_costs(nb_b)}
    pairs = [(cell.label, costs_a[cell.a], costs_b[cell.b]) for cell in c.cells
             if cell.cell_type == "code" and cell.a in costs_a and cell.b in costs_b]
    if not pairs:
        return ""
    time_bars = [charts.Bar(label=label.removeprefix("cell "), value=(b.duration_s or 0.0) - (a.duration_s or 0.0),
                            title=f"{label}: {charts.seconds(a.duration_s)} → {charts.seconds(b.duration_s)}")
                 for label, a, b in pairs]
    svg = charts.diff_chart(time_bars, label="Duration per cell, B minus A", y_label="Δ seconds",
                            x_label="code cell (up: B slower)", chart_id="anp-diff-time")
    mem = [(label, a, b) for label, a, b in pairs if a.peak_rss_bytes is not None and b.peak_rss_bytes is not None]
    if mem:
        mem_bars = [charts.Bar(label=label.removeprefix("cell "),
                               value=((b.peak_rss_bytes or 0) - (a.peak_rss_bytes or 0)) / 2**20,
                               title=f"{label}: peak {charts.megabytes(a.peak_rss_bytes)} → "
                                     f"{charts.megabytes(b.peak_rss_bytes)}") for label, a, b in mem]
        svg += charts.diff_chart(mem_bars, label="Peak memory per cell, B minus A", y_label="Δ MB",
                                 x_label="code cell (up: B used more)", chart_id="anp-diff-memory", fmt="MB")
    return charts.figure("Time and memory per cell: B against A", svg, figure_id="anp-compare-chart")
