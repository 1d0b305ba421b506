"""Time and memory per cell as pictures: the SVG builder alone, then the header chart, the history view and the
compare chart through the real api-server app after real ``dag.test()`` runs (real kernel)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pendulum
import pytest
from airflow.sdk import DAG, Param

from airflow_notebook_provider.operators.notebook import NotebookOperator
from airflow_notebook_provider.viewer import charts
from tests.helpers import run_dag
from tests.viewer.client import Api, write_notebook

START = pendulum.datetime(2024, 1, 1, tz="UTC")
DAG_ID = "t_viewer_charts"


# -- the SVG builder alone ----------------------------------------------------------------------------------


def test_bar_chart_escapes_labels_marks_the_failing_bar_and_links_each_bar() -> None:
    bars = [charts.Bar(label="1", value=0.5, title="cell 1 — print('<b>&</b>')", second=120.0,
                       href="/render?a=1&b=2#cell-id=abc"),
            charts.Bar(label="<2>", value=2.0, title="cell 2 (failed) — raise ValueError(\"x\")", second=300.0,
                       href="/render?a=1&b=2#cell-id=failing-cell", failed=True),
            charts.Bar(label="<3>", value=0.0, title="no id", second=None)]
    svg = charts.bar_chart(bars, label="per <cell>", y_label="seconds", second_label="peak MB", target="anp-notebook")
    assert "<b>" not in svg and "<3>" not in svg and "per <cell>" not in svg
    assert "cell 1 — print(&#x27;&lt;b&gt;&amp;&lt;/b&gt;&#x27;)" in svg and "&lt;3&gt;" in svg  # the last x label
    links = re.findall(r"<a href='([^']*)' target='anp-notebook' class='([^']*)'>", svg)
    assert links == [("/render?a=1&amp;b=2#cell-id=abc", "anp-cell-bar"),
                     ("/render?a=1&amp;b=2#cell-id=failing-cell", "anp-cell-bar anp-failed")]
    assert svg.count("<title>") == 4  # the chart's and one per bar
    assert svg.count("class='anp-bar-failed'") == 1 and svg.count("class='anp-bar'") == 2
    assert svg.count("class='anp-mem-dot'") == 2  # the bar without memory has no point on the line
    assert "seconds" in svg and "peak MB" in svg  # both axes labelled


def test_line_and_diff_charts_escape_and_break_lines_at_gaps() -> None:
    svg = charts.line_chart([charts.Series("cell <3>", [1.0, None, 2.0]), charts.Series("b", [0.5, 0.6, 0.7])],
                            ["day <1>", "d2", "d3"], label="slowest", y_label="seconds")
    assert "cell &lt;3&gt;" in svg and "day &lt;1&gt;" in svg and "<3>" not in svg
    first = re.search(r"<path class='anp-line anp-s0' d='([^']*)'", svg).group(1)
    assert first.count("M") == 2 and "L" not in first  # a gap starts a new segment
    diff = charts.diff_chart([charts.Bar("1", 1.5, "slower"), charts.Bar("2", -0.5, "faster")], label="d",
                             y_label="Δ seconds")
    assert diff.count("class='anp-up'") == 1 and diff.count("class='anp-down'") == 1
    assert charts.nice_max(0.0) == 1.0 and charts.nice_max(3.2) == 5.0 and charts.nice_max(0.21) == 0.25


# -- through the viewer's routes, after real runs -------------------------------------------------------------


def _url(name: str, run_id: str, task_id: str = "rows", **extra: Any) -> str:
    return f"/notebook/dags/{DAG_ID}/{name}?" + urlencode({"run_id": run_id, "task_id": task_id, **extra})


@pytest.fixture(scope="module")
def runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two runs of one notebook task: ``limit`` 5 passes, 500 fails at its 5th cell (the 6th never runs)."""
    folder = tmp_path_factory.mktemp("charts")
    write_notebook(folder / "rows.ipynb", "#parameters\nlimit = 1", "print(f'{limit} rows loaded')",
                   "import time\ntime.sleep(0.2)", "if limit > 100:\n    raise ValueError(f'too many rows: {limit}')",
                   "print('report written')")
    with DAG(dag_id=DAG_ID, schedule=None, start_date=START, params={"limit": Param(5, type="integer")},
             render_template_as_native_obj=True) as dag:
        NotebookOperator(task_id="rows", notebook=str(folder / "rows.ipynb"),
                         parameters={"limit": "{{ params.limit }}"})
    ok = run_dag(dag, logical_date=START, run_conf={"limit": 5})
    bad = run_dag(dag, logical_date=START.add(days=1), run_conf={"limit": 500})
    assert ok["rows"].state == "success" and bad["rows"].state == "failed"
    return {"ok": ok["__run__"].xcom["run_id"], "bad": bad["__run__"].xcom["run_id"]}


