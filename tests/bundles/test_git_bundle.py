"""Re-runs use the run's version: a real ``GitDagBundle`` on a local repository, the real scheduler, dag-processor and
api-server. Commit v1, run; commit v2, run; clear the first run's task through the REST API: its new attempt runs
v1's notebook and records v1's commit, the second run shows v2; "run on latest version" runs v2. The viewer's header
(in Chromium) and Compare (its HTTP route) show the versions; OpenLineage's run facet carries them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.airflow_servers import Airflow, start_airflow, trigger_and_wait
from tests.browser import HAVE_CHROMIUM, chromium, log_in
from tests.helpers import cli, code_cells, python_notebook, read_nb, stream_text

DAG_ID = "t_git_bundle"
BUNDLE = "notebooks_git"
DAG_FILE = f"""\
import pendulum
from airflow.sdk import DAG
from airflow_notebook_provider.operators.notebook import NotebookOperator
with DAG(dag_id={DAG_ID!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    NotebookOperator(task_id="report", notebook="notebooks/report.ipynb", input_files=["helpers/*.py"], retries=0)
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def helper_source(version: str) -> str:
    return f"VERSION = {version!r}\n"


def commit_notebook(repo: Path, version: str) -> str:
    """Commit ``notebooks/report.ipynb`` printing ``version``, and the helper module next to it that it imports
    (``input_files``); the commit's sha."""
    import nbformat

    (repo / "notebooks" / "helpers").mkdir(exist_ok=True)
    (repo / "notebooks" / "helpers" / "stamp.py").write_text(helper_source(version))
    nbformat.write(python_notebook("from helpers.stamp import VERSION\nprint('helper', VERSION)",
                                   f"print('notebook {version}')"), str(repo / "notebooks" / "report.ipynb"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", version)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """v1 committed and run, v2 committed and run, then run 1's task cleared (its run's version), then cleared again
    on the latest version. Yields the server, the commits and the run ids."""
    home = tmp_path_factory.mktemp("airflow-home")
    repo = home / "repo"
    (repo / "notebooks").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "bundle_dag.py").write_text(DAG_FILE)
    v1 = commit_notebook(repo, "v1")
    bundles = [{"name": BUNDLE, "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
                "kwargs": {"repo_url": str(repo), "tracking_ref": "main", "refresh_interval": 1}}]
    af = start_airflow(home, home / "no-dags", extra_env={
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(home / "ol.jsonl"),
                                                       "append": True}),
    })
    try:
        version_parsed(af, v1)
        run1, state = trigger_and_wait(af, DAG_ID)
        assert state == "success", af.tails()
        v2 = commit_notebook(repo, "v2")
        version_parsed(af, v2)
        run2, state = trigger_and_wait(af, DAG_ID)
        assert state == "success", af.tails()
        clear(af, run1, latest=False)
        rerun_ends(af, run1, try_number=2)
        clear(af, run1, latest=True)
        rerun_ends(af, run1, try_number=3)
        yield {"af": af, "v1": v1, "v2": v2, "run1": run1, "run2": run2}
    finally:
        af.stop()


def version_parsed(af: Airflow, sha: str) -> None:
    """Wait until the dag-processor has parsed the DAG at commit ``sha`` (a DAG version of that bundle version)."""
    def parsed() -> bool:
        versions = af.api("GET", f"/api/v2/dags/{DAG_ID}/dagVersions")["dag_versions"]
        return any(v["bundle_version"] == sha for v in versions)

    af.wait_for(f"the DAG's version at {sha[:8]}", parsed, 180)


def clear(af: Airflow, run_id: str, *, latest: bool) -> None:
    af.api("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": ["report"], "only_failed": False,
        "reset_dag_runs": True, "run_on_latest_version": latest,
    })


def rerun_ends(af: Airflow, run_id: str, try_number: int) -> None:
    def ended() -> bool:  # the run too: clearing a run that is still running keeps its bundle version
        run = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
        ti = af.api("GET", f"{run}/taskInstances/report")
        return (ti["try_number"] == try_number and ti["state"] in ("success", "failed")
                and af.api("GET", run)["state"] in ("success", "failed"))

    af.wait_for(f"attempt {try_number} of {run_id}", ended, 180)


def output(s: dict[str, Any], run_id: str, try_number: int) -> dict[str, Any]:
    """The output notebook of one attempt, found by what its metadata says."""
    folder = s["af"].home / "notebook_outputs" / DAG_ID
    found = [p for p in folder.glob(f"*/report/attempt-{try_number}.ipynb")
             if read_nb(p)["metadata"]["airflow"]["run_id"] == run_id]
    assert len(found) == 1, (run_id, try_number, list(folder.rglob("*.ipynb")))
    return read_nb(found[0])


def printed(nb: dict[str, Any]) -> str:
    return stream_text(code_cells(nb)[-1]).strip()


def test_a_cleared_task_reruns_its_runs_notebook_version(scenario: dict[str, Any]) -> None:
    s = scenario
    first, second = output(s, s["run1"], 1), output(s, s["run2"], 1)
    rerun, on_latest = output(s, s["run1"], 2), output(s, s["run1"], 3)
    assert [printed(nb) for nb in (first, second, rerun, on_latest)] == [
        "notebook v1", "notebook v2", "notebook v1", "notebook v2"]
    for nb, sha in ((first, s["v1"]), (second, s["v2"]), (rerun, s["v1"]), (on_latest, s["v2"])):
        recorded = nb["metadata"]["airflow"]["notebook"]
        assert (recorded["bundle"], recorded["version"], recorded["path"]) == (BUNDLE, sha, "notebooks/report.ipynb")
        assert recorded["sha256"] == nb["metadata"]["airflow_notebook"]["input_sha256"]
        assert f"/versions/{sha}/" in nb["metadata"]["papermill"]["input_path"]  # the checkout of that commit
    # The notebook's folder travels with it: the helper of the same version ran, and the output says which.
    for nb, version in ((first, "v1"), (second, "v2"), (rerun, "v1"), (on_latest, "v2")):
        assert stream_text(code_cells(nb)[0]).strip() == f"helper {version}"
        source = helper_source(version).encode()
        assert nb["metadata"]["airflow"]["input_files"] == [
            {"path": "helpers/stamp.py", "bytes": len(source), "sha256": hashlib.sha256(source).hexdigest()}]
    xcom = s["af"].api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(s['run2'], safe='')}/taskInstances/report/"
                              "xcomEntries/notebook_record?deserialize=true")["value"]
    assert xcom["notebook"] == second["metadata"]["airflow"]["notebook"]
    facets = [json.loads(line)["run"]["facets"].get("airflow_notebook", {})
              for line in (s["af"].home / "ol.jsonl").read_text().splitlines() if line.strip()]
    assert {f["bundle"]["version"] for f in facets if f.get("bundle")} == {s["v1"], s["v2"]}


def viewer(af: Airflow, route: str, **query: Any) -> str:
    req = urllib.request.Request(f"{af.base}/notebook/dags/{DAG_ID}/{route}?{urlencode(query)}",
                                 headers={"Authorization": f"Bearer {af.token()}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode()


def test_compare_says_the_two_runs_ran_different_versions(scenario: dict[str, Any]) -> None:
    s = scenario
    page = viewer(s["af"], "compare", run_id=s["run2"], task_id="report", try_number=1, against_run_id=s["run1"],
                  against_try=2)
    assert (f"Different versions of the notebook: A ran notebooks/report.ipynb at {BUNDLE}@{s['v1'][:8]}, "
            f"B ran notebooks/report.ipynb at {BUNDLE}@{s['v2'][:8]}.") in page
    same = viewer(s["af"], "compare", run_id=s["run1"], task_id="report", try_number=2, against_try=1)
    assert "Different versions of the notebook" not in same
    folder = s["af"].home / "notebook_outputs" / DAG_ID
    diff = cli("diff", *(str(p) for p in sorted(folder.glob("*/report/attempt-1.ipynb"), key=lambda p: p.stat().st_mtime)))
    assert f"A ran notebooks/report.ipynb at {BUNDLE}@{s['v1'][:8]}, B ran notebooks/report.ipynb at " \
           f"{BUNDLE}@{s['v2'][:8]}." in diff.stdout


@pytest.mark.skipif(not HAVE_CHROMIUM, reason="/usr/bin/chromium is missing: `apt-get install -y chromium`")
def test_the_viewer_header_shows_the_notebook_version(scenario: dict[str, Any]) -> None:
    s = scenario
    af = s["af"]
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        log_in(page, af.base, af.username, af.password)
        query = urlencode({"run_id": s["run1"], "task_id": "report", "try_number": 2})
        page.goto(f"{af.base}/notebook/dags/{DAG_ID}/view?{query}")
        version = page.locator("#anp-notebook-version")
        version.wait_for(timeout=30_000)
        assert version.inner_text() == f"notebook at {BUNDLE}@{s['v1'][:8]} (notebooks/report.ipynb)"
        assert version.get_attribute("title") == s["v1"]
        page.frame_locator("#anp-notebook").get_by_text("notebook v1", exact=True).wait_for(timeout=30_000)

        # Compare, as the viewer's Compare opens it: run 2 (v2) against run 1's second attempt (v1).
        query = urlencode({"run_id": s["run2"], "task_id": "report", "try_number": 1, "against_run_id": s["run1"],
                           "against_try": 2})
        page.goto(f"{af.base}/notebook/dags/{DAG_ID}/compare?{query}")
        note = page.get_by_text("Different versions of the notebook", exact=False)
        note.first.wait_for(timeout=30_000)
        assert f"{BUNDLE}@{s['v1'][:8]}" in note.first.inner_text()
        assert f"{BUNDLE}@{s['v2'][:8]}" in note.first.inner_text()

