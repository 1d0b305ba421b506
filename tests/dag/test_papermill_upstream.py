"""Airflow's own tests of ``PapermillOperator``, adapted to run against the shim with only the import changed.

Where they come from (apache/airflow, ``providers/papermill/tests/``):
- ``system/papermill/example_papermill_verify.py``: a notebook task, then a ``@task`` that reads the scrap
  ``message`` from ``output.url`` (the operator returns papermill's ``NoteBook``);
- ``system/papermill/example_papermill_remote_verify.py``: the same on an already running kernel reached through
  the ``jupyter_kernel_default`` connection (``kernel_conn_id``), checked by reading the output file; Airflow 3's
  ``logical_date`` in place of the removed ``execution_date``;
- ``system/papermill/input_notebook.ipynb``: a ``parameters`` cell with ``msgs`` and ``sb.glue("message", msgs)``,
  written here by ``input_notebook()``;
- ``system/papermill/conftest.py``: the remote-kernel system tests start ``ipykernel`` on the papermill provider's
  default ports with an empty session key, and name it with ``AIRFLOW_CONN_JUPYTER_KERNEL_DEFAULT`` given as JSON
  without a ``conn_type``;
- ``unit/papermill/operators/test_papermill.py``: ``__init__`` validates nothing, a missing input or output notebook
  is a ``ValueError`` ("Input/Output notebook is not specified") raised by ``execute(context={})``, ``NoteBook``
  objects as input and output, templated fields.
  The unit tests there mock papermill; here the notebooks really run.
The DAG sources below are the upstream ones with their import line switched to the shim, their paths pointed at
the test's folder, and the system-test scaffolding (``get_test_run``) left out.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers import free_port, read_nb, run_dag, stop_group

SHIM_IMPORT = "from airflow_notebook_provider.operators.papermill import PapermillOperator"
WHEN = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)

VERIFY_DAG = '''
from __future__ import annotations

import os
from datetime import datetime, timedelta

import scrapbook as sb

from airflow import DAG
from airflow.sdk import task
{import_line}

START_DATE = datetime(2021, 1, 1)
SCHEDULE_INTERVAL = "0 0 * * *"
DAGRUN_TIMEOUT = timedelta(minutes=60)


@task
def check_notebook(output, logical_date):
    """
    Verify the message in the notebook
    """
    notebook = sb.read_notebook(output.url)
    message = notebook.scraps["message"]
    print(f"Message in notebook {{message}} for {{logical_date}}")

    if message.data != f"Ran from Airflow at {{logical_date}}!":
        return False

    return True


with DAG(
    dag_id="{dag_id}",
    schedule=SCHEDULE_INTERVAL,
    start_date=START_DATE,
    dagrun_timeout=DAGRUN_TIMEOUT,
    catchup=False,
) as dag:
    run_this = PapermillOperator(
        task_id="run_example_notebook",
        input_nb="{input_nb}",
        output_nb="{out_dir}/out-{{{{ logical_date }}}}.ipynb",
        parameters={{"msgs": "Ran from Airflow at {{{{ logical_date }}}}!"}},
    )

    check_notebook(output=run_this.output, logical_date="{{{{ logical_date }}}}")
'''

REMOTE_VERIFY_DAG = '''
from __future__ import annotations

import os
from datetime import datetime, timedelta

import scrapbook as sb

from airflow import DAG
from airflow.sdk import task
{import_line}

START_DATE = datetime(2021, 1, 1)
DAGRUN_TIMEOUT = timedelta(minutes=60)


@task
def check_notebook(output_notebook, logical_date):
    """
    Verify the message in the notebook
    """
    notebook = sb.read_notebook(output_notebook)
    message = notebook.scraps["message"]
    print(f"Message in notebook {{message}} for {{logical_date}}")

    if message.data != f"Ran from Airflow at {{logical_date}}!":
        return False

    return True


with DAG(
    dag_id="{dag_id}",
    schedule="@once",
    start_date=START_DATE,
    dagrun_timeout=DAGRUN_TIMEOUT,
    catchup=False,
) as dag:
    run_this = PapermillOperator(
        task_id="run_example_notebook",
        input_nb="{input_nb}",
        output_nb="{out_dir}/out-{{{{ logical_date }}}}.ipynb",
        parameters={{"msgs": "Ran from Airflow at {{{{ logical_date }}}}!"}},
        kernel_conn_id="jupyter_kernel_default",
    )

    run_this >> check_notebook(
        output_notebook="{out_dir}/out-{{{{ logical_date }}}}.ipynb", logical_date="{{{{ logical_date }}}}"
    )
'''


def input_notebook(folder: Path) -> Path:
    """The upstream example's notebook: a ``msgs`` parameter glued as the scrap ``message``."""
    cells = [
        nbformat.v4.new_markdown_cell("An example notebook for Apache Airflow: papermill with scrapbook"),
        nbformat.v4.new_code_cell("from __future__ import annotations\n\nimport scrapbook as sb"),
        nbformat.v4.new_code_cell('msgs = "Hello!"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('sb.glue("message", msgs)'),
    ]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    path = folder / "input_notebook.ipynb"
    nbformat.write(nb, str(path))
    return path


def load_dag(path: Path, source: str) -> Any:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_example_papermill_verify_runs_with_only_its_import_changed(airflow_db, tmp_path: Path) -> None:
    source = VERIFY_DAG.format(import_line=SHIM_IMPORT, dag_id="t_up_verify", input_nb=input_notebook(tmp_path),
                               out_dir=tmp_path)
    res = run_dag(load_dag(tmp_path / "example_papermill_verify.py", source), logical_date=WHEN)
    assert res["run_example_notebook"].state == "success"
    assert res["check_notebook"].state == "success"
    assert res["check_notebook"].xcom["return_value"] is True  # the scrap read through output.url matched
    from airflow.sdk.serde import deserialize

    returned = deserialize(res["run_example_notebook"].xcom["return_value"])
    assert returned.url.startswith(str(tmp_path / "out-2024-05-01"))
    assert returned.parameters == {"msgs": "Ran from Airflow at 2024-05-01 00:00:00+00:00!"}


@pytest.fixture
def running_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An ipykernel started on its own, on fixed ports with a session key, as ``jupyter_kernel_default``."""
    ports = {name: free_port() for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")}
    info = {**ports, "ip": "127.0.0.1", "key": uuid.uuid4().hex, "transport": "tcp", "signature_scheme": "hmac-sha256",
            "kernel_name": "python3"}
    conn_file = tmp_path / "kernel.json"
    conn_file.write_text(json.dumps(info))
    proc = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", str(conn_file)],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monkeypatch.setenv("AIRFLOW_CONN_JUPYTER_KERNEL_DEFAULT", json.dumps({
        "conn_type": "jupyter_kernel", "host": "127.0.0.1", "extra": {"session_key": info["key"], **ports}}))
    time.sleep(1.0)  # the kernel binds its ports; the task's readiness check waits for it anyway
    try:
        yield {"proc": proc, **info}
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_example_papermill_remote_verify_runs_on_the_running_kernel_and_leaves_it_running(
    airflow_db, tmp_path: Path, running_kernel: dict[str, Any]
) -> None:
    source = REMOTE_VERIFY_DAG.format(import_line=SHIM_IMPORT, dag_id="t_up_remote", input_nb=input_notebook(tmp_path),
                                      out_dir=tmp_path)
    res = run_dag(load_dag(tmp_path / "example_papermill_remote_verify.py", source), logical_date=WHEN)
    assert res["run_example_notebook"].state == "success"
    assert res["check_notebook"].state == "success" and res["check_notebook"].xcom["return_value"] is True
    (out,) = tmp_path.glob("out-*.ipynb")
    assert read_nb(out)["metadata"]["airflow_notebook"]["hostname"]
    assert running_kernel["proc"].poll() is None  # attached to, never shut down


# The system tests' kernel and connection (system/papermill/conftest.py): papermill's default ports, an empty
# session key, and the connection as upstream writes it, with no conn_type.
UPSTREAM_PORTS = {"shell": 60316, "iopub": 60317, "stdin": 60318, "control": 60319, "hb": 60320}
UPSTREAM_CONN = '{"host": "localhost", "extra": {"shell_port": 60316} }'


@pytest.fixture
def upstream_remote_kernel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``ipykernel`` as upstream's ``remote_kernel`` fixture starts it, on 127.0.0.1 rather than 0.0.0.0, with the
    session key ``request.param`` (upstream's is empty)."""
    from jupyter_client import BlockingKernelClient

    key: str = request.param
    err = tmp_path / "kernel.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipykernel_launcher", f'--Session.key=b"{key}"',
         *(f"--{name}={port}" for name, port in UPSTREAM_PORTS.items()), "--ip=127.0.0.1"],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err.open("wb"),
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    try:
        kc = BlockingKernelClient()
        kc.load_connection_info({"ip": "127.0.0.1", "key": key.encode(), "transport": "tcp",
                                 **{f"{name}_port": port for name, port in UPSTREAM_PORTS.items()}})
        kc.start_channels()
        try:
            for _ in range(60):  # ready when it answers kernel_info; fixed ports: one taken makes it exit
                if proc.poll() is not None:
                    pytest.fail(f"ipykernel on papermill's default ports {sorted(UPSTREAM_PORTS.values())} exited: "
                                f"{err.read_text()[-2000:]}")
                try:
                    kc.wait_for_ready(timeout=1)
                    break
                except RuntimeError:
                    continue
            else:
                pytest.fail("ipykernel on papermill's default ports did not answer within 60 s")
        finally:
            kc.stop_channels()
        yield proc
    finally:
        stop_group(proc)


