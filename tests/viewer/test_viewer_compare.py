"""A user compares runs in the viewer, and opens an attempt that retention removed: the real api-server app, tasks
run by dag.test() with a real kernel, and ``airflow-notebook clean`` as a user runs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, run_dag
from tests.viewer.client import Api
from tests.viewer.routes import route

START = pendulum.datetime(2024, 1, 1, tz="UTC")
DAG_ID = "t_viewer_compare"
EXE = AIRFLOW_NOTEBOOK


@pytest.fixture(scope="module")
def two_runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run 1 passes (limit 5); run 2 fails (limit 500) on its first attempt and, retried, fails again."""
    make = tmp_path_factory.mktemp("compare")
    import nbformat

    params = nbformat.v4.new_code_cell("limit = 1\nnote = ''")
    params.metadata["tags"] = ["parameters"]
    cells = [params, nbformat.v4.new_code_cell("print(f'{limit} rows')"),
             nbformat.v4.new_code_cell("if limit > 100:\n    raise ValueError(f'too many rows: {limit}')"),
             nbformat.v4.new_code_cell("print('done')")]
    nb = make / "rows.ipynb"
    ks = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ks}), str(nb))

    def dag(limit: int) -> DAG:
        with DAG(dag_id=DAG_ID, schedule=None, start_date=START) as d:
            NotebookOperator(task_id="nb", notebook=str(nb), retries=1, retry_delay=dt.timedelta(0),
                             parameters={"limit": limit, "note": "<script>alert('x')</script> {{ ti.try_number }}"})
        return d

    ok = run_dag(dag(5), logical_date=START)
    assert ok["nb"].state == "success"
    bad = run_dag(dag(500), logical_date=START.add(days=1))
    assert (bad["nb"].state, bad["nb"].try_number) == ("failed", 2)
    return {"ok": ok["__run__"].xcom["run_id"], "bad": bad["__run__"].xcom["run_id"],
            "ok_output": Path(ok["nb"].xcom["return_value"])}


def test_view_offers_compare_links(api: Api, two_runs: dict[str, Any]) -> None:
    page = api.get(route("view", DAG_ID, two_runs["bad"], try_number=2))
    assert page.status_code == 200
    links = page.text[page.text.index("id='anp-compare-links'"):]
    assert ">previous attempt</a>" in links and ">last successful run</a>" in links
    assert f"/notebook/dags/{DAG_ID}/compare?" in links and "against=last_success" in links


def test_compare_with_the_last_successful_run(api: Api, two_runs: dict[str, Any]) -> None:
    got = api.get(route("compare", DAG_ID, two_runs["bad"], try_number=2, against="last_success"))
    assert got.status_code == 200, got.text[:500]
    text = got.text
    csp = got.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "'unsafe-inline'" not in csp and "<script>" not in text
    assert "style=" not in text and "<style" not in text
    params = text[text.index("id='anp-param-diff'"):text.index("</table>", text.index("id='anp-param-diff'"))]
    assert "<td><code>limit</code></td><td><code>5</code></td><td><code>500</code></td>" in params
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; 1" in params  # the note differs by try: escaped
    assert "Unchanged (sha256" in text  # same input notebook
    first = text[text.index("id='anp-first-status'"):]
    assert first.startswith("id='anp-first-status'><b>cell 4</b> <code>if limit &gt; 100:</code> — completed in A, "
                            "failed in B.")
    outputs = text[text.index("id='anp-outputs'"):text.index("id='anp-first-status'")]
    assert "-[stdout] 5 rows" in outputs and "+[stdout] 500 rows" in outputs
    assert "+[error] ValueError: too many rows: 500" in outputs
    assert f"last successful run ({two_runs['ok']}, attempt 1)" in text
    # Order the issue asks for: parameters, input, outputs, first status difference, durations.
    order = [text.index(f"id='{x}'") for x in ("anp-param-diff", "anp-input", "anp-outputs", "anp-first-status",
                                                 "anp-cells")]
    assert order == sorted(order)


def test_compare_with_the_previous_attempt_and_a_picked_one(api: Api, two_runs: dict[str, Any]) -> None:
    got = api.get(route("compare", DAG_ID, two_runs["bad"], try_number=2, against="previous"))
    assert got.status_code == 200
    assert "previous attempt (1)" in got.text
    assert "None: every cell ended the same way." in got.text  # both attempts failed at the same cell
    assert "id='anp-param-diff'" in got.text and "<td><code>note</code></td>" in got.text
    # The list offers every other try of the task; picking run 1's attempt gives the same page as last_success.
    pick = got.text[got.text.index("id='anp-pick'"):]
    assert f"run {two_runs['ok']}, attempt 1 (success)" in pick and "this run, attempt 1 (failed)" in pick
    picked = api.get(route("compare", DAG_ID, two_runs["bad"], try_number=2, against_run_id=two_runs["ok"],
                           against_try=1))
    assert picked.status_code == 200 and "<td><code>limit</code></td><td><code>5</code></td>" in picked.text
    first = api.get(route("compare", DAG_ID, two_runs["bad"], try_number=1, against="previous"))
    assert first.status_code == 404 and "is the first attempt" in first.text and "last successful run" in first.text


def test_compare_needs_access_to_the_dag(api: Api, two_runs: dict[str, Any]) -> None:
    url = route("compare", DAG_ID, two_runs["bad"], try_number=2, against="last_success")
    assert api.get(url, user=None).status_code == 401
    assert api.get(url, user="only:another_dag").status_code == 403


