"""A notebook kept in the DAG's bundle, next to the DAG, named by a path relative to the bundle.

With a ``GitDagBundle`` each DAG run reads the notebook of its own commit: a task cleared later re-runs the notebook
as it was when its run was created, and the output notebook records which commit ran (``metadata.airflow.notebook``).
With the local DAGs folder (and under ``dag.test()``) the path is read from the folder this file is in.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

with DAG(
    dag_id="example_notebook_bundle",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "notebook"],
) as dag:
    NotebookOperator(
        task_id="bundle_report",
        notebook="bundle_report.ipynb",  # relative: found in the bundle, at this run's bundle version
        notebook_root="notebooks",  # the folder of the bundle it is relative to (default: the bundle's root)
        parameters={"day": "{{ ds }}"},
    )
