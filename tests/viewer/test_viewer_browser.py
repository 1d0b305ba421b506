"""What a user sees: a real Airflow (api-server, scheduler, dag-processor; LocalExecutor on SQLite) and Debian's
chromium driven by Playwright. Log in through the UI's form, open each task instance, click "Output notebook"."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.airflow_servers import Airflow, trigger_and_wait
from tests.browser import CHROMIUM, HAVE_CHROMIUM, chromium
from tests.browser import log_in as log_in_as

DAG_ID = "browser_notebooks"

pytestmark = pytest.mark.skipif(
    not HAVE_CHROMIUM, reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"
)


@pytest.fixture(scope="module")
def airflow(airflow_server: Airflow) -> tuple[Airflow, str]:
    """The example DAG (one notebook task succeeds, one fails) run once by the scheduler; yields the run id."""
    run_id, state = trigger_and_wait(airflow_server, DAG_ID)
    assert state == "failed"
    return airflow_server, run_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def open_output_notebook(page: Any, af: Airflow, run_id: str, task_id: str, dag_id: str = DAG_ID) -> None:
    """From the task instance page, as a user: Details tab, then the "Output notebook" button."""
    page.goto(f"{af.base}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
    page.get_by_role("link", name="Details").click()
    page.get_by_role("link", name="Output notebook").click(timeout=30_000)
    page.wait_for_url(f"**/notebook/dags/{dag_id}/view?**", timeout=30_000)
    page.locator("#anp-header").wait_for(timeout=30_000)
    page.frame_locator("#anp-notebook").locator(".jp-Notebook").wait_for(timeout=30_000)


def log_in(page: Any, af: Airflow) -> None:
    """Through the UI's login form, as the admin user."""
    log_in_as(page, af.base, af.username, af.password)


def test_user_logs_in_and_reads_both_notebooks(airflow: tuple[Airflow, str], browser: Any, screenshots: Path) -> None:
    af, run_id = airflow
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        log_in(page, af)

        open_output_notebook(page, af, run_id, "succeeds")
        page.screenshot(path=str(screenshots / "viewer-success.png"))
        notebook = page.frame_locator("#anp-notebook")
        assert notebook.get_by_text("hello Ada from the scheduler").is_visible()
        assert page.locator("#anp-header .anp-state-success").first.is_visible()
        assert page.locator("#anp-failure").count() == 0

        open_output_notebook(page, af, run_id, "fails")
        failing = notebook.locator(".celltag_airflow-failing-cell")
        # Cell 27: the parameters cell, the injected one, 24 steps, then the raise.
        assert page.locator("#anp-failure").inner_text().startswith("Failed at cell 27 (In [27]):")
        params = page.locator(".anp-params").inner_text()
        assert "region" in params and '"eu"' in params and "limit" in params and "100" in params
        assert "RuntimeError: the browser sees this" in page.locator("#anp-failure").inner_text()
        assert not _in_viewport(failing)
        page.screenshot(path=str(screenshots / "viewer-failed-top.png"))
        page.get_by_role("link", name="Jump to the failing cell").click()
        frame = page.frame(name="anp-notebook")
        assert frame is not None
        frame.wait_for_function("() => location.hash === '#cell-id=failing-cell'")
        failing.wait_for(state="visible")
        assert _in_viewport(failing)  # scrolled inside the frame; the header stays where it was
        assert page.locator("#anp-failure").is_visible()
        assert "RuntimeError: the browser sees this" in failing.inner_text()
        style = failing.evaluate("e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineColor]")
        assert style == ["solid", "rgb(211, 47, 47)"]  # the red frame a user sees around the failing cell
        page.screenshot(path=str(screenshots / "viewer-failed.png"))

        # "Download .ipynb" hands over the stored bytes (the sandboxed page may start downloads).
        with page.expect_download(timeout=30_000) as download:
            page.get_by_role("link", name="Download .ipynb").click()
        stored = next((af.home / "notebook_outputs" / DAG_ID).glob("*/fails/attempt-1.ipynb"))
        assert Path(download.value.path()).read_bytes() == stored.read_bytes()
        assert download.value.suggested_filename == f"{DAG_ID}.fails.attempt-1.ipynb"

        # The same notebook in the task instance's "Notebook" tab (the plugin's external view).
        page.goto(f"{af.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/fails/plugin/notebook")
        tab = page.frame_locator("iframe[title='Notebook']")
        tab.locator("#anp-failure").wait_for(timeout=30_000)
        assert "RuntimeError: the browser sees this" in tab.locator("#anp-failure").inner_text()
        # The notebook's own frame inside the tab loads too (the UI's token reaches the nested frame).
        in_tab = tab.frame_locator("#anp-notebook").locator(".celltag_airflow-failing-cell")
        in_tab.wait_for(timeout=30_000)
        assert "RuntimeError: the browser sees this" in in_tab.inner_text()
        page.screenshot(path=str(screenshots / "notebook-tab.png"))
    finally:
        context.close()
    print(f"screenshots: {screenshots}")
    if (target := _docs_target()) is not None:
        shutil.copy(screenshots / "viewer-failed-top.png", target / "viewer-failed.png")
        shutil.copy(screenshots / "viewer-failed.png", target / "viewer-failed-cell.png")


