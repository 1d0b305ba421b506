"""A trigger form generated from the notebook: "Trigger DAG w/ config" shows the notebook's parameters (types,
defaults, help comments), and Airflow refuses a value of the wrong type before any task runs.

``notebook_params`` reads the notebook's ``parameters`` cell when the DAG is parsed; ``{{ params.* }}`` passes the
chosen values on, and ``render_template_as_native_obj`` keeps their types (an integer stays an integer).
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider import notebook_params
from airflow_notebook_provider.operators.notebook import NotebookOperator

REPORT = Path(__file__).parent / "notebooks" / "report.ipynb"
PARAMS = notebook_params(REPORT)

with DAG(
    dag_id="example_notebook_trigger_form",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params=PARAMS,
    render_template_as_native_obj=True,
    tags=["example", "notebook"],
) as dag:
    NotebookOperator(
        task_id="report",
        notebook=str(REPORT),
        parameters={name: f"{{{{ params.{name} }}}}" for name in PARAMS},
        unknown_parameters="fail",
    )
