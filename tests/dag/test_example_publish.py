"""``example_notebook_publish`` as shipped: report, collected file, recorded value and the asset event's extra."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_example, read_nb, run_dag


def test_the_publish_example_writes_its_report_and_file_and_says_where(airflow_db) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    module = load_example("example_notebook_publish")
    res = run_dag(module.dag)["regional_summary"]
    assert res.state == "success"
    out = Path(res.xcom["return_value"])
    report = Path(res.xcom["reports"]["html"])
    assert report == out.with_suffix(".html") and "rows, total" in report.read_text()
    assert "csv.writer" not in report.read_text()  # report_mode: no code
    (collected,) = res.xcom["files"]
    assert collected.endswith(".files/out/summary-eu.csv") and Path(collected).read_text().startswith("day,region")
    assert read_nb(out)["metadata"]["airflow"]["files"][0]["path"] == "out/summary-eu.csv"
    with create_session() as session:
        event = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == "example_notebook_publish")).all()[-1]
    assert event.extra["output_notebook"] == str(out) and event.extra["results"] == ["total"]
    assert module.consumer.dag_id == "example_notebook_publish_consumer"