def _chart(text: str, chart_id: str) -> str:
    start = text.index(f"id='{chart_id}'")
    return text[start:text.index("</svg>", start)]


def test_header_draws_a_bar_per_executed_code_cell_linked_to_the_cell(api: Api, runs: dict[str, str]) -> None:
    page = api.get(_url("view", runs["bad"]))
    assert page.status_code == 200, page.text
    svg = _chart(page.text, "anp-cells-chart")
    # The parameters cell, the injected one, print, sleep, the raise: 5 ran; the last cell never did.
    links = re.findall(r"<a href='([^']*)' target='anp-notebook' class='(anp-cell-bar[^']*)'>", svg)
    assert len(links) == 5
    assert [cls for _, cls in links].count("anp-cell-bar anp-failed") == 1 and links[4][1].endswith("anp-failed")
    frame_src = html.unescape(re.search(r"<iframe id='anp-notebook' [^>]*src='([^']*)'", page.text).group(1))
    document = api.frame(page).text
    for href, _ in links:  # every bar scrolls the notebook's frame to an anchor its document has
        url, fragment = html.unescape(href).split("#")
        assert url == frame_src and f'id="{fragment}"' in document
    assert links[4][0].endswith("#cell-id=failing-cell")
    tooltip = re.findall(r"<title>([^<]*)</title>", svg)[5]  # the failing bar's
    assert tooltip.startswith("cell 5 (failed), ") and "peak" in tooltip and "CPU" in tooltip
    assert "limit &gt; 100" not in page.text  # the notebook's own text stays in its frame
    assert svg.count("class='anp-mem-dot'") == 5  # a local kernel: memory measured for every cell
    history = re.search(r"href='([^']*)' id='anp-history-link'", page.text)
    assert history and "/history?" in html.unescape(history.group(1))


def test_history_lists_the_attempts_and_the_slowest_cells(api: Api, runs: dict[str, str]) -> None:
    page = api.get(_url("history", runs["bad"]))
    assert page.status_code == 200, page.text
    rows = re.findall(r"<tr><td>[^<]*</td><td><code>([^<]*)</code></td>", page.text)
    assert rows == [runs["bad"], runs["ok"]]  # newest first
    bars = re.findall(r"class='(anp-state-[a-z_]+)'", _chart(page.text, "anp-history-chart"))
    assert bars == ["anp-state-success", "anp-state-failed"]  # oldest first, coloured by state
    slowest = _chart(page.text, "anp-slowest-chart")
    assert "time.sleep(0.2)" not in slowest or "cell 4: import time" in slowest
    assert slowest.count("<path class='anp-line") == 5
    one = api.get(_url("history", runs["bad"], limit=1))
    assert re.findall(r"<tr><td>[^<]*</td><td><code>([^<]*)</code></td>", one.text) == [runs["bad"]]
    for limit in (0, 10_000):
        assert api.get(_url("history", runs["bad"], limit=limit)).status_code == 422


def test_history_checks_the_same_access_as_an_attempt(api: Api, runs: dict[str, str]) -> None:
    url = _url("history", runs["bad"])
    assert api.get(url, user=None).status_code == 401
    refused = api.get(url, user="only:some_other_dag")
    assert refused.status_code == 403 and runs["bad"] not in refused.text
    assert api.get(url, user="nologs:reader").status_code == 403
    assert api.get(url, user=f"only:{DAG_ID}").status_code == 200


def test_compare_draws_the_time_and_memory_difference_per_cell(api: Api, runs: dict[str, str]) -> None:
    page = api.get(_url("compare", runs["bad"], against_run_id=runs["ok"], against_try=1))
    assert page.status_code == 200, page.text
    for chart_id in ("anp-diff-time", "anp-diff-memory"):
        assert _chart(page.text, chart_id).count("class='anp-diff-bar'") == 5  # cells that ran in both
    assert f"/notebook/dags/{quote(DAG_ID)}/" in page.text
