"""The real api-server app (Airflow's auth manager, metadata DB and this provider's plugin) in a test client
(``api``, from client.py), and one real Airflow for the browser and REST tests (``airflow_server``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.viewer.client import api, write_notebook

__all__ = ["api"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Airflow (api-server, scheduler, dag-processor on 127.0.0.1) for the browser and REST tests.

    Its DAGs folder holds ``browser_notebooks`` (one task succeeds, one fails), ``browser_compare`` (a ``limit``
    param passed to a notebook that fails beyond 100 rows), ``browser_hostile`` (a notebook whose output HTML tries
    to cover and restyle the viewer's header) and the example ``example_notebook_trigger_form``
    with its notebooks, and ``example_notebook_publish`` (a notebook task with an asset outlet, and the DAG scheduled
    on that asset), copied from example_dags/. Stopped by process group at the end.
    """
    from tests.airflow_servers import start_airflow

    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    write_notebook(dags / "ok.ipynb", "#parameters\nname = 'nobody'", "print(f'hello {name} from ' + 'the scheduler')")
    # Enough cells before the failure that the failing cell starts below the first screen.
    write_notebook(dags / "bad.ipynb", "#parameters\nregion = 'none'\nlimit = 0",
                   *[f"print('step {i} ' + 'ok')" for i in range(24)],
                   "raise RuntimeError('the browser sees this')", "print('never runs')")
    (dags / "browser_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        "with DAG(dag_id='browser_notebooks', schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC')):\n"
        f"    NotebookOperator(task_id='succeeds', notebook={str(dags / 'ok.ipynb')!r}, parameters={{'name': 'Ada'}})\n"
        f"    NotebookOperator(task_id='fails', notebook={str(dags / 'bad.ipynb')!r},\n"
        "                     parameters={'region': 'eu', 'limit': 100})\n"
    )
    # Output HTML that tries to cover the viewer's header with a fake one, and to restyle the real one.
    write_notebook(dags / "hostile.ipynb", "#parameters\nname = 'nobody'",
                   "from IPython.display import HTML, display\n"
                   "display(HTML(\"<div id='anp-fake' style='position:fixed;top:0;left:0;width:100vw;height:100vh;"
                   "z-index:2147483647;background:#fff;font-size:40px'>FAKE HEADER: state success, parameters "
                   "none</div>\"))",
                   "display(HTML('<style>#anp-header{display:none!important}.anp-state{background:#000!important;"
                   "color:#000!important}.anp-params{visibility:hidden!important}#anp-back{font-size:60px!important}"
                   "body{background:#f00!important}</style><p>restyled</p>'))")
    (dags / "hostile_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        "with DAG(dag_id='browser_hostile', schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC')):\n"
        f"    NotebookOperator(task_id='overlay', notebook={str(dags / 'hostile.ipynb')!r},\n"
        "                     parameters={'name': 'Ada'})\n"
    )
    write_notebook(dags / "rows.ipynb", "#parameters\nlimit = 1", "print(f'{limit} rows loaded')",
                   "import time\ntime.sleep(0.2)\nprint('checked')",
                   "if limit > 100:\n    raise ValueError(f'too many rows: {limit}')", "print('report written')")
    (dags / "compare_dag.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG, Param\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n"
        "with DAG(dag_id='browser_compare', schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz='UTC'),\n"
        "         params={'limit': Param(5, type='integer')}, render_template_as_native_obj=True):\n"
        f"    NotebookOperator(task_id='rows', notebook={str(dags / 'rows.ipynb')!r},\n"
        "                     parameters={'limit': '{{ params.limit }}'})\n"
    )
    shutil.copy(REPO / "example_dags" / "example_notebook_trigger_form.py", dags)
    shutil.copy(REPO / "example_dags" / "example_notebook_publish.py", dags)
    shutil.copytree(REPO / "example_dags" / "notebooks", dags / "notebooks")
    af = start_airflow(home, dags)
    try:
        for dag_id in ("browser_notebooks", "browser_compare", "browser_hostile", "example_notebook_trigger_form",
                       "example_notebook_publish", "example_notebook_publish_consumer"):
            af.wait_for(f"the dag-processor parses {dag_id}", lambda d=dag_id: af.api("GET", f"/api/v2/dags/{d}"), 180)
        yield af
    finally:
        af.stop()
