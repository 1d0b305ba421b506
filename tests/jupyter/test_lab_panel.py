"""The JupyterLab panel in Debian's Chromium, against a real JupyterLab (``.venv-jupyter`` with both extensions), a
real Airflow (api-server, scheduler, dag-processor) and a notebook that fails for one parameter value: the panel
lists the failed attempt, opens its output read-only, Debug opens the copy at the failing cell with the run's
parameters injected, Run now with a good value ends in success in the panel, Schedule shows Airflow's parse error
then writes the DAG file, and a wrong password shows the fix.

``UPDATE_SCREENSHOT=1`` also saves the panel next to the failed run's debug copy as docs/jupyterlab-panel.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.airflow_servers import Airflow, start_airflow, trigger_and_wait
from tests.browser import HAVE_CHROMIUM, chromium
from tests.helpers import python_notebook
from tests.jupyter.jupyter_servers import JUPYTER, REPO, jupyter_server

BUILT = REPO / "airflow_notebook_provider" / "jupyter" / "labextension" / "package.json"
LINKED = REPO / ".venv-jupyter" / "share" / "jupyter" / "labextensions" / "airflow-notebook-provider" / "package.json"

pytestmark = [
    pytest.mark.skipif(not JUPYTER.exists(), reason=f"{JUPYTER} is missing: `make jupyter` builds JupyterLab's "
                                                    "virtualenv (.venv-jupyter) this test starts"),
    pytest.mark.skipif(not BUILT.exists(), reason=f"{BUILT} is missing: `make labextension` builds the frontend "
                                                  "(needs Node and npm)"),
    pytest.mark.skipif(not LINKED.exists(), reason=f"{LINKED} is missing: `make jupyter` links the built frontend "
                                                   "into .venv-jupyter"),
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="Debian's chromium (/usr/bin/chromium) is not installed"),
]

DAG_ID = "lab_panel"
NOTEBOOK = "reports/daily.ipynb"
PANEL = "#airflow-notebook-runs"
SCREENSHOT = REPO / "docs" / "jupyterlab-panel.png"


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lab-panel")
    places = {name: base / name for name in ("root", "dags", "airflow", "jupyter", "jupyter-bad")}
    for path in places.values():
        path.mkdir()
    (places["root"] / "reports").mkdir()
    nbformat.write(python_notebook(
        "#parameters\nfail = False  # fail on purpose\nlabel = 'daily'",
        *[f"step_{i} = {i}\nprint('step {i} done')" for i in range(12)],
        "if fail:\n    raise ValueError(f'asked to fail ({label})')",
        "print(f'{label} done')",
    ), str(places["root"] / NOTEBOOK))
    (places["dags"] / "lab_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_notebook_provider import notebook_params\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        f"NB = {str(places['root'] / NOTEBOOK)!r}\n"
        "PARAMS = notebook_params(NB)\n"
        f"with DAG(dag_id={DAG_ID!r}, schedule=None,\n"
        "         start_date=pendulum.datetime(2024, 1, 1, tz='UTC'), params=PARAMS, render_template_as_native_obj=True):\n"
        "    NotebookOperator(task_id='daily', notebook=NB,\n"
        "                     parameters={n: '{{ params.' + n + ' }}' for n in PARAMS})\n"
    )
    return places


@pytest.fixture(scope="module")
def airflow(places: dict[str, Path]) -> Iterator[Airflow]:
    af = start_airflow(places["airflow"], places["dags"])
    try:
        af.wait_for(f"the dag-processor parses {DAG_ID}", lambda: af.api("GET", f"/api/v2/dags/{DAG_ID}"), 180)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def failed_run(airflow: Airflow) -> str:
    run_id, state = trigger_and_wait(airflow, DAG_ID, conf={"fail": True, "label": "broken"})
    assert state == "failed", airflow.tails()
    return run_id


def _settings(af: Airflow, places: dict[str, Path], password: str) -> dict[str, str]:
    return {"AIRFLOW_NOTEBOOK_API_URL": af.base, "AIRFLOW_NOTEBOOK_API_USERNAME": "analyst",
            "AIRFLOW_NOTEBOOK_API_PASSWORD": password, "AIRFLOW_NOTEBOOK_DAG_FOLDER": str(places["dags"])}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def lab_page(airflow: Airflow, places: dict[str, Path], failed_run: str, browser: Any) -> Iterator[Any]:
    """JupyterLab with the notebook open and the Airflow panel shown, in a 1600x1000 window."""
    with jupyter_server(places["root"], places["jupyter"], _settings(airflow, places, airflow.password)) as server:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        try:
            page.goto(f"{server.url}/lab/tree/{NOTEBOOK}?token={server.token}&reset", timeout=120_000)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
            _open_panel(page)
            yield page
        except BaseException:
            print(server.tail())
            raise
        finally:
            context.close()


def _open_panel(page: Any) -> None:
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="airflow-notebook-runs"]')
    tab.wait_for(timeout=60_000)
    if not page.locator(PANEL).is_visible():
        tab.click()
    page.locator(PANEL).wait_for(state="visible", timeout=30_000)


def _current_notebook(page: Any) -> Any:
    return page.locator("#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)")


def test_the_panel_lists_the_failed_attempt_and_opens_its_output(lab_page: Any, failed_run: str) -> None:
    panel = lab_page.locator(PANEL)
    panel.locator(".anp-connected").wait_for(timeout=60_000)
    failed = panel.locator(f'.anp-attempt[data-run-id="{failed_run}"]')
    failed.wait_for(timeout=60_000)
    assert failed.get_attribute("data-state") == "failed"
    assert "FAILED" in failed.locator(".anp-badge").inner_text().upper()
    assert "fail=true" in failed.locator(".anp-params").inner_text().lower().replace(" ", "")
    assert DAG_ID in panel.locator(".anp-task-table").inner_text()

    failed.locator(".anp-attempt-time").click()  # a click on the attempt opens its output, read-only
    tab = lab_page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="daily.try1.ipynb")
    tab.wait_for(timeout=60_000)
    output = _current_notebook(lab_page)
    output.locator(".jp-OutputArea-output", has_text="asked to fail (broken)").first.wait_for(timeout=60_000)
    tab.locator(".lm-TabBar-tabCloseIcon").click()


def test_debug_opens_the_copy_at_the_failing_cell(lab_page: Any, failed_run: str, places: dict[str, Path]) -> None:
    panel = lab_page.locator(PANEL)
    panel.locator(f'.anp-attempt[data-run-id="{failed_run}"] .anp-debug').click()
    tab = lab_page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=".debug.ipynb")
    tab.wait_for(timeout=60_000)
    notice = panel.locator(".anp-notice", has_text="failed")
    notice.wait_for(timeout=60_000)
    assert re.search(r"Cell \d+ failed: ValueError: asked to fail \(broken\)", notice.inner_text()), notice.inner_text()

    copy = _current_notebook(lab_page)
    active = copy.locator(".jp-Cell.jp-mod-active .jp-InputArea-editor")
    active.wait_for(timeout=30_000)
    assert "raise ValueError" in active.inner_text()
    from playwright.sync_api import expect

    expect(active).to_be_in_viewport(timeout=30_000)  # scrolled to it (JupyterLab scrolls smoothly: wait for it)
    injected = copy.locator(".jp-Cell .jp-InputArea-editor", has_text="fail = True")
    assert "label = 'broken'" in injected.first.inner_text()
    assert list((places["root"] / "reports").glob("*.debug.ipynb"))
    if os.environ.get("UPDATE_SCREENSHOT"):
        # Without the toasts (JupyterLab's news question, the debug copy's), which would cover the notebook.
        lab_page.evaluate("document.querySelectorAll('.Toastify__toast-container').forEach(e => e.remove())")
        lab_page.screenshot(path=str(SCREENSHOT))


def test_run_now_with_a_good_value_ends_in_success(lab_page: Any, failed_run: str) -> None:
    panel = lab_page.locator(PANEL)
    lab_page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="daily.ipynb").first.click()
    panel.locator(".anp-run-now").click()
    dialog = lab_page.locator(".jp-Dialog")
    dialog.locator('[data-name="param:label"]').fill("fixed")
    assert dialog.locator('[data-name="param:fail"]').input_value() == "false"
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    notice = panel.locator(".anp-notice", has_text="following it here")
    notice.wait_for(timeout=60_000)
    run_id = re.search(r"run (\S+): following", notice.inner_text()).group(1)
    panel.locator(f'.anp-attempt[data-run-id="{run_id}"]').wait_for(timeout=120_000)
    panel.locator(".anp-notice", has_text=f"Run {run_id} of {DAG_ID} ended: success").wait_for(timeout=240_000)
    done = panel.locator(f'.anp-attempt[data-run-id="{run_id}"]')
    assert done.get_attribute("data-state") == "success"
    assert "label='fixed'" in done.locator(".anp-params").inner_text()


def test_schedule_shows_airflows_parse_error_then_writes_the_dag(lab_page: Any, places: dict[str, Path]) -> None:
    panel = lab_page.locator(PANEL)
    panel.locator(".anp-schedule").click()
    dialog = lab_page.locator(".jp-Dialog")
    assert dialog.locator('[data-name="dag_id"]').input_value() == "daily"
    dialog.locator('[data-name="dag_id"]').fill("lab_scheduled")
    dialog.locator('[data-name="schedule"]').fill("61 * * * *")
    dialog.locator('[data-name="param:label"]').fill("weekly")
    dialog.locator('[data-name="folder"]').fill("from_lab")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    error = lab_page.locator(".jp-Dialog .anp-parse-error")  # the form again, with Airflow's parse error
    error.wait_for(timeout=180_000)
    assert "Airflow cannot parse the DAG" in error.inner_text() and "61" in error.inner_text()
    assert not (places["dags"] / "from_lab" / "lab_scheduled.py").exists()
    assert lab_page.locator('.jp-Dialog [data-name="param:label"]').input_value() == "weekly"  # kept
    lab_page.locator('.jp-Dialog [data-name="schedule"]').fill("0 6 * * 1-5")
    lab_page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    panel.locator(".anp-notice", has_text="Scheduled: wrote").wait_for(timeout=180_000)
    dag_file = places["dags"] / "from_lab" / "lab_scheduled.py"
    assert dag_file.is_file() and "'weekly'" in dag_file.read_text()


def test_a_wrong_password_shows_the_fix(airflow: Airflow, places: dict[str, Path], browser: Any) -> None:
    with jupyter_server(places["root"], places["jupyter-bad"], _settings(airflow, places, "not-the-password")) as server:
        page = browser.new_page()
        try:
            page.goto(f"{server.url}/lab?token={server.token}&reset", timeout=120_000)
            _open_panel(page)
            error = page.locator(f"{PANEL} .anp-status-error")
            error.wait_for(timeout=60_000)
            assert "refused the login of user 'analyst'" in error.inner_text()
            assert "AIRFLOW_NOTEBOOK_API_PASSWORD" in error.locator(".anp-fix").inner_text()
        finally:
            page.close()
