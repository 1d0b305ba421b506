"""A user opens "Output notebook": every viewer route through the real api-server app, with tasks run by dag.test()
(real kernel), local and S3 (moto's server) outputs, and Airflow's auth manager deciding who may read what."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag, s3_client, start_moto, upload_notebook, xcoms
from tests.viewer.client import Api
from tests.viewer.routes import route

START = pendulum.datetime(2024, 1, 1, tz="UTC")
ROUTES = ("view", "render", "download", "attempts")


def one_task(dag_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", **kwargs)
    return dag


@pytest.fixture(scope="module")
def succeeded(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One successful run with parameters, shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("ok")
    nb = folder / "report.ipynb"
    import nbformat

    params = nbformat.v4.new_code_cell("day = 'x'\nlimit = 1")
    params.metadata["tags"] = ["parameters"]
    cells = [params, nbformat.v4.new_code_cell("print(f'report for {day} limit {limit} ' + 'rendered ok')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), str(nb))
    dag = one_task("t_viewer_ok", notebook=str(nb), parameters={"day": "{{ ds }}", "limit": 42})
    res = run_dag(dag, logical_date=START)
    assert res["nb"].state == "success"
    return {"run_id": res["__run__"].xcom["run_id"], "input": nb, "output": Path(res["nb"].xcom["return_value"]),
            "link": res["nb"].xcom["_link_NotebookOutputLink"]}


def test_success_page_shows_header_parameters_and_output(api: Api, succeeded: dict[str, Any]) -> None:
    assert "/notebook/dags/t_viewer_ok/view?" in succeeded["link"] and "dag_id=" not in succeeded["link"]
    page = api.get(succeeded["link"])
    assert page.status_code == 200, page.text
    text = page.text
    notebook = api.frame(page)
    assert notebook.status_code == 200 and "report for 2024-01-01 limit 42 rendered ok" in notebook.text
    assert "rendered ok" not in text  # the notebook is only in the frame's document
    header = text[text.index("id='anp-header'"):text.index("</div></div>", text.index("id='anp-attempts'"))]
    for expected in ("t_viewer_ok", succeeded["run_id"], "Attempt", "1 of 1", "anp-state-success", str(succeeded["input"]),
                     hashlib.sha256(succeeded["input"].read_bytes()).hexdigest(), "Download .ipynb"):
        assert expected in header, expected
    assert re.search(r"<td><code>day</code></td><td><code>&quot;2024-01-01&quot;</code></td>", header)
    assert re.search(r"<td><code>limit</code></td><td><code>42</code></td>", header)
    back = re.search(r"href='([^']*)' id='anp-back'", header).group(1)
    assert back.endswith(f"/dags/t_viewer_ok/runs/{succeeded['run_id'].replace(':', '%3A').replace('+', '%2B')}/tasks/nb?try_number=1")
    assert "id='anp-failure'" not in header and "id='anp-in-progress'" not in header
    csp = notebook.headers["content-security-policy"]
    assert csp.startswith("sandbox ") and "script-src 'none'" in csp and "allow-same-origin" not in csp


def test_the_header_page_allows_no_inline_style_and_frames_the_notebook(api: Api, succeeded: dict[str, Any]) -> None:
    """The header page has no style attribute nor <style>, its policy no 'unsafe-inline'; its one stylesheet is
    the viewer's; the notebook is in a sandboxed frame (no allow-scripts, no allow-same-origin)."""
    page = api.get(succeeded["link"])
    assert page.status_code == 200
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert (csp["script-src"], csp["style-src"], csp["frame-src"], csp["frame-ancestors"], csp["default-src"]) == (
        "'none'", "'self'", "'self'", "'self'", "'none'")
    assert not re.search(r"<style|\sstyle\s*=", page.text, re.IGNORECASE)
    frame = re.search(r"<iframe [^>]*>", page.text).group(0)
    sandbox = re.search(r"sandbox='([^']*)'", frame).group(1)
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    sheet = re.search(r"<link rel='stylesheet' href='([^']*)'>", page.text).group(1)
    assert sheet.startswith("/notebook/static/viewer.css?")
    css = api.get(sheet, user=None)  # no data in it: no user needed
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and ".anp-header" in css.text
    # Error and compare pages: the same policy, no inline style either.
    for url in (route("view", "t_viewer_ok", succeeded["run_id"], try_number=9),
                route("compare", "t_viewer_ok", succeeded["run_id"], against="last_success")):
        other = api.get(url)
        assert other.status_code == 404, url
        assert other.headers["content-security-policy"] == page.headers["content-security-policy"]
        assert not re.search(r"<style|\sstyle\s*=", other.text, re.IGNORECASE), url


