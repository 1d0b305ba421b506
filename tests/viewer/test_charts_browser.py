"""The time and memory charts as a user sees them: a real Airflow (api-server, scheduler, dag-processor) and
Debian's chromium through Playwright, in the light and the dark colour scheme.

Set ``ANP_UPDATE_CHART_SCREENSHOTS=1`` to refresh docs/viewer-charts.png, docs/viewer-charts-dark.png,
docs/viewer-history.png and docs/viewer-compare-chart.png from this test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.airflow_servers import Airflow, trigger_and_wait
from tests.browser import CHROMIUM, HAVE_CHROMIUM, chromium, log_in

DAG_ID = "browser_compare"  # tests/viewer/conftest.py: rows.ipynb, which fails at its 5th cell beyond 100 rows
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(
    not HAVE_CHROMIUM, reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"
)


@pytest.fixture(scope="module")
def runs(airflow_server: Airflow) -> tuple[Airflow, str]:
    """One run that passes, then one that fails, triggered through the REST API; yields the failed run's id."""
    _, state = trigger_and_wait(airflow_server, DAG_ID, {"limit": 5})
    assert state == "success"
    bad_run, state = trigger_and_wait(airflow_server, DAG_ID, {"limit": 500})
    assert state == "failed"
    return airflow_server, bad_run


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _visible_svg(page: Any, selector: str) -> Any:
    svg = page.locator(selector)
    svg.wait_for(timeout=30_000)
    box = svg.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100, box
    return svg


def test_charts_render_in_both_themes_and_a_bar_scrolls_to_its_cell(runs: tuple[Airflow, str], browser: Any,
                                                                   tmp_path: Path) -> None:
    af, run_id = runs
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        log_in(page, af.base, af.username, af.password)
        page.goto(f"{af.base}/notebook/dags/{DAG_ID}/view?" + urlencode({"run_id": run_id, "task_id": "rows"}))
        page.frame_locator("#anp-notebook").locator(".jp-Notebook").wait_for(timeout=30_000)
        svg = _visible_svg(page, "#anp-cells-chart")
        assert svg.locator("a.anp-cell-bar").count() == 5  # the code cells that ran; the 6th never did
        assert svg.locator("a.anp-failed rect.anp-bar-failed").count() == 1
        panel = page.locator("#anp-cells")
        light = panel.evaluate("e => getComputedStyle(e).backgroundColor")
        light_bar = svg.locator("rect.anp-bar").first.evaluate("e => getComputedStyle(e).fill")
        page.screenshot(path=str(tmp_path / "viewer-charts.png"))

        page.emulate_media(color_scheme="dark")
        svg = _visible_svg(page, "#anp-cells-chart")
        assert panel.evaluate("e => getComputedStyle(e).backgroundColor") != light
        assert svg.locator("rect.anp-bar").first.evaluate("e => getComputedStyle(e).fill") != light_bar
        text = svg.locator("text").first.evaluate("e => getComputedStyle(e).fill")
        assert text == panel.evaluate("e => getComputedStyle(e).color")  # labels follow the panel's text colour
        page.screenshot(path=str(tmp_path / "viewer-charts-dark.png"))
        page.emulate_media(color_scheme="light")

        # A click on the 4th bar (time.sleep) scrolls the notebook's frame to that cell.
        href = svg.locator("a.anp-cell-bar").nth(3).get_attribute("href")
        assert href is not None and "#cell-id=" in href
        svg.locator("a.anp-cell-bar").nth(3).locator("rect.anp-hit").click()
        frame = page.frame(name="anp-notebook")
        assert frame is not None
        fragment = href.split("#", 1)[1]
        frame.wait_for_function(f"() => location.hash === '#{fragment}'")
        cell = page.frame_locator("#anp-notebook").locator(f"[id='{fragment}']")
        cell.wait_for(state="visible")
        assert "time.sleep(0.2)" in cell.inner_text()
        assert cell.evaluate("e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight }")

        page.locator("#anp-history-link").click()
        page.wait_for_url(f"**/notebook/dags/{DAG_ID}/history?**", timeout=30_000)
        history = _visible_svg(page, "#anp-history-chart")
        bars = history.locator("rect.anp-state-success, rect.anp-state-failed")
        assert bars.count() >= 2 and history.locator("rect.anp-state-failed").count() >= 1
        lines = _visible_svg(page, "#anp-slowest-chart")
        assert lines.locator("path.anp-line").count() == 5
        assert page.locator("#anp-history-table tr").count() == bars.count() + 1
        page.screenshot(path=str(tmp_path / "viewer-history.png"), full_page=True)
        page.emulate_media(color_scheme="dark")
        assert page.locator("#anp-history").evaluate("e => getComputedStyle(e).backgroundColor") != light
        # The newest attempt's bar opens that attempt's page.
        history.locator("a.anp-cell-bar").last.locator("rect.anp-hit").click()
        page.locator("#anp-cells-chart").wait_for(timeout=30_000)
        assert "try_number=1" in page.url and run_id.split("+")[0].split(":")[0] in page.url.replace("%3A", ":")

        # Compare with the last successful run draws the per-cell difference of time and memory.
        page.emulate_media(color_scheme="light")
        page.goto(f"{af.base}/notebook/dags/{DAG_ID}/compare?"
                  + urlencode({"run_id": run_id, "task_id": "rows", "against": "last_success"}))
        for chart_id in ("#anp-diff-time", "#anp-diff-memory"):
            assert _visible_svg(page, chart_id).locator("a.anp-diff-bar, g.anp-diff-bar").count() == 5
        page.locator("#anp-compare-chart").screenshot(path=str(tmp_path / "viewer-compare-chart.png"))
    finally:
        context.close()
    if os.environ.get("ANP_UPDATE_CHART_SCREENSHOTS") == "1":
        for name in ("viewer-charts.png", "viewer-charts-dark.png", "viewer-history.png", "viewer-compare-chart.png"):
            shutil.copy(tmp_path / name, DOCS / name)
