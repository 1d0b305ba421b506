"""The real api-server app (Airflow's auth manager, metadata DB and this provider's plugin) in a test client."""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest

from tests.helpers import forget_auth_manager, python_notebook

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Api:
    client: Any
    token: Callable[..., str]

    def get(self, url: str, user: str | None = "admin", role: str = "viewer", **kwargs: Any) -> Any:
        """GET as ``user`` (None: no credentials) with the UI's token; ``url`` may be a full link."""
        parts = urlsplit(url)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        headers = {"Authorization": f"Bearer {self.token(user, role)}"} if user else {}
        return self.client.get(path, headers=headers, **kwargs)

    def frame(self, page: Any, user: str | None = "admin", role: str = "viewer") -> Any:
        """The notebook of a viewer page, as the browser loads it: its sandboxed frame's document (``/render``)."""
        found = re.search(r"<iframe id='anp-notebook' [^>]*src='([^']*)'", page.text)
        assert found, f"no notebook frame on the page (HTTP {page.status_code}): {page.text[:300]}"
        return self.get(html.unescape(found.group(1)), user, role)


@pytest.fixture(scope="package")
def api(airflow_db: Any) -> Iterator[Api]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    previous = os.environ.get("AIRFLOW__CORE__AUTH_MANAGER")
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.viewer.auth.DagScopedAuthManager"
    forget_auth_manager()
    try:
        client = TestClient(create_app("core"))
        manager = get_auth_manager()

        def token(user: str, role: str = "viewer") -> str:
            return manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))

        yield Api(client, token)
    finally:
        forget_auth_manager()
        if previous is None:
            os.environ.pop("AIRFLOW__CORE__AUTH_MANAGER", None)
        else:
            os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = previous


def write_notebook(path: Path, *sources: str) -> None:
    """A Python notebook from cell sources; a source starting with ``#parameters`` is tagged ``parameters``."""
    nbformat.write(python_notebook(*sources), str(path))


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
