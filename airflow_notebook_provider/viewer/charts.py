"""Server-rendered SVG charts for the viewer's pages: pure functions from numbers to an SVG string.

The header, history and compare pages run no script and allow no inline style (``responses.PAGE_CSP``), so a chart
is inline SVG whose look comes from classes styled by ``STYLE`` (part of the viewer's one stylesheet), with plain
presentation attributes as a fallback. Colours are CSS variables set for the light and the dark colour scheme
(``prefers-color-scheme``) on the chart's own panel, and text and axes use ``currentColor``, so a chart reads in
either theme. Every label is escaped; every bar has a ``<title>`` (the browser's tooltip) and, when given, is a link
(``<a href>``: with ``target``, e.g. the notebook's frame, a click scrolls that frame to the cell).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

STYLE = """
.anp-chart{--anp-c-bar:#3b6fd4;--anp-c-mem:#d9730d;--anp-c-fail:#d32f2f;--anp-c-ok:#2e7d32;--anp-c-retry:#ef8f00;
 --anp-c-other:#8a8a8a;--anp-c-grid:rgba(120,120,120,.3);--anp-c-hit:rgba(0,0,0,0);--anp-c-s0:#3b6fd4;
 --anp-c-s1:#d9730d;--anp-c-s2:#2e7d32;--anp-c-s3:#8e24aa;--anp-c-s4:#00838f;
 background:#fff;color:#222;border:1px solid #ddd;border-radius:4px;padding:6px 8px;margin:8px 0;
 display:inline-block;max-width:100%;overflow-x:auto;box-sizing:border-box;vertical-align:top}
