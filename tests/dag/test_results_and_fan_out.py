"""Results reach downstream tasks through XCom; mapped notebook tasks and ``@task.notebook`` run under dag.test().

The example DAG ``example_notebook_results`` is run as shipped: it is the documentation and the system test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG, task

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import load_example, read_nb, run_dag

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_dags"
START = pendulum.datetime(2024, 1, 1, tz="UTC")
LINK_KEY = "_link_NotebookOutputLink"


def sales(region: str = "all") -> tuple[int, float]:
    with open(EXAMPLES / "notebooks" / "data" / "sales.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if region in ("all", r["region"])]
    return len(rows), round(sum(float(r["amount"]) for r in rows), 2)


def test_example_results_dag(airflow_db, output_base: Path) -> None:
    module = load_example("example_notebook_results")
    res = run_dag(module.dag)
    run_id = res["__run__"].xcom["run_id"]
    assert {k: v.state for k, v in res.items() if k != "__run__"} == {
        "summarize": "success", "check": "success", "weekly": "success",
        "by_region[0]": "success", "by_region[1]": "success", "by_region[2]": "success",
    }

    # Recorded values, one XCom per name and all of them under `results`, read by the downstream task.
    rows, total = sales()
    summarize = res["summarize"].xcom
    assert (summarize["rows"], summarize["total"]) == (rows, total)
    assert summarize["results"] == {"rows": rows, "total": total,
                                    "summary": {"day": summarize["summary"]["day"], "region": "all", "rows": rows,
                                                "total": total}}
    assert res["check"].xcom["return_value"] == total

    # Fan-out: each mapped instance has its own output notebook, parameters, records and link.
    outputs, links = set(), set()
    for i, region in enumerate(["eu", "us", "asia"]):
        xcom = res[f"by_region[{i}]"].xcom
        expected = output_base / "example_notebook_results" / run_id / "by_region" / f"map-{i}" / "attempt-1.ipynb"
        assert xcom["output_notebook"] == str(expected)
        nb = read_nb(expected)
        assert nb["metadata"]["papermill"]["parameters"] == {"region": region}
        assert nb["metadata"]["airflow"]["map_index"] == i
        assert xcom["rows"] == sales(region)[0]
        assert f"map_index={i}" in xcom[LINK_KEY]
        outputs.add(xcom["output_notebook"])
        links.add(xcom[LINK_KEY])
    assert len(outputs) == 3 and len(links) == 3

    # @task.notebook: the function's return value became the parameters.
    weekly = res["weekly"].xcom
    assert read_nb(weekly["return_value"])["metadata"]["papermill"]["parameters"] == {"day": summarize["summary"]["day"],
                                                                                     "region": "all"}
    assert weekly["rows"] == rows

    # The outlet asset was updated by the successful notebook task.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.execute(
            select(AssetEvent.source_task_id).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(
                AssetModel.uri == "notebook://example/sales-summary", AssetEvent.source_run_id == run_id)
        ).scalars().all()
    assert events == ["summarize"]


def test_scrapbook_glue_is_picked_up_too(airflow_db, make_notebook) -> None:
    nb = make_notebook("import scrapbook as sb\nsb.glue('glued', {'a': [1, 2]})\nsb.glue('greeting', 'hello')")
    with DAG(dag_id="t_glue", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb))

        @task
        def downstream(ti=None):
            return ti.xcom_pull(task_ids="nb", key="glued")["a"][1]

        dag.get_task("nb") >> downstream()
    res = run_dag(dag)
    assert res["nb"].xcom["results"] == {"glued": {"a": [1, 2]}, "greeting": "hello"}
    assert res["downstream"].xcom["return_value"] == 2


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        # record() refuses in the notebook: the cell fails, and with it the task.
        ("from airflow_notebook_provider import record\nimport datetime\nrecord('when', datetime.date(2024, 1, 1))",
         "Record 'when' holds a datetime.date that is not JSON"),
        # What sb.glue('frame', df, 'pandas') writes (without needing pandas here): refused after the run.
        ("from IPython.display import display\ndisplay({'application/scrapbook.scrap.pandas+json': {'name': 'frame', "
         "'data': 'QVJST1cx', 'encoder': 'pandas', 'version': 1}}, raw=True)",
         "Record 'frame' was glued with scrapbook's 'pandas' encoder"),
        ("from airflow_notebook_provider import record\nrecord('results', 1)", "Record name 'results' is an XCom key"),
    ],
)
def test_a_record_that_cannot_be_xcom_fails_the_task_naming_it(airflow_db, make_notebook, capfd, cell, expected) -> None:
    nb = make_notebook(cell)
    dag_id = f"t_bad_record_{abs(hash(cell)) % 10_000}"
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb))
    res = run_dag(dag)
    assert res["nb"].state == "failed"
    assert expected in "".join(capfd.readouterr())
    assert "results" not in res["nb"].xcom


def test_example_dags_parse_without_errors(airflow_db) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert {"example_notebook_results", "example_notebook_on_new_sales"} <= set(bag.dag_ids)


def test_task_notebook_function_must_return_a_dict(airflow_db, make_notebook, capfd) -> None:
    nb = make_notebook("print('ran')")
    with DAG(dag_id="t_taskflow_bad_return", schedule=None, start_date=START) as dag:

        @task.notebook(notebook=str(nb), retries=2)
        def params() -> list:
            return ["not", "a", "dict"]

        params()
    res = run_dag(dag)
    assert (res["params"].state, res["params"].try_number) == ("failed", 1)
    assert "the @task.notebook function params() must return a dict of notebook parameters" in "".join(capfd.readouterr())