SESSION_KEY = uuid.uuid4().hex


@pytest.mark.parametrize(
    ("upstream_remote_kernel", "extra"),
    [pytest.param(SESSION_KEY, {"session_key": SESSION_KEY}, id="signed"),
     pytest.param("", {"allow_unsigned": True}, id="unsigned-allowed")],
    indirect=["upstream_remote_kernel"],
)
def test_example_papermill_remote_verify_with_a_connection_without_conn_type(
    airflow_db, tmp_path: Path, upstream_remote_kernel: subprocess.Popen[bytes], extra: dict[str, Any],
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Upstream's connection has no type: the papermill provider's ``KernelHook`` reads any connection as a running
    kernel, and so does the shim, saying in the log that it assumed so. Upstream's JSON plus what an attached kernel
    needs here, a session key or the explicit ``allow_unsigned`` (see the next test)."""
    conn = json.loads(UPSTREAM_CONN)
    conn["extra"].update(extra)
    assert "conn_type" not in conn
    monkeypatch.setenv("AIRFLOW_CONN_JUPYTER_KERNEL_DEFAULT", json.dumps(conn))
    source = REMOTE_VERIFY_DAG.format(import_line=SHIM_IMPORT, dag_id="t_up_remote_untyped",
                                      input_nb=input_notebook(tmp_path), out_dir=tmp_path)
    res = run_dag(load_dag(tmp_path / "example_papermill_remote_verify.py", source), logical_date=WHEN)
    log = "".join(capfd.readouterr())
    assert res["run_example_notebook"].state == "success", log[-3000:]
    assert res["check_notebook"].state == "success" and res["check_notebook"].xcom["return_value"] is True
    assert "Connection 'jupyter_kernel_default' has no type; using it as a 'jupyter_kernel' connection" in log
    (out,) = tmp_path.glob("out-*.ipynb")
    assert read_nb(out)["metadata"]["language_info"]["name"] == "python"
    assert upstream_remote_kernel.poll() is None  # attached to, never shut down


@pytest.mark.parametrize("upstream_remote_kernel", [""], indirect=True)
def test_upstreams_connection_as_it_is_is_taken_as_a_kernel_and_refused_for_its_missing_session_key(
    airflow_db, tmp_path: Path, upstream_remote_kernel: subprocess.Popen[bytes], capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exactly upstream's kernel (no key) and connection: no longer refused for its type, but for its unsigned
    kernel, which anyone reaching the ports could drive; the message says which extra to set."""
    monkeypatch.setenv("AIRFLOW_CONN_JUPYTER_KERNEL_DEFAULT", UPSTREAM_CONN)
    source = REMOTE_VERIFY_DAG.format(import_line=SHIM_IMPORT, dag_id="t_up_remote_untyped_unsigned",
                                      input_nb=input_notebook(tmp_path), out_dir=tmp_path)
    res = run_dag(load_dag(tmp_path / "example_papermill_remote_verify.py", source), logical_date=WHEN)
    log = "".join(capfd.readouterr())
    assert res["run_example_notebook"].state == "failed"
    assert "has no type; using it as a 'jupyter_kernel' connection" in log
    assert "has type None" not in log
    assert "`session_key`" in log and "`allow_unsigned`" in log
    assert upstream_remote_kernel.poll() is None


def test_a_stop_on_an_attached_kernel_interrupts_it_and_leaves_it_running(
    airflow_db, tmp_path: Path, running_kernel: dict[str, Any], make_notebook
) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.papermill import PapermillOperator

    nb = make_notebook("import time\ntime.sleep(300)")
    with DAG(dag_id="t_up_remote_timeout", schedule=None, start_date=WHEN) as dag:
        PapermillOperator(task_id="nb", input_nb=str(nb), output_nb=str(tmp_path / "o.ipynb"),
                          kernel_conn_id="jupyter_kernel_default", cell_timeout=2)
    t0 = time.monotonic()
    assert run_dag(dag)["nb"].state == "failed"
    assert time.monotonic() - t0 < 60
    out = read_nb(tmp_path / "o.ipynb")
    assert any("cell_timeout=2 s" in "".join(c["source"]) for c in out["cells"])
    assert running_kernel["proc"].poll() is None
    # The kernel was interrupted, not left sleeping: it answers a new request at once.
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_info({k: v for k, v in running_kernel.items() if k != "proc"})
    kc.start_channels()
    try:
        # A busy kernel would not answer within 10 s; right after an interrupt ipykernel may abort one request.
        statuses = [kc.execute_interactive("print('still here')", timeout=10)["content"]["status"] for _ in range(3)]
        assert "ok" in statuses, statuses
    finally:
        kc.stop_channels()


def test_secret_parameters_are_refused_on_an_attached_kernel(airflow_db, tmp_path, running_kernel, make_notebook,
                                                             capfd) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.papermill import PapermillOperator

    nb = make_notebook("#parameters\ntoken = ''")
    with DAG(dag_id="t_up_remote_secret", schedule=None, start_date=WHEN) as dag:
        PapermillOperator(task_id="nb", input_nb=str(nb), output_nb=str(tmp_path / "o.ipynb"),
                          parameters={"token": "abcdef123"}, secret_parameters=["token"],
                          kernel_conn_id="jupyter_kernel_default")
    assert run_dag(dag)["nb"].state == "failed"
    assert "already running: environment variables (NOTEBOOK_SECRET_token)" in "".join(capfd.readouterr())


# -- unit/papermill/operators/test_papermill.py, on the shim ---------------------------------------------------


def test_init_does_not_validate_notebooks() -> None:
    from airflow_notebook_provider.operators.papermill import PapermillOperator

    op = PapermillOperator(task_id="missing_input_nb", output_nb="foo-bar")
    assert op.input_nb is None
    op = PapermillOperator(task_id="missing_output_nb", input_nb="foo-bar")
    assert op.output_nb is None


def test_mandatory_attributes() -> None:
    """Test missing Input or Output notebooks are validated at execute() time, after templating.

    Upstream's test as it is. Without a task instance in the context there is no default output location to name,
    so a missing output notebook is the same ``ValueError``; under Airflow the default location is used (below)."""
    from airflow_notebook_provider.operators.papermill import PapermillOperator

    with pytest.raises(ValueError, match="Input notebook is not specified"):
        PapermillOperator(task_id="missing_input_nb", output_nb="foo-bar").execute(context={})  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="Output notebook is not specified"):
        PapermillOperator(task_id="missing_output_nb", input_nb="foo-bar").execute(context={})  # type: ignore[arg-type]


