"""Every notebook of ../shared/corpus/nbclient (written by others) run through the operator, checked against
the outcome EXPECTED.json gives: state, failing cell, error, stdout and output types."""

from __future__ import annotations

import os

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.corpus import CASES, CORPUS, CORPUS_MISSING, check_outcome, task_id_for
from tests.helpers import kernel_processes, run_dag

# CI always checks the corpus out beside this repository: there, a missing corpus is a broken checkout, not a skip.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
if CORPUS_MISSING and IN_CI:
    pytest.fail(
        f"CI={os.environ['CI']} but the nbclient corpus is missing: {CORPUS / 'EXPECTED.json'} does not exist "
        f"(expected a checkout of the shared corpus at {CORPUS})",
        pytrace=False,
    )
pytestmark = pytest.mark.skipif(
    CORPUS_MISSING,
    reason=f"no nbclient corpus at {CORPUS} (no {CORPUS / 'EXPECTED.json'}); outside CI the corpus tests are skipped",
)


@pytest.fixture(scope="module")
def corpus_run(airflow_db):
    with DAG(dag_id="corpus_nbclient", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        for name, exp in CASES.items():
            settings = exp.get("settings", {})
            NotebookOperator(
                task_id=task_id_for(name),
                notebook=str(CORPUS / name),
                cell_timeout=settings.get("cell_timeout_seconds", 60),
            )
    return run_dag(dag)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_notebook(corpus_run, name: str) -> None:
    check_outcome(corpus_run[task_id_for(name)], CASES[name])


def test_no_kernel_outlives_the_corpus(corpus_run) -> None:
    assert not kernel_processes()