def test_every_route_requires_a_user_who_may_read_the_dag(api: Api, succeeded: dict[str, Any]) -> None:
    run_id = succeeded["run_id"]
    for name in ROUTES:
        url = route(name, "t_viewer_ok", run_id)
        assert api.get(url, user=None).status_code == 401, name
        bad = api.client.get(url, headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code in (401, 403) and "rendered ok" not in bad.text, name
        refused = api.get(url, user="only:some_other_dag")
        assert refused.status_code == 403 and "rendered ok" not in refused.text, name
        allowed = api.get(url, user="only:t_viewer_ok")
        assert allowed.status_code == 200, (name, allowed.text[:300])
    # The UI's cookie is accepted like the header.
    cookie = api.client.get(route("render", "t_viewer_ok", run_id), cookies={"_token": api.token("admin")})
    assert cookie.status_code == 200 and "rendered ok" in cookie.text


def test_reading_notebooks_needs_the_task_logs_permission(api: Api, succeeded: dict[str, Any]) -> None:
    """A role that may read the DAG's task instances but not its task logs (what Airflow's log route requires)
    reads no notebook: 403 on every route; the same user with log access gets 200."""
    run_id = succeeded["run_id"]
    for name, extra in [(n, {}) for n in ROUTES] + [("report", {"format": "html"}), ("file", {"path": "x.csv"}),
                                                    ("compare", {"against": "last_success"})]:
        url = route(name, "t_viewer_ok", run_id, **extra)
        refused = api.get(url, user="nologs:ada")
        assert refused.status_code == 403 and "rendered ok" not in refused.text, (name, refused.status_code)
        assert "task logs" in refused.json()["detail"], name
        if name in ROUTES:
            assert api.get(url, user="ada").status_code == 200, name
    # The user may still read the task instance through Airflow's own API: only the logs are withheld.
    ti = api.get(f"/api/v2/dags/t_viewer_ok/dagRuns/{quote(run_id, safe='')}/taskInstances/nb", user="nologs:ada")
    assert ti.status_code == 200, ti.text[:300]


def test_a_user_of_one_dag_cannot_read_another_dags_notebook(api: Api, succeeded: dict[str, Any],
                                                             make_notebook: Any) -> None:
    """``only:t_viewer_other`` may read t_viewer_other alone: t_viewer_ok's notebook stays closed to them through
    the path, and through every query-string trick (a dag_id of their DAG beside the path, the old form with two
    dag_ids, an encoded path)."""
    res = run_dag(one_task("t_viewer_other", notebook=str(make_notebook("print('other ' + 'dag output')"))))
    own_run = res["__run__"].xcom["run_id"]
    ok_run = succeeded["run_id"]
    user = "only:t_viewer_other"
    assert api.get(route("render", "t_viewer_other", own_run), user=user).status_code == 200
    for name in ROUTES:
        for url in (route(name, "t_viewer_ok", ok_run),
                    route(name, "t_viewer_ok", ok_run) + "&dag_id=t_viewer_other",
                    route(name, "t_viewer_ok", ok_run) + "&dag_id=t_viewer_other&dag_id=t_viewer_other",
                    f"/notebook/dags/t_viewer_other/..%2Ft_viewer_ok/{name}?run_id={quote(ok_run)}&task_id=nb",
                    f"/notebook/dags/t_viewer_other%2F..%2Ft_viewer_ok/{name}?run_id={quote(ok_run)}&task_id=nb"):
            got = api.get(url, user=user)
            assert got.status_code in (403, 404), (url, got.status_code)
            assert "rendered ok" not in got.text and "t_viewer_ok.nb" not in got.headers.get("content-disposition", "")
    # Their own DAG with the other's dag_id in the query: their own notebook, never the other's.
    mixed = api.get(route("render", "t_viewer_other", own_run) + "&dag_id=t_viewer_ok", user=user)
    assert mixed.status_code == 200 and "other dag output" in mixed.text and "rendered ok" not in mixed.text


def test_download_returns_the_stored_bytes(api: Api, succeeded: dict[str, Any]) -> None:
    got = api.get(route("download", "t_viewer_ok", succeeded["run_id"], try_number=1))
    assert got.status_code == 200
    assert got.content == succeeded["output"].read_bytes()
    assert got.headers["content-disposition"] == 'attachment; filename="t_viewer_ok.nb.attempt-1.ipynb"'


def test_traversal_and_free_paths_are_refused(api: Api, succeeded: dict[str, Any]) -> None:
    secret = "/etc/passwd"
    for url in (
        route("view", "../../../etc", "..", "passwd"),
        route("download", "t_viewer_ok", "../../../../etc", "passwd"),
        route("download", "t_viewer_ok", succeeded["run_id"], "../../../../../etc/passwd"),
        f"/notebook/view?path={secret}",
        f"/notebook/download?url=file://{secret}",
        "/notebook/download?location=s3://bucket/key.ipynb",
        "/notebook/view/..%2f..%2fetc%2fpasswd",
    ):
        got = api.get(url)
        assert got.status_code == 404, (url, got.status_code)
        assert "root:" not in got.text
    # Extra parameters are ignored: the task instance decides what is served.
    got = api.get(route("download", "t_viewer_ok", succeeded["run_id"], location=secret, path=secret))
    assert got.status_code == 200 and got.content == succeeded["output"].read_bytes()


def test_failed_attempt_names_and_highlights_the_failing_cell(api: Api, make_notebook: Any) -> None:
    nb = make_notebook("print('before ' + 'the failure')", "x = 1\nraise RuntimeError('shown in viewer')", "print('never')")
    res = run_dag(one_task("t_viewer_fail", notebook=str(nb)))
    assert res["nb"].state == "failed"
    page = api.get(res["nb"].xcom["_link_NotebookOutputLink"])
    assert page.status_code == 200
    text = page.text
    failure = re.search(r"<div class='anp-failure' id='anp-failure'>(.*?)</div>", text).group(1)
    assert "Failed at cell 2 (In [2])" in failure and "RuntimeError: shown in viewer" in failure
    frame_src = re.search(r"<iframe id='anp-notebook' [^>]*src='([^']*)'", text).group(1)
    assert f"href='{frame_src}#cell-id=failing-cell' target='anp-notebook'" in failure  # scrolls the frame
    assert "Jump to the failing cell" in failure
    text = api.frame(page).text
    cell = re.search(r'<div class="([^"]*)" id="cell-id=failing-cell"', text)
    assert cell and "celltag_airflow-failing-cell" in cell.group(1)
    failing_html = text[cell.start():text.index('id="cell-id=', cell.end())]
    assert "shown in viewer" in failing_html and "raise" in failing_html
    assert "before the failure" in text and "anp-state-failed" in page.text


def test_a_retried_task_keeps_every_attempts_notebook(api: Api, make_notebook: Any, tmp_path: Path) -> None:
    nb = make_notebook("#parameters\nattempt = 0", "if int(attempt) == 1:\n    raise ValueError('first attempt fails')",
                       "print(f'attempt {attempt} ' + 'succeeded')")
    out = tmp_path / "out" / "flaky-{{ ti.try_number }}.ipynb"  # not the default layout: found by the record
    dag = one_task("t_viewer_retry", notebook=str(nb), output_notebook=str(out),
                   parameters={"attempt": "{{ ti.try_number }}"}, retries=1, retry_delay=timedelta(seconds=0))
    res = run_dag(dag)
    run_id = res["__run__"].xcom["run_id"]
    assert (res["nb"].state, res["nb"].try_number) == ("success", 2)
    assert xcoms("t_viewer_retry", run_id, "nb")["notebook_record"]["try_number"] == 2  # XCom forgot attempt 1

    listed = api.get(route("attempts", "t_viewer_retry", run_id)).json()["attempts"]
    assert [(a["try_number"], a["state"]) for a in listed] == [(1, "failed"), (2, "success")]

    first = api.get(listed[0]["view_url"])
    assert first.status_code == 200
    assert "ValueError: first attempt fails" in first.text and "1 of 2" in first.text
    assert re.search(r"<li><a class='anp-current' href='[^']*try_number=1'>Attempt 1</a>", first.text)
    second = api.get(route("view", "t_viewer_retry", run_id))  # no try_number: the latest
    assert second.status_code == 200 and "id='anp-failure'" not in second.text
    assert "attempt 2 succeeded" in api.frame(second).text
    assert "Attempt 1</a> <span class='anp-state anp-state-failed'>" in second.text

    stored = (tmp_path / "out" / "flaky-1.ipynb").read_bytes()
    assert api.get(listed[0]["download_url"]).content == stored
    assert api.get(route("view", "t_viewer_retry", run_id, try_number=3)).status_code == 404

    # The latest notebook is gone: the page says so and still leads to the attempt that failed.
    (tmp_path / "out" / "flaky-2.ipynb").unlink()
    gone = api.get(route("view", "t_viewer_retry", run_id))
    assert gone.status_code == 404 and "nothing is there any more" in gone.text
    assert re.search(r"<a href='[^']*try_number=1'>Attempt 1 \(failed\)</a>", gone.text)


def test_missing_or_foreign_notebooks_get_a_clear_404(api: Api, make_notebook: Any, tmp_path: Path) -> None:
    nb = make_notebook("print('soon gone')")
    out = tmp_path / "gone.ipynb"
    res = run_dag(one_task("t_viewer_gone", notebook=str(nb), output_notebook=str(out)))
    run_id = res["__run__"].xcom["run_id"]
    original = out.read_bytes()

    out.write_text("root:x:0:0:root:/root:/bin/bash\n")
    page = api.get(route("view", "t_viewer_gone", run_id))
    assert page.status_code == 404 and "Not an output notebook" in page.text and "root:x" not in page.text

    other = original.replace(b'"try_number": 1', b'"try_number": 7')
    assert other != original
    out.write_bytes(other)
    page = api.get(route("download", "t_viewer_gone", run_id))
    assert page.status_code == 404 and "another task attempt" in page.text

    out.unlink()
    page = api.get(route("view", "t_viewer_gone", run_id))
    assert page.status_code == 404 and "nothing is there any more" in page.text and "Traceback" not in page.text

    page = api.get(route("view", "no_such_dag", "r"))
    assert page.status_code == 404 and "has no attempt" in page.text
    assert api.get(route("attempts", "no_such_dag", "r")).json() == {"attempts": []}


def test_s3_output_through_moto(api: Api, moto: Any) -> None:
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="viewer")
    upload_notebook(s3, "viewer", "in.ipynb", "print('from s3 ' + 'rendered')")
    dag = one_task("t_viewer_s3", notebook="s3://viewer/in.ipynb", output_notebook="s3://viewer/out.ipynb",
                   conn_id="moto_s3")
    res = run_dag(dag)
    run_id = res["__run__"].xcom["run_id"]
    page = api.get(res["nb"].xcom["_link_NotebookOutputLink"])
    assert page.status_code == 200 and "s3://viewer/out.ipynb" in page.text
    assert "from s3 rendered" in api.frame(page).text
    stored = s3.get_object(Bucket="viewer", Key="out.ipynb")["Body"].read()
    assert api.get(route("download", "t_viewer_s3", run_id)).content == stored


