"""The viewer's HTML: a header page about the attempt (identity, state, times, parameters, input, failure,
attempts) with the notebook rendered by nbconvert in a sandboxed frame below it, and plain error pages.

Everything that comes from the notebook or the metadata DB is escaped. The notebook's own HTML is users' HTML: it is
never part of the header page, only of the frame's document (its own route, ``responses.NOTEBOOK_CSP``: opaque
origin, no script), so it cannot cover or restyle the header. The header, error and compare pages carry no
inline style at all: their only stylesheet is ``stylesheet()``, served by the viewer (``responses.PAGE_CSP``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import html
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from airflow_notebook_provider.notebook.origin import NotebookOrigin, read_origin
from airflow_notebook_provider.notebook.record import FailedCell, RunSummary
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import charts
from airflow_notebook_provider.viewer.attempts import Attempt
from airflow_notebook_provider.viewer.lookup import Loaded

FAILING_TAG = "airflow-failing-cell"
FAILING_ANCHOR = "cell-id=failing-cell"  # nbconvert writes id="cell-id=<cell.id>" on each cell
FRAME_NAME = "anp-notebook"  # the frame's name: the header's "Jump to the failing cell" link targets it
FRAME_SANDBOX = "allow-downloads allow-popups allow-popups-to-escape-sandbox"  # as NOTEBOOK_CSP's sandbox

STYLE = """
.anp-header{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;background:#f7f7f9;
 border-bottom:1px solid #ddd;padding:12px 20px;color:#222}
.anp-header h1{font-size:18px;margin:0 0 8px}
.anp-header table{border-collapse:collapse;margin:4px 16px 8px 0;display:inline-table;vertical-align:top;
 max-width:calc(50% - 16px)}
.anp-header th,.anp-header td{text-align:left;padding:2px 8px;border-bottom:1px solid #e5e5e5;font-weight:normal}
.anp-header th{color:#666}
.anp-header code{font-size:12px;word-break:break-all}
.anp-header a{color:#0b57d0;text-decoration:underline}
.anp-actions a{margin-right:16px}
.anp-state{display:inline-block;padding:1px 8px;border-radius:10px;background:#ddd;font-weight:600}
.anp-state-success{background:#c8e6c9;color:#1b5e20}.anp-state-failed{background:#ffcdd2;color:#b71c1c}
.anp-state-running,.anp-state-queued{background:#bbdefb;color:#0d47a1}.anp-state-up_for_retry{background:#ffe0b2}
.anp-failure{background:#ffebee;border:1px solid #e57373;border-radius:4px;padding:8px 12px;margin:8px 0}
.anp-progress{background:#e3f2fd;border:1px solid #64b5f6;border-radius:4px;padding:8px 12px;margin:8px 0}
.anp-attempts a.anp-current{font-weight:700;text-decoration:none;color:#222}
.anp-attempts li{display:inline-block;margin-right:14px}
.anp-attempts ul{display:inline;padding:0;margin:0}
.anp-status{color:#666}
body.anp-page,body.anp-error-page{margin:0}
body.anp-page{height:100vh;display:flex;flex-direction:column;overflow:hidden}
body.anp-page>.anp-header{flex:0 0 auto;max-height:45vh;overflow:auto}
#anp-notebook{flex:1 1 auto;min-height:0;width:100%;border:0;display:block}
"""
# In the notebook's own document (the frame), where nbconvert's inline styles are allowed.
NOTEBOOK_STYLE = """
.celltag_airflow-failing-cell{outline:3px solid #d32f2f;outline-offset:2px;background:#fff5f5;scroll-margin-top:16px}
.celltag_airflow-failing-cell::before{content:"Failing cell";display:block;color:#fff;background:#d32f2f;
 font:600 12px system-ui,sans-serif;padding:2px 8px;width:max-content}
.celltag_skip-execution{opacity:.7}
.celltag_skip-execution::before{content:"Not run (skip-execution)";display:block;color:#555;background:#eee;
 font:600 12px system-ui,sans-serif;padding:2px 8px;width:max-content}
"""
COMPARE_STYLE = """
body.anp-compare-page{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;color:#222}
.anp-compare{padding:12px 20px}
.anp-compare h1{font-size:20px;margin:0 0 8px}
.anp-compare h2{font-size:16px;margin:18px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
.anp-compare table{border-collapse:collapse}
.anp-compare th,.anp-compare td{text-align:left;padding:2px 10px;border-bottom:1px solid #eee;vertical-align:top}
.anp-compare th{color:#666;font-weight:normal}
.anp-compare td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.anp-diff{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#fafafa;border:1px solid #e5e5e5;
 margin:4px 0 10px;padding:4px 0;white-space:pre-wrap;word-break:break-all}
.anp-diff span{display:block;padding:0 8px}
.anp-diff .add{background:#e6ffec}.anp-diff .del{background:#ffebe9}.anp-diff .hunk{color:#888}
.anp-note{color:#666;font-style:italic;margin:2px 0 10px}
.anp-same{color:#1b5e20}.anp-changed{color:#b71c1c;font-weight:600}
tr.anp-first td{background:#fff3e0}
tr.anp-differs td:first-child{font-weight:700}
.anp-pick li{margin:2px 0}
.anp-pick a.anp-current{font-weight:700;text-decoration:none;color:#222}
"""
STYLESHEET_ROUTE = "static/viewer.css"


def stylesheet() -> str:
    """The one stylesheet of the header, error and compare pages (served at ``STYLESHEET_ROUTE``)."""
    return STYLE + COMPARE_STYLE + charts.STYLE


def stylesheet_url() -> str:
    """Root-relative URL of ``stylesheet()``, under ``[api] base_url``'s path; its hash in the query so a new
    release's stylesheet is never mixed with a cached old one."""
    from urllib.parse import urlsplit

    from airflow_notebook_provider.links.notebook import VIEWER_PREFIX, viewer_base_url

    return f"{urlsplit(viewer_base_url()).path.rstrip('/')}{VIEWER_PREFIX}/{STYLESHEET_ROUTE}?v={_version()}"


@functools.cache
def _version() -> str:
    return hashlib.sha256(stylesheet().encode()).hexdigest()[:12]


def _head(title: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<link rel='stylesheet' href='{esc(stylesheet_url())}'></head>")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def error_page(status: int, title: str, detail: str, links: Sequence[tuple[str, str]] | None = None, *,
               show_status: bool = True, download: str | None = None) -> str:
    """A plain page saying what is missing and what to do; ``links`` lead to the task's other attempts;
    ``download``: the URL of the notebook's download (a notebook too large to show)."""
    status_line = f"<p class='anp-status'>HTTP {status}</p>" if show_status else ""
    more = ""
    if download:
        more += (f"<div class='anp-actions'><a href='{esc(download)}' id='anp-download'>Download .ipynb</a>"
                 "</div>")
    if links:
        more += "<div class='anp-attempts' id='anp-attempts'><b>Other attempts:</b> <ul>" + "".join(
            f"<li><a href='{esc(url)}'>{esc(label)}</a></li>" for label, url in links) + "</ul></div>"
    return (
        f"{_head(title)}<body class='anp-error-page'><div class='anp-header'><h1>{esc(title)}</h1><p>{esc(detail)}</p>"
        f"{more}{status_line}</div></body></html>"
    )


def _time(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {sec} s" if hours else f"{minutes} min {sec} s"


def _mark_failing_cell(notebook: dict[str, Any], index: int) -> dict[str, Any]:
    nb = copy.deepcopy(notebook)
    cell = nb["cells"][index]
    if not isinstance(cell.get("metadata"), dict):  # data the task wrote: any type
        cell["metadata"] = {}
    tags = cell["metadata"].get("tags")
    cell["metadata"]["tags"] = [*(t for t in (tags if isinstance(tags, list) else []) if isinstance(t, str)),
                                FAILING_TAG]
    cell["id"] = FAILING_ANCHOR.split("=", 1)[1]
    return nb


INJECTED_TAG = "injected-parameters"

_render_lock = threading.Lock()  # the exporters: one render at a time (nbconvert's exporter is not thread-safe)
_cache_lock = threading.Lock()  # the cache: held for a lookup or an insert only, never while rendering
_exporters: dict[bool, Any] = {}
_cache: OrderedDict[tuple[str, int | None, bool], str] = OrderedDict()
_cache_bytes = 0


def cache_budget() -> int:
    """``[notebook] viewer_cache_bytes``: the most bytes of rendered pages kept (least recently used go first); 0
    keeps none."""
    from airflow_notebook_provider.viewer.safe_read import limit_setting

    return int(limit_setting("viewer_cache_bytes", zero_allowed=True))


def _cached(key: tuple[str, int | None, bool]) -> str | None:
    with _cache_lock:
        body = _cache.get(key)
        if body is not None:
            _cache.move_to_end(key)
        return body


def _keep(key: tuple[str, int | None, bool], body: str) -> None:
    """Cache a rendered page within ``cache_budget()`` bytes (its UTF-8 size, counted as its length: nbconvert's
    pages are ASCII but for the notebook's own text); a page larger than the budget is not kept."""
    global _cache_bytes
    budget, size = cache_budget(), len(body)
    if size > budget:
        return
    with _cache_lock:
        if key in _cache:
            return
        _cache[key] = body
        _cache_bytes += size
        while _cache_bytes > budget and _cache:
            _, dropped = _cache.popitem(last=False)
            _cache_bytes -= len(dropped)


def _report_cells(notebook: dict[str, Any]) -> dict[str, Any]:
    """The notebook without its injected-parameters cell (as the HTML report leaves it out)."""
    nb = dict(notebook)
    nb["cells"] = [c for c in notebook.get("cells") or []
                   if INJECTED_TAG not in ((c.get("metadata") or {}).get("tags") or [])]
    return nb


def render_notebook(notebook: dict[str, Any], fail: FailedCell | None, data: bytes | None = None, *,
                    report: bool = False) -> str:
    """The notebook as a standalone HTML page (nbconvert's lab template), the failing cell tagged for highlight.

    ``report``: the report view, as ``report_mode``'s HTML report: code inputs and the injected-parameters cell
    left out; outputs, markdown and the error banner kept.

    With ``data`` (the stored bytes), the page is cached by their sha256: a finished attempt's notebook is
    immutable, and a running one's next checkpoint has other bytes, so a cached page is never stale.
    """
    import nbformat
    from nbconvert import HTMLExporter

    key = (hashlib.sha256(data).hexdigest(), fail.index if fail else None, report) if data is not None else None
    if key is not None and (hit := _cached(key)) is not None:  # a cache hit never waits for another render
        return hit
    if fail is not None:  # marked first: ``fail.index`` counts every cell
        notebook = _mark_failing_cell(notebook, fail.index)
    if report:
        notebook = _report_cells(notebook)
    node = nbformat.reads(json.dumps(notebook), as_version=4)
    with _render_lock:  # one exporter per view (its templates loaded once), used by one request at a time
        if key is not None and (hit := _cached(key)) is not None:  # rendered meanwhile by another request
            return hit
        exporter = _exporters.get(report)
        if exporter is None:
            exporter = _exporters[report] = (
                HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True)
                if report else HTMLExporter(template_name="lab"))
        body, _ = exporter.from_notebook_node(node)
    if key is not None:
        _keep(key, body)
    return body


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _origin_row(origin: NotebookOrigin | None) -> list[tuple[str, str]]:
    """"notebook at <bundle>@<short version>" for a notebook read from the DAG's bundle (full version on hover)."""
    if origin is None:
        return []
    return [("Notebook version", f"<span id='anp-notebook-version' title='{esc(origin.version or '')}'>notebook at "
                                 f"<code>{esc(origin.label)}</code> (<code>{esc(origin.path)}</code>)</span>")]


def _state(state: str | None) -> str:
    s = state or "none"
    return f"<span class='anp-state anp-state-{esc(s)}'>{esc(s)}</span>"


def header(
    *,
    ti: TaskInstanceId,
    attempt: Attempt,
    attempts: Sequence[Attempt],
    loaded: Loaded,
    run: RunSummary,
    urls: dict[str, str],
    attempt_url: Callable[[int], str],
    compare_links: Sequence[tuple[str, str]] = (),
    reports: Sequence[tuple[str, str]] = (),
    files: Sequence[tuple[str, str, int | None]] = (),
    toggle: tuple[str, str] | None = None,
    cell_chart: str = "",
) -> str:
    """The block above the notebook: what ran, how it ended, with what, the other attempts, and "Compare".

    ``reports`` (format, url) and ``files`` (path, url, bytes) are what the attempt published beside its
    notebook; ``toggle`` (label, url) switches between the full notebook and the report view. ``urls['notebook']``
    is the frame's URL: "Jump to the failing cell" loads its fragment in the frame, which scrolls there.
    ``cell_chart``: the time and memory per cell (``history.cell_figure``), HTML already escaped.
    """
    fail = run.failed_cell
    start = attempt.start_date or run.start_time
    end = attempt.end_date or run.end_time
    duration = attempt.duration if attempt.duration is not None else run.duration
    identity = _table([
        ("DAG", f"<code>{esc(ti.dag_id)}</code>"),
        ("Run", f"<code>{esc(ti.run_id)}</code>"),
        ("Task", f"<code>{esc(ti.task_id)}</code>"),
        ("Map index", esc(ti.map_index) if ti.map_index >= 0 else "— (not mapped)"),
        ("Attempt", f"{attempt.try_number} of {len(attempts)}"),
        ("State", _state(attempt.state)),
    ])
    times = _table([
        ("Start", esc(_time(start))),
        ("End", esc(_time(end)) if not attempt.in_progress else "— (running)"),
        ("Duration", esc(_duration(duration)) if not attempt.in_progress else "—"),
        ("Input notebook", f"<code>{esc(run.input_path)}</code>"),
        ("Input sha256", f"<code>{esc(run.input_sha256)}</code>"),
        *_origin_row(read_origin(loaded.notebook)),
        ("Output notebook", f"<code>{esc(loaded.record.location)}</code>"),
    ])
    params = run.parameters
    if params:
        param_table = "<table class='anp-params'><tr><th>Parameter</th><th>Value</th></tr>" + "".join(
            f"<tr><td><code>{esc(k)}</code></td><td><code>{esc(json.dumps(v))}</code></td></tr>"
            for k, v in params.items()
        ) + "</table>"
    else:
        param_table = "<table class='anp-params'><tr><th>Parameters</th><td>none</td></tr></table>"

    notes = ""
    if attempt.in_progress:
        notes += (
            "<div class='anp-progress' id='anp-in-progress'><b>In progress.</b> This attempt is still running; "
            "this is its latest checkpoint (written at least every checkpoint interval). "
            f"<a href='{esc(urls['self'])}'>Reload</a> to see newer output.</div>"
        )
    if fail is not None:
        error = ": ".join(x for x in (fail.ename, fail.evalue) if x) or "the run stopped"
        count = fail.execution_count
        notes += (
            f"<div class='anp-failure' id='anp-failure'><b>Failed at cell {fail.position}"
            f"{f' (In [{esc(count)}])' if count else ''}:</b> <code>{esc(error)}</code> "
            f"<a href='{esc(urls['notebook'])}#{FAILING_ANCHOR}' target='{FRAME_NAME}' id='anp-jump'>"
            "Jump to the failing cell</a></div>"
        )
    elif run.status == "failed":
        notes += "<div class='anp-failure' id='anp-failure'><b>The run failed before its first cell</b> — see the " \
                 "banner below and the task log.</div>"

    items = []
    for a in attempts:
        label = f"Attempt {a.try_number}"
        cls = " class='anp-current'" if a.try_number == attempt.try_number else ""
        items.append(f"<li><a{cls} href='{esc(attempt_url(a.try_number))}'>{label}</a> {_state(a.state)}</li>")
    attempt_list = f"<div class='anp-attempts' id='anp-attempts'><b>Attempts:</b> <ul>{''.join(items)}</ul></div>"
    if compare_links:
        attempt_list += ("<div class='anp-attempts' id='anp-compare-links'><b>Compare</b> with: <ul>" + "".join(
            f"<li><a href='{esc(url)}'>{esc(label)}</a></li>" for label, url in compare_links) + "</ul></div>")

    actions = (
        "<div class='anp-actions'>"
        f"<a href='{esc(urls['download'])}' id='anp-download'>Download .ipynb</a>"
        + "".join(f"<a href='{esc(url)}' class='anp-report' id='anp-report-{esc(fmt)}' download>"
                  f"Report ({esc(fmt)})</a>" for fmt, url in reports)
        + (f"<a href='{esc(toggle[1])}' id='anp-view-toggle'>{esc(toggle[0])}</a>" if toggle else "")
        + f"<a href='{esc(urls['airflow'])}' id='anp-back'>Task instance in Airflow</a>"
        "</div>"
    )
    if files:
        actions += ("<div class='anp-attempts' id='anp-files'><b>Files:</b> <ul>" + "".join(
            f"<li><a href='{esc(url)}' class='anp-file' download><code>{esc(path)}</code></a>"
            f"{f' ({esc(size)} bytes)' if size is not None else ''}</li>" for path, url, size in files)
            + "</ul></div>")
    title = f"Notebook of {ti.task_id}, attempt {attempt.try_number}"
    return (
        f"<div class='anp-header' id='anp-header'><h1>{esc(title)}</h1>{actions}{notes}{cell_chart}"
        f"{identity}{times}{param_table}{attempt_list}</div>"
    )


def page(header_html: str, notebook_url: str, title: str) -> str:
    """The attempt's page: the header on top, the notebook below in a sandboxed frame that fills the rest of the
    window and scrolls on its own. The frame's document comes from its own route (never inlined here)."""
    return (
        f"{_head(title)}<body class='anp-page'>{header_html}"
        f"<iframe id='{FRAME_NAME}' name='{FRAME_NAME}' title='Output notebook' src='{esc(notebook_url)}' "
        f"sandbox='{FRAME_SANDBOX}'></iframe></body></html>"
    )


def notebook_document(notebook_html: str, title: str) -> str:
    """nbconvert's page as the frame's document: its title, and the failing cell's frame in its head."""
    head_end = notebook_html.find("</head>")
    if head_end >= 0:
        notebook_html = notebook_html[:head_end] + f"<style>{NOTEBOOK_STYLE}</style>" + notebook_html[head_end:]
    else:
        notebook_html = f"<!doctype html><html><head><style>{NOTEBOOK_STYLE}</style></head>{notebook_html}</html>"
    return notebook_html.replace("<title>Notebook</title>", f"<title>{esc(title)}</title>", 1)