.anp-chart h2,.anp-chart h3{font-size:14px;margin:0 0 4px;font-weight:600}
.anp-chart p{margin:2px 0;font-size:12px}
.anp-chart a{color:#0b57d0}
.anp-chart svg{display:block}
.anp-chart svg text{fill:currentColor;font:11px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.anp-chart svg .anp-axis{stroke:currentColor;stroke-width:1}
.anp-chart svg .anp-grid{stroke:var(--anp-c-grid);stroke-width:1}
.anp-chart svg .anp-bar{fill:var(--anp-c-bar)}
.anp-chart svg .anp-bar-failed{fill:var(--anp-c-fail)}
.anp-chart svg .anp-state-success{fill:var(--anp-c-ok)}
.anp-chart svg .anp-state-failed{fill:var(--anp-c-fail)}
.anp-chart svg .anp-state-up_for_retry{fill:var(--anp-c-retry)}
.anp-chart svg .anp-state-other{fill:var(--anp-c-other)}
.anp-chart svg .anp-mem{fill:none;stroke:var(--anp-c-mem);stroke-width:2}
.anp-chart svg .anp-mem-dot{fill:var(--anp-c-mem)}
.anp-chart svg .anp-up{fill:var(--anp-c-fail)}
.anp-chart svg .anp-down{fill:var(--anp-c-ok)}
.anp-chart svg .anp-hit{fill:var(--anp-c-hit)}
.anp-chart svg a:hover .anp-hit,.anp-chart svg a:focus .anp-hit{fill:var(--anp-c-grid)}
.anp-chart svg .anp-fail-mark{fill:var(--anp-c-fail);font-weight:700}
.anp-chart svg .anp-key-bar{fill:var(--anp-c-bar)}
.anp-chart svg .anp-line{fill:none;stroke-width:2}
.anp-chart svg .anp-s0{stroke:var(--anp-c-s0);fill:var(--anp-c-s0)}.anp-chart svg .anp-s1{stroke:var(--anp-c-s1);fill:var(--anp-c-s1)}
.anp-chart svg .anp-s2{stroke:var(--anp-c-s2);fill:var(--anp-c-s2)}.anp-chart svg .anp-s3{stroke:var(--anp-c-s3);fill:var(--anp-c-s3)}
.anp-chart svg .anp-s4{stroke:var(--anp-c-s4);fill:var(--anp-c-s4)}
.anp-chart svg path.anp-line{fill:none}
@media (prefers-color-scheme: dark){
 .anp-chart{--anp-c-bar:#8ab4f8;--anp-c-mem:#ffb74d;--anp-c-fail:#ff6b6b;--anp-c-ok:#81c995;--anp-c-retry:#fdd663;
  --anp-c-other:#b0b0b0;--anp-c-grid:rgba(200,200,200,.25);--anp-c-s0:#8ab4f8;--anp-c-s1:#ffb74d;--anp-c-s2:#81c995;
  --anp-c-s3:#d7aefb;--anp-c-s4:#78d9ec;background:#1f2329;color:#e8eaed;border-color:#3c4043}
 .anp-chart a{color:#8ab4f8}
}
"""
# Fallback colours (presentation attributes) for an SVG seen without the stylesheet.
_BAR, _FAIL, _MEM, _OTHER = "#3b6fd4", "#d32f2f", "#d9730d", "#8a8a8a"
_STATE_FILL = {"success": "#2e7d32", "failed": _FAIL, "up_for_retry": "#ef8f00"}
SERIES = 5
_H, _TOP, _BOTTOM, _LEFT, _RIGHT = 170, 14, 34, 52, 58


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass(frozen=True)
class Bar:
    """One bar: its height (``value``), an optional second series point (``second``), its tooltip and link."""

    label: str
    value: float
    title: str
    second: float | None = None
    href: str | None = None
    failed: bool = False
    css: str = "anp-bar"


@dataclass(frozen=True)
class Series:
    """One line of a line chart: a value (or None: a gap) per x position."""

    label: str
    values: Sequence[float | None]
    href: str | None = None


def nice_max(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k at least ``value`` (an axis' top)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value * (1 - 1e-9):
            return float(step * exp)
    return float(10 * exp)


def _num(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 60 else f"{value / 60:.1f} min"


def megabytes(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f} MB"


def _link(inner: str, href: str | None, target: str | None, css: str = "") -> str:
    if not href:
        return f"<g class='{css}'>{inner}</g>" if css else f"<g>{inner}</g>"
    tgt = f" target='{esc(target)}'" if target else ""
    cls = f" class='{css}'" if css else ""
    return f"<a href='{esc(href)}'{tgt}{cls}>{inner}</a>"


def _svg(width: int, height: int, label: str, body: str, chart_id: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' id='{esc(chart_id)}' class='anp-svg' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{esc(label)}'>"
            f"<title>{esc(label)}</title>{body}</svg>")


def _y_axis(top: float, x: float, plot_w: float, label: str, *, right: bool = False, grid: bool = True,
            fmt: str = "") -> str:
    """Ticks at 0, half and the top of ``top``; ``label`` written along the axis."""
    parts = [f"<line class='anp-axis' x1='{x:.1f}' y1='{_TOP}' x2='{x:.1f}' y2='{_H - _BOTTOM}' stroke='#888'/>"]
    plot_h = _H - _TOP - _BOTTOM
    for frac in (0.0, 0.5, 1.0):
        y = _H - _BOTTOM - frac * plot_h
        value = top * frac
        text = _num(value) + fmt
        if grid and frac > 0:
            parts.append(f"<line class='anp-grid' x1='{_LEFT}' y1='{y:.1f}' x2='{_LEFT + plot_w:.1f}' y2='{y:.1f}' "
                         "stroke='#ddd'/>")
        anchor, tx = ("start", x + 4) if right else ("end", x - 4)
        parts.append(f"<text x='{tx:.1f}' y='{y + 4:.1f}' text-anchor='{anchor}'>{esc(text)}</text>")
    lx = x + 46 if right else x - 40
    ly = _TOP + plot_h / 2
    parts.append(f"<text class='anp-axis-label' x='{lx:.1f}' y='{ly:.1f}' text-anchor='middle' "
                 f"transform='rotate(-90 {lx:.1f} {ly:.1f})'>{esc(label)}</text>")
    return "".join(parts)


def _x_axis(plot_w: float, label: str, first: str = "", last: str = "") -> str:
    y = _H - _BOTTOM
    parts = [f"<line class='anp-axis' x1='{_LEFT}' y1='{y}' x2='{_LEFT + plot_w:.1f}' y2='{y}' stroke='#888'/>",
             f"<text class='anp-axis-label' x='{_LEFT + plot_w / 2:.1f}' y='{_H - 4}' text-anchor='middle'>"
             f"{esc(label)}</text>"]
    if first:
        parts.append(f"<text x='{_LEFT}' y='{y + 13}' text-anchor='start'>{esc(first)}</text>")
    if last:
        parts.append(f"<text x='{_LEFT + plot_w:.1f}' y='{y + 13}' text-anchor='end'>{esc(last)}</text>")
    return "".join(parts)


def _slot(n: int, *, min_slot: float = 6.0, max_slot: float = 28.0, min_plot: float = 360.0) -> tuple[float, float]:
    """(slot width, plot width) for ``n`` bars: the plot at least ``min_plot`` wide, the slots filling it."""
    slot = max(min_slot, min(max_slot, 900.0 / max(n, 1)))
    plot_w = max(min_plot, slot * n)
    return plot_w / max(n, 1), plot_w


def _bar_box(x: float, slot: float) -> tuple[float, float]:
    """(left, width) of a bar centred in its slot: at most 28 px wide, with a gap to its neighbours."""
    width = max(1.0, min(28.0, slot * 0.8))
    return x + (slot - width) / 2, width


def _x_labels(labels: Sequence[str], slot: float, y: float) -> str:
    """Each bar's label under it where they fit (every k-th otherwise, and the last)."""
    step = max(1, math.ceil(max((len(t) for t in labels), default=1) * 7 / slot))
    return "".join(f"<text x='{_LEFT + (i + 0.5) * slot:.1f}' y='{y + 13}' text-anchor='middle'>{esc(t)}</text>"
                   for i, t in enumerate(labels) if i % step == 0 or (i == len(labels) - 1 and i % step > step / 2))


def bar_chart(bars: Sequence[Bar], *, label: str, y_label: str, second_label: str = "", x_label: str = "",
              target: str | None = None, chart_id: str = "anp-chart", unit: str = "",
              second_unit: str = "", label_each: bool = True) -> str:
    """Bars (``value`` on the left axis) with an optional second series (``second``, dots joined by a line on a
    right axis). A failed bar is drawn in the failure colour with a ✕ above it. Each bar's slot is a link."""
    slot, plot_w = _slot(len(bars))
    width = int(_LEFT + plot_w + _RIGHT)
    plot_h = _H - _TOP - _BOTTOM
    top = nice_max(max((b.value for b in bars), default=0.0))
    seconds_ = [b.second for b in bars if b.second is not None]
    top2 = nice_max(max(seconds_, default=0.0))
    parts = [_y_axis(top, _LEFT, plot_w, y_label, fmt=unit)]
    if seconds_:
        parts.append(_y_axis(top2, _LEFT + plot_w, plot_w, second_label, right=True, grid=False, fmt=second_unit))
    if label_each:
        parts.append(_x_axis(plot_w, x_label) + _x_labels([b.label for b in bars], slot, _H - _BOTTOM))
    else:
        parts.append(_x_axis(plot_w, x_label, bars[0].label if bars else "", bars[-1].label if len(bars) > 1 else ""))
    points: list[tuple[float, float]] = []
    for i, b in enumerate(bars):
        x = _LEFT + i * slot
        bx, bw = _bar_box(x, slot)
        h = max(1.0, plot_h * (b.value / top)) if b.value > 0 else 1.0
        css = "anp-bar-failed" if b.failed else b.css
        fill = _FAIL if b.failed else _STATE_FILL.get(b.css.removeprefix("anp-state-"),
                                                      _OTHER if b.css == "anp-state-other" else _BAR)
        inner = (f"<title>{esc(b.title)}</title>"
                 f"<rect class='anp-hit' x='{x:.1f}' y='{_TOP}' width='{slot:.1f}' height='{plot_h}' "
                 "fill='transparent'/>"
                 f"<rect class='{css}' x='{bx:.1f}' y='{_H - _BOTTOM - h:.1f}' width='{bw:.1f}' "
                 f"height='{h:.1f}' fill='{fill}'/>")
        if b.failed:
            inner += (f"<text class='anp-fail-mark' x='{x + slot / 2:.1f}' y='{_H - _BOTTOM - h - 3:.1f}' "
                      f"text-anchor='middle' fill='{_FAIL}'>✕</text>")
        parts.append(_link(inner, b.href, target, "anp-cell-bar" + (" anp-failed" if b.failed else "")))
        if b.second is not None:
            points.append((x + slot / 2, _H - _BOTTOM - plot_h * (b.second / top2)))
    if points:
        path = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py) in enumerate(points))
        # Drawn over the bars, but clicks go through to them (each bar is the link).
        parts.append(f"<path class='anp-mem' d='{path}' fill='none' stroke='{_MEM}' stroke-width='2' "
                     "pointer-events='none'/>")
        parts.extend(f"<circle class='anp-mem-dot' cx='{px:.1f}' cy='{py:.1f}' r='2.5' fill='{_MEM}' "
                     "pointer-events='none'/>" for px, py in points)
    return _svg(width, _H, label, "".join(parts), chart_id)


def line_chart(series: Sequence[Series], x_labels: Sequence[str], *, label: str, y_label: str, x_label: str = "",
               chart_id: str = "anp-lines", unit: str = "") -> str:
    """Up to ``SERIES`` lines over the same x positions (a None value breaks the line), with a legend below."""
    series = list(series)[:SERIES]
    n = len(x_labels)
    slot, plot_w = _slot(n, min_slot=8.0, max_slot=40.0)
    legend_h = 16 * len(series)
    width = int(_LEFT + plot_w + _RIGHT)
    plot_h = _H - _TOP - _BOTTOM
    top = nice_max(max((v for s in series for v in s.values if v is not None), default=0.0))
    parts = [_y_axis(top, _LEFT, plot_w, y_label, fmt=unit),
             _x_axis(plot_w, x_label, x_labels[0] if x_labels else "", x_labels[-1] if n > 1 else "")]
    for k, s in enumerate(series):
        css = f"anp-line anp-s{k}"
        segments, pen_down, dots = [], False, []
        for i, v in enumerate(s.values[:n]):
            if v is None:
                pen_down = False
                continue
            x, y = _LEFT + (i + 0.5) * slot, _H - _BOTTOM - plot_h * (v / top)
            segments.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            dots.append(f"<circle class='anp-s{k}' cx='{x:.1f}' cy='{y:.1f}' r='3'><title>"
                        f"{esc(s.label)} — {esc(x_labels[i])}: {esc(seconds(v))}</title></circle>")
        if segments:
            parts.append(f"<path class='{css}' d='{' '.join(segments)}' fill='none' stroke='#666' "
                         "stroke-width='2'/>")
        parts.extend(dots)
        ly = _H + 12 + 16 * k
        key = (f"<rect class='anp-s{k}' x='{_LEFT}' y='{ly - 9}' width='12' height='10'/>"
               f"<text x='{_LEFT + 18}' y='{ly}'>{esc(s.label)}</text>")
        parts.append(_link(key, s.href, None, "anp-legend"))
    return _svg(width, _H + legend_h + 6, label, "".join(parts), chart_id)


def diff_chart(bars: Sequence[Bar], *, label: str, y_label: str, x_label: str = "", chart_id: str = "anp-diff-chart",
               fmt: str = "s") -> str:
    """Diverging bars around zero (``value``: B minus A): up in the "worse" colour, down in the "better" one."""
    slot, plot_w = _slot(len(bars))
    width = int(_LEFT + plot_w + _RIGHT)
    plot_h = _H - _TOP - _BOTTOM
    top = nice_max(max((abs(b.value) for b in bars), default=0.0))
    mid = _TOP + plot_h / 2
    parts = [f"<line class='anp-axis' x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT}' y2='{_H - _BOTTOM}' stroke='#888'/>",
             f"<line class='anp-axis' x1='{_LEFT}' y1='{mid:.1f}' x2='{_LEFT + plot_w:.1f}' y2='{mid:.1f}' "
             "stroke='#888'/>"]
    for value, y in ((top, _TOP), (0.0, mid), (-top, _H - _BOTTOM)):
        parts.append(f"<text x='{_LEFT - 4}' y='{y + 4:.1f}' text-anchor='end'>"
                     f"{esc(('+' if value > 0 else '') + _num(value) if value >= 0 else '−' + _num(-value))}"
                     f"{esc(' ' + fmt if fmt else '')}</text>")
    lx, ly = _LEFT - 40, _TOP + plot_h / 2
    parts.append(f"<text class='anp-axis-label' x='{lx}' y='{ly:.1f}' text-anchor='middle' "
                 f"transform='rotate(-90 {lx} {ly:.1f})'>{esc(y_label)}</text>")
    parts.append(f"<text class='anp-axis-label' x='{_LEFT + plot_w / 2:.1f}' y='{_H - 4}' text-anchor='middle'>"
                 f"{esc(x_label)}</text>")
    parts.append(_x_labels([b.label for b in bars], slot, _H - _BOTTOM))
    for i, b in enumerate(bars):
        x = _LEFT + i * slot
        bx, bw = _bar_box(x, slot)
        h = (plot_h / 2) * (abs(b.value) / top)
        up = b.value > 0
        y = mid - h if up else mid
        css, fill = ("anp-up", _FAIL) if up else ("anp-down", "#2e7d32")
        inner = (f"<title>{esc(b.title)}</title>"
                 f"<rect class='anp-hit' x='{x:.1f}' y='{_TOP}' width='{slot:.1f}' height='{plot_h}' "
                 "fill='transparent'/>"
                 f"<rect class='{css}' x='{bx:.1f}' y='{y:.1f}' width='{bw:.1f}' "
                 f"height='{max(h, 1.0) if b.value else 0:.1f}' fill='{fill}'/>")
        parts.append(_link(inner, b.href, None, "anp-diff-bar"))
    return _svg(width, _H, label, "".join(parts), chart_id)


def figure(title: str, svg: str, *, figure_id: str, note: str = "") -> str:
    """A chart in its themed panel, with a heading (``note``: HTML already escaped, e.g. a link)."""
    return (f"<figure class='anp-chart' id='{esc(figure_id)}'><h2>{esc(title)}</h2>{svg}"
            f"{f'<p>{note}</p>' if note else ''}</figure>")


def state_css(state: str | None) -> str:
    return f"anp-state-{state}" if state in _STATE_FILL else "anp-state-other"