def test_an_unreachable_store_is_a_502_page(api: Api, make_notebook: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of its own (a second moto server), stopped after the run: the page names what failed."""
    server = start_moto(tmp_path)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_VIEWER_GONE_S3", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"}}))
        s3_client(server.endpoint).create_bucket(Bucket="soon-gone")
        nb = make_notebook("print('stored in a store that goes away')")
        dag = one_task("t_viewer_unreachable", notebook=str(nb), output_notebook="s3://soon-gone/out.ipynb",
                       conn_id="viewer_gone_s3")
        res = run_dag(dag)
        run_id = res["__run__"].xcom["run_id"]
        assert api.get(route("view", "t_viewer_unreachable", run_id)).status_code == 200
    finally:
        server.stop()
    page = api.get(route("view", "t_viewer_unreachable", run_id))
    assert page.status_code == 502, page.text
    assert "Output notebook unreachable" in page.text and "s3://soon-gone/out.ipynb" in page.text
    assert "Traceback" not in page.text


def test_a_running_notebook_shows_its_checkpoint_in_progress(api: Api, make_notebook: Any, tmp_path: Path) -> None:
    """The task runs in its own process (as on a worker) and waits for a file; meanwhile the page shows it."""
    flag = tmp_path / "release"
    nb = make_notebook(
        "print('checkpoint ' + 'visible')",
        f"import os, time\nend = time.time() + 90\nwhile not os.path.exists({str(flag)!r}) and time.time() < end:\n"
        "    time.sleep(0.1)",
    )
    dag_file = tmp_path / "running_dag.py"
    dag_file.write_text(
        "import pendulum\nfrom airflow.sdk import DAG\nfrom airflow_notebook_provider.operators.notebook import "
        "NotebookOperator\n"
        "with DAG(dag_id='t_viewer_running', schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC')) as dag:\n"
        f"    NotebookOperator(task_id='nb', notebook={str(nb)!r}, checkpoint_interval=0.2)\n"
    )
    script = ("import runpy, sys\nfrom tests.helpers import run_dag\n"
              f"res = run_dag(runpy.run_path({str(dag_file)!r})['dag'])\nprint('STATE', res['nb'].state)\n")
    log = tmp_path / "task.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            from airflow.models.taskinstance import TaskInstance
            from airflow.utils.session import create_session
            from sqlalchemy import select

            with create_session() as session:
                run_id = session.scalar(select(TaskInstance.run_id).where(TaskInstance.dag_id == "t_viewer_running"))
            if run_id:
                page = api.get(route("view", "t_viewer_running", run_id))
                if page.status_code == 200 and "checkpoint visible" in api.frame(page).text:
                    break
            time.sleep(0.5)
        assert page is not None and page.status_code == 200 and "checkpoint visible" in api.frame(page).text, \
            log.read_text()[-3000:]
        assert "id='anp-in-progress'" in page.text and "anp-state-running" in page.text
        flag.touch()
        assert proc.wait(timeout=120) == 0 and "STATE success" in log.read_text()
    finally:
        flag.touch()
        stop_group(proc)
    done = api.get(route("view", "t_viewer_running", run_id))
    assert done.status_code == 200 and "id='anp-in-progress'" not in done.text and "anp-state-success" in done.text


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def test_plugin_adds_a_notebook_view_to_task_instances(api: Api, succeeded: dict[str, Any]) -> None:
    plugins = api.get("/api/v2/plugins").json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "notebook_viewer")
    view = next(v for v in ours["external_views"] if v["name"] == "Notebook")
    assert view["destination"] == "task_instance" and view["url_route"] == "notebook"
    # What the UI loads on a task instance page (it leaves {MAP_INDEX} as is for a task that is not mapped).
    from urllib.parse import quote

    href = view["href"].replace("{DAG_ID}", "t_viewer_ok").replace("{TASK_ID}", "nb")
    href = href.replace("{RUN_ID}", quote(succeeded["run_id"], safe=""))  # as the UI does (encodeURIComponent)
    assert view["href"].startswith("/notebook/dags/{DAG_ID}/view?")
    page = api.get(href)
    assert page.status_code == 200 and "rendered ok" in api.frame(page).text


def test_each_mapped_instance_shows_its_own_notebook(api: Api, make_notebook: Any) -> None:
    nb = make_notebook("#parameters\nregion = 'none'", "print(f'region is {region}')")
    with DAG(dag_id="t_viewer_mapped", schedule=None, start_date=START) as dag:
        NotebookOperator.partial(task_id="nb", notebook=str(nb)).expand(parameters=[{"region": "eu"}, {"region": "us"}])
    res = run_dag(dag)
    run_id = res["__run__"].xcom["run_id"]
    for index, region in ((0, "eu"), (1, "us")):
        link = res[f"nb[{index}]"].xcom["_link_NotebookOutputLink"]
        assert f"map_index={index}" in link
        page = api.get(link)
        assert page.status_code == 200 and f"region is {region}" in api.frame(page).text
        assert re.search(rf"<th>Map index</th><td>{index}</td>", page.text)
        back = re.search(r"href='([^']*)' id='anp-back'", page.text).group(1)
        assert f"/tasks/nb/mapped/{index}?try_number=1" in back
    # Not mapped -1 is not a mapped instance.
    assert api.get(route("view", "t_viewer_mapped", run_id, map_index=-1)).status_code == 404
    assert api.get(route("view", "t_viewer_mapped", run_id, map_index="x")).status_code == 404