def test_a_missing_output_notebook_takes_the_default_location_under_airflow(airflow_db, output_base: Path,
                                                                             tmp_path: Path) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.papermill import PapermillOperator

    with DAG(dag_id="t_up_default_output", schedule=None, start_date=WHEN) as dag:
        PapermillOperator(task_id="nb", input_nb=str(input_notebook(tmp_path)))
    res = run_dag(dag)["nb"]
    assert res.state == "success"
    assert Path(res.xcom["output_notebook"]).is_relative_to(output_base / "t_up_default_output")


@pytest.mark.parametrize("output_as_object", [False, True], ids=["output-as-string", "output-as-notebook-object"])
@pytest.mark.parametrize("input_as_object", [False, True], ids=["input-as-string", "input-as-notebook-object"])
def test_notebooks_objects(airflow_db, tmp_path: Path, input_as_object: bool, output_as_object: bool) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.papermill import NoteBook, PapermillOperator

    in_url, out_url = str(input_notebook(tmp_path)), str(tmp_path / "out.ipynb")
    input_nb: Any = NoteBook(in_url, parameters={"msgs": "from the inlet"}) if input_as_object else in_url
    output_nb: Any = NoteBook(out_url) if output_as_object else out_url
    with DAG(dag_id=f"t_up_objects_{int(input_as_object)}{int(output_as_object)}", schedule=None, start_date=WHEN) as dag:
        op = PapermillOperator(task_id="test_notebooks_objects", input_nb=input_nb, output_nb=output_nb)
    assert run_dag(dag)["test_notebooks_objects"].state == "success"
    assert getattr(op.input_nb, "url", op.input_nb) == in_url
    assert getattr(op.output_nb, "url", op.output_nb) == out_url
    params = read_nb(out_url)["metadata"]["papermill"]["parameters"]
    assert params == ({"msgs": "from the inlet"} if input_as_object else {})


def test_render_template(airflow_db, tmp_path: Path) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.papermill import PapermillOperator

    with DAG(dag_id="test_render_template", schedule=None, start_date=WHEN,
             params={"kernel_name": "python3", "language_name": "python"}) as dag:
        PapermillOperator(
            task_id="render_dag_test",
            input_nb=str(tmp_path / "{{ dag.dag_id }}.ipynb"),
            output_nb=str(tmp_path / "out-{{ dag.dag_id }}.ipynb"),
            parameters={"msgs": "dag id is {{ dag.dag_id }}!", "test_dt": "{{ ds }}"},
            kernel_name="{{ params.kernel_name }}",
            language_name="{{ params.language_name }}",
        )
    src = input_notebook(tmp_path)
    src.rename(tmp_path / "test_render_template.ipynb")
    assert run_dag(dag, logical_date=WHEN)["render_dag_test"].state == "success"
    out = read_nb(tmp_path / "out-test_render_template.ipynb")
    assert out["metadata"]["papermill"]["parameters"] == {"msgs": "dag id is test_render_template!",
                                                          "test_dt": "2024-05-01"}
    assert out["metadata"]["kernelspec"]["name"] == "python3"
