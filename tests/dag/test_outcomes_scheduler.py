"""``results.skip`` and ``results.fail`` under a real Airflow: api-server, scheduler and dag-processor (LocalExecutor,
SQLite) on 127.0.0.1, each task in its own task process under a supervisor, the states read through the REST API."""

from __future__ import annotations

import textwrap
from urllib.parse import quote

import nbformat
import pytest

from tests.helpers import python_notebook

SKIP = "from airflow_notebook_provider import results\nresults.skip('no files for 2026-12-06')"
FAIL = "from airflow_notebook_provider import results\nresults.fail('input is corrupt', retry=False)"



def test_skip_and_fail_under_the_scheduler(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each task in its own task process under a supervisor (LocalExecutor): the states the REST API reports."""
    from tests.airflow_servers import start_airflow, trigger_and_wait

    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    nbformat.write(python_notebook(SKIP, "print('later')"), str(dags / "skip.ipynb"))
    nbformat.write(python_notebook(FAIL), str(dags / "fail.ipynb"))
    (dags / "outcomes_dag.py").write_text(textwrap.dedent(f"""
        import datetime as dt
        import pendulum
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow.sdk import DAG
        from airflow_notebook_provider.operators.notebook import NotebookOperator
        with DAG(dag_id="sched_outcomes", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
            skip = NotebookOperator(task_id="skip", notebook={str(dags / "skip.ipynb")!r})
            skip >> EmptyOperator(task_id="after")
            skip >> EmptyOperator(task_id="after_all_done", trigger_rule="all_done")
            NotebookOperator(task_id="fail", notebook={str(dags / "fail.ipynb")!r}, retries=2,
                             retry_delay=dt.timedelta(0))
    """))
    af = start_airflow(home, dags)
    try:
        af.wait_for("the dag-processor parses sched_outcomes", lambda: af.api("GET", "/api/v2/dags/sched_outcomes"), 180)
        run_id, state = trigger_and_wait(af, "sched_outcomes")
        tis = af.api("GET", f"/api/v2/dags/sched_outcomes/dagRuns/{quote(run_id, safe='')}/taskInstances")
    finally:
        af.stop()
    states = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis["task_instances"]}
    assert states == {"skip": ("skipped", 1), "after": ("skipped", 0), "after_all_done": ("success", 1),
                      "fail": ("failed", 1)}, af.tails()
    assert state == "failed"