def test_an_attempt_removed_by_retention_says_so(api: Api, two_runs: dict[str, Any], output_base: Path) -> None:
    """``clean`` removes run 1's notebook (made old); the viewer says when, and compare says why it cannot."""
    out = two_runs["ok_output"]
    folder = out.parent
    old = time.time() - 40 * 86400
    for path in folder.iterdir():
        os.utime(path, (old, old), follow_symlinks=False)
    proc = subprocess.run([EXE, "clean", "--older-than", "30d", "--output-base", str(output_base / DAG_ID)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "removed  " in proc.stdout and f"{out}\n" in proc.stdout
    assert not out.exists() and (folder / "attempt-1.record.json").exists()
    page = api.get(route("view", DAG_ID, two_runs["ok"], try_number=1))
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert page.status_code == 200
    assert f"Removed by retention on {today}" in page.text and "airflow-notebook clean --older-than 30d" in page.text
    got = api.get(route("compare", DAG_ID, two_runs["bad"], try_number=2, against="last_success"))
    assert got.status_code == 410 and f"Removed by retention on {today}" in got.text
    # The CLI says the same for the viewer link of that attempt.
    link = f"http://airflow.example.com{route('view', DAG_ID, two_runs['ok'], try_number=1)}"
    inspect = subprocess.run([EXE, "inspect", link], capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 2 and f"was removed by retention on {today}" in inspect.stderr, inspect.stderr
    # The later run was new enough to stay.
    assert api.get(route("view", DAG_ID, two_runs["bad"], try_number=2)).status_code == 200


BIG_DAG = "t_viewer_compare_big"


@pytest.fixture(scope="module")
def big_runs(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs (limit 5, then 500) of an nbformat 4.4 notebook (no cell ids: each run gets fresh ones, so the
    cells pair up by source) with 1,200 cells cycling through 10 statements, one cell printing 30,000 lines that
    differ only at the end, and 10 cells printing 10,000 lines that all differ: more than Compare diffs line by
    line."""
    make = tmp_path_factory.mktemp("compare-big")
    cycle = [f"total += {k}" for k in range(9)] + ["print(total if limit < 100 else -total)"]
    sources = ["limit = 1", "total = 0", *(cycle[i % 10] for i in range(1_200)),
               "for i in range(30_000):\n    print(f'row {i}: ' + ('ok' if i < 29_990 or limit < 100 else 'CHANGED'))",
               *(f"for i in range({k}, 10_000 + {k}):\n    print(i * limit)" for k in range(10))]
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"] if n == 0 else []},
              "outputs": [], "source": source} for n, source in enumerate(sources)]
    nb = make / "big.ipynb"
    nb.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 4, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))

    def dag(limit: int) -> DAG:
        with DAG(dag_id=BIG_DAG, schedule=None, start_date=START) as d:
            NotebookOperator(task_id="nb", notebook=str(nb), parameters={"limit": limit})
        return d

    runs = {}
    for name, limit, day in (("a", 5, 0), ("b", 500, 1)):
        got = run_dag(dag(limit), logical_date=START.add(days=day))
        assert got["nb"].state == "success"
        runs[name] = got["__run__"].xcom["run_id"]
        runs[f"{name}_output"] = got["nb"].xcom["return_value"]
    return runs


def test_compare_a_large_pair_says_what_it_left_out(api: Api, big_runs: dict[str, Any]) -> None:
    nb_a, nb_b = (json.loads(Path(big_runs[f"{x}_output"]).read_text()) for x in "ab")
    assert nb_a["cells"][5]["id"] != nb_b["cells"][5]["id"]  # fresh ids each run: cells pair up by source
    got = api.get(route("compare", BIG_DAG, big_runs["b"], try_number=1, against_run_id=big_runs["a"],
                        against_try=1))
    assert got.status_code == 200, got.text[:500]
    text = got.text
    limits = text[text.index("id='anp-limits'"):text.index("</p>", text.index("id='anp-limits'"))]
    assert "1 cell was compared line by line on its first 10,000 lines only." in limits
    assert "7 cells were not compared line by line: the comparison&#x27;s limit of 100,000 lines was reached." \
        in limits
    assert "Unchanged (sha256" in text and "None: every cell ended the same way." in text
    outputs = text[text.index("id='anp-outputs'"):text.index("id='anp-first-status'")]
    assert "<p>131 cells have different outputs.</p>" in outputs  # 120 prints, the 30,000 lines, the 10 others
    assert "output: compared line by line on its first 10,000 lines only (A has 30,000, B 30,000)" in outputs
    assert "output: not compared line by line: the comparison&#x27;s limit of 100,000 lines was reached " \
           "(A has 10,000, B 10,000)" in outputs
    assert "-[stdout] 36" in outputs and "+[stdout] -36" in outputs  # 0 + 1 + … + 8, printed
    table = text[text.index("id='anp-cells'"):]
    assert table.count("<tr class=") == 1_214 and "only in" not in table  # every code cell, each paired
    # The terminal says the same.
    proc = subprocess.run([EXE, "diff", big_runs["a_output"], big_runs["b_output"]], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert ("Limits: 1 cell was compared line by line on its first 10,000 lines only. 7 cells were not compared "
            "line by line: the comparison's limit of 100,000 lines was reached.") in proc.stdout
    assert "Outputs: 131 cells differ" in proc.stdout
    assert "(output: not compared line by line: the comparison's limit of 100,000 lines was reached" in proc.stdout