def test_compare_a_failed_run_with_the_last_one_that_passed(airflow_server: Airflow, browser: Any,
                                                            screenshots: Path) -> None:
    """Two runs triggered through the REST API, limit 5 (passes) then 500 (fails); from the failed task's
    "Output notebook", Compare with the last successful run shows the parameter and the first cell that differ."""
    af = airflow_server
    ok_run, state = trigger_and_wait(af, "browser_compare", {"limit": 5})
    assert state == "success"
    bad_run, state = trigger_and_wait(af, "browser_compare", {"limit": 500})
    assert state == "failed"
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        log_in(page, af)
        open_output_notebook(page, af, bad_run, "rows", dag_id="browser_compare")
        page.locator("#anp-compare-links").get_by_role("link", name="last successful run").click()
        page.wait_for_url("**/notebook/dags/browser_compare/compare?**", timeout=30_000)
        page.locator("#anp-compare").wait_for(timeout=30_000)
        assert "These runs differ." in page.locator("#anp-verdict").inner_text()
        rows = page.locator("#anp-param-diff tr")
        assert rows.count() == 2  # the header and the one parameter that differs
        assert rows.nth(1).inner_text().split() == ["limit", "5", "500"]
        assert page.locator("#anp-first-status").inner_text() == (
            "cell 5 if limit > 100: — completed in A, failed in B.")
        assert "+[error] ValueError: too many rows: 500" in page.locator("#anp-outputs").inner_text()
        assert "Unchanged (sha256" in page.locator("#anp-input").inner_text()
        sides = page.locator("#anp-sides").inner_text()
        assert f"last successful run ({ok_run}, attempt 1)" in sides and "this attempt (1)" in sides
        first_row = page.locator("#anp-cells tr.anp-first")
        assert first_row.inner_text().split()[:4] == ["cell", "5", "completed", "failed"]
        page.screenshot(path=str(screenshots / "compare.png"), full_page=True)
        # The other side's link opens the passed run's notebook.
        page.locator("#anp-sides a").first.click()
        page.locator("#anp-header").wait_for(timeout=30_000)
        page.frame_locator("#anp-notebook").get_by_text("5 rows loaded").wait_for(timeout=30_000)
    finally:
        context.close()
    if os.environ.get("ANP_UPDATE_COMPARE_SCREENSHOT") == "1":
        shutil.copy(screenshots / "compare.png", Path(__file__).resolve().parents[2] / "docs" / "compare.png")


def test_viewer_refuses_a_browser_that_is_not_logged_in(airflow: tuple[Airflow, str], browser: Any) -> None:
    af, run_id = airflow
    context = browser.new_context()
    try:
        for url in (f"{af.base}/notebook/dags/{DAG_ID}/view?run_id={quote(run_id, safe='')}&task_id=fails",
                    f"{af.base}/notebook/dags/{DAG_ID}/render?run_id={quote(run_id, safe='')}&task_id=fails"):
            response = context.new_page().goto(url)
            assert response is not None and response.status == 401, url
    finally:
        context.close()


# What each header element must look like, whatever the notebook's HTML does: (selector, computed style).
HEADER_LOOK = {
    "#anp-header": {"display": "block", "visibility": "visible", "background-color": "rgb(247, 247, 249)"},
    "#anp-header .anp-state-success": {"background-color": "rgb(200, 230, 201)", "color": "rgb(27, 94, 32)"},
    "#anp-header .anp-params": {"visibility": "visible"},
    "#anp-back": {"font-size": "14px", "color": "rgb(11, 87, 208)"},
}


def test_notebook_html_cannot_cover_or_restyle_the_header(airflow_server: Airflow, browser: Any,
                                                          screenshots: Path) -> None:
    """``browser_hostile``'s notebook outputs a full-window ``position:fixed`` div with the highest z-index (a
    fake header) and ``<style>`` rules for the header's ids and classes. The header's state, parameters and
    links are still the topmost elements where they are drawn, and look as they should; the notebook's HTML is
    inside a sandboxed frame."""
    af = airflow_server
    run_id, state = trigger_and_wait(af, "browser_hostile")
    assert state == "success"
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        log_in(page, af)
        open_output_notebook(page, af, run_id, "overlay", dag_id="browser_hostile")
        notebook = page.frame_locator("#anp-notebook")
        notebook.get_by_text("restyled", exact=True).wait_for(timeout=30_000)
        assert notebook.locator("#anp-fake").is_visible()  # drawn, but inside its frame
        assert page.locator("#anp-fake").count() == 0
        frame = page.locator("iframe#anp-notebook")
        assert frame.get_attribute("sandbox") is not None
        assert "allow-scripts" not in frame.get_attribute("sandbox")
        assert "allow-same-origin" not in frame.get_attribute("sandbox")
        page.screenshot(path=str(screenshots / "hostile.png"))
        for selector in ("#anp-header .anp-state-success", "#anp-header .anp-params", "#anp-back",
                         "#anp-download"):
            target = page.locator(selector).first
            target.scroll_into_view_if_needed()
            on_top = target.evaluate(
                "e => { const r = e.getBoundingClientRect();"
                " const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 8));"
                " return hit !== null && (hit === e || e.contains(hit)); }")
            assert on_top, f"{selector} is covered"
        for selector, expected in HEADER_LOOK.items():
            look = page.locator(selector).first.evaluate(
                "(e, names) => Object.fromEntries(names.map(n => [n, getComputedStyle(e).getPropertyValue(n)]))",
                list(expected))
            assert look == expected, selector
        params = page.locator(".anp-params").inner_text()
        assert "name" in params and '"Ada"' in params
    finally:
        context.close()


def _in_viewport(locator: Any) -> bool:
    return bool(locator.evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight; }"
    ))


def _docs_target() -> Path | None:
    """Set ANP_UPDATE_DOCS_SCREENSHOT=1 to refresh the README's screenshots (docs/viewer-failed*.png); and
    ANP_UPDATE_COMPARE_SCREENSHOT=1 for docs/compare.png."""
    if os.environ.get("ANP_UPDATE_DOCS_SCREENSHOT") != "1":
        return None
    return Path(__file__).resolve().parents[2] / "docs"
