"""Secret parameters from Airflow variables and connections reach the kernel, and their text is written nowhere.

Not in the output notebook, its metadata, the rendered template fields Airflow stores, XCom, the task log, or the
exception a failed task raises (what ``on_failure_callback`` notifiers get). The secret comes from a variable (or a
parameter) whose name Airflow does not consider sensitive (``nb_sig``, ``signature``), so only
``secret_parameters`` protects it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import subprocess
import traceback
from pathlib import Path
from typing import Any

import airflow
import pendulum
import pytest
from airflow.sdk import DAG
from packaging.version import Version

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
SECRET = "s3cr3t-T0ken-9f8e7d6c"


@pytest.fixture
def api_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NB_API", json.dumps({"conn_type": "http", "host": "api.example.com",
                                                          "password": "conn-password-1234"}))
    monkeypatch.setenv("AIRFLOW_VAR_NB_REGION", "eu")
    monkeypatch.setenv("AIRFLOW_VAR_NB_SIG", SECRET)


def rendered_fields(dag_id: str, task_id: str) -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(RTIF.rendered_fields).where(RTIF.dag_id == dag_id, RTIF.task_id == task_id)).all()
    assert rows, "Airflow stored no rendered fields"
    return json.dumps([r[0] for r in rows])


def test_secret_parameter_reaches_the_kernel_and_is_written_nowhere(airflow_db, api_connection, make_notebook,
                                                                      capfd, tmp_path: Path) -> None:
    nb = make_notebook(
        "#parameters\nsignature = ''\nhost = ''\nregion = ''",
        "import hashlib\nprint(hashlib.sha256(signature.encode()).hexdigest(), host, region)",
    )
    with DAG(dag_id="t_secret", schedule=None, start_date=START) as dag:
        NotebookOperator(
            task_id="nb",
            notebook=str(nb),
            parameters={"signature": "{{ var.value.nb_sig }}", "host": "{{ conn.nb_api.host }}",
                        "region": "{{ var.value.nb_region }}"},
            secret_parameters=["signature"],
        )
    res = run_dag(dag)
    log = "".join(capfd.readouterr())
    task = res["nb"]
    assert task.state == "success", log[-3000:]
    output = Path(task.xcom["output_notebook"])
    out = read_nb(output)

    # The kernel had the real value.
    assert stream_text(code_cells(out)[2]) == f"{hashlib.sha256(SECRET.encode()).hexdigest()} api.example.com eu\n"
    # The notebook holds only the code that reads it, and records which variable that is.
    assert "signature = __import__('os').environ['NOTEBOOK_SECRET_signature']" in "".join(code_cells(out)[1]["source"])
    assert out["metadata"]["papermill"]["parameters"] == {"host": "api.example.com", "region": "eu"}
    assert out["metadata"]["airflow_notebook"]["secret_parameters"] == {"signature": "NOTEBOOK_SECRET_signature"}
    # The text appears nowhere.
    assert SECRET not in output.read_text()
    assert SECRET not in rendered_fields("t_secret", "nb")
    assert SECRET not in json.dumps(task.xcom, default=str)
    assert SECRET not in log
    assert log.count("NotebookTaskFailed") == 0

    # The debug loop keeps working: rerun reads the secret from the same variable, and asks for it when missing.
    exe = AIRFLOW_NOTEBOOK
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBOOK_SECRET_")}
    proc = subprocess.run([exe, "rerun", str(output), "-o", str(tmp_path / "rerun.ipynb")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "set NOTEBOOK_SECRET_signature" in proc.stderr
    proc = subprocess.run([exe, "rerun", str(output), "-o", str(tmp_path / "rerun.ipynb"), "--yes"],
                          env={**env, "NOTEBOOK_SECRET_signature": SECRET}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rerun = (tmp_path / "rerun.ipynb").read_text()
    assert SECRET not in rerun and hashlib.sha256(SECRET.encode()).hexdigest() in rerun


def test_a_secret_the_notebook_prints_is_masked_in_the_task_log(airflow_db, api_connection, make_notebook, capfd) -> None:
    """The notebook's own output is the author's responsibility; the task log still hides the secret."""
    nb = make_notebook("#parameters\nsignature = ''", "print('using', signature)")
    with DAG(dag_id="t_secret_printed", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"signature": "{{ var.value.nb_sig }}"},
                         secret_parameters=["signature"])
    res = run_dag(dag)
    log = "".join(capfd.readouterr())
    assert res["nb"].state == "success"
    assert "[stdout] using ***" in log
    assert SECRET not in log


@pytest.mark.parametrize(
    ("parameters", "secrets", "match"),
    [({"a": 1}, ["signature"], "`secret_parameters` names 'signature', which is not in `parameters`"),
     ({"signature": 123}, ["signature"], "Secret parameter 'signature' must be a string")],
)
def test_bad_secret_parameters_fail_without_running(airflow_db, make_notebook, capfd, parameters, secrets, match) -> None:
    nb = make_notebook("print('ran')")
    dag_id = f"t_bad_secret_{abs(hash(match)) % 10_000}"
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters=parameters, secret_parameters=secrets, retries=2)
    res = run_dag(dag)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)
    assert "output_notebook" not in res["nb"].xcom
    assert match in "".join(capfd.readouterr())


def test_a_secret_a_cell_prints_or_raises_is_starred_in_the_notebook_and_its_report(
    airflow_db, api_connection, make_notebook, tmp_path: Path
) -> None:
    nb = make_notebook(
        "#parameters\nsignature = ''",
        "print('debugging with', signature)",
        "raise RuntimeError(f'login refused for {signature!r}')",
    )
    out = tmp_path / "attempt-1.ipynb"
    with DAG(dag_id="t_secret_printed", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), report_formats=["html"],
                         parameters={"signature": "{{ var.value.nb_sig }}"}, secret_parameters=["signature"])
    assert run_dag(dag)["nb"].state == "failed"
    text = out.read_text()
    assert SECRET not in text and SECRET not in (tmp_path / "attempt-1.html").read_text()
    cells = code_cells(read_nb(out))
    assert stream_text(cells[2]) == "debugging with ***\n"
    assert "login refused for '***'" in json.dumps(cells[3]["outputs"])


# -- the task's exception, its log and its failure callback ---------------------------------------------------

TOKEN = "SEKRET-123-4f2c9a"


def record_failure(path: str, context: Any) -> None:
    """An ``on_failure_callback`` as a Slack or e-mail notifier sees the failure: the exception's text, its args,
    and its traceback as ``traceback.format_exception`` prints it (the whole ``__cause__``/``__context__`` chain,
    suppressed context included)."""
    exc = context["exception"]
    chain, seen, link = [], set(), exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        chain.append({"type": type(link).__name__, "str": str(link), "args": repr(link.args),
                      "notes": repr(getattr(link, "__notes__", None))})
        link = link.__cause__ or link.__context__
    Path(path).write_text(json.dumps({
        "str": str(exc),
        "repr": repr(exc),
        "args": repr(exc.args),
        "traceback": "".join(traceback.format_exception(exc)),
        "chain": chain,
    }))


def callback_text(seen: Path) -> str:
    """What ``record_failure`` wrote. Airflow 3.1's ``dag.test()`` runs no task callbacks (checked on 3.1.1, the
    lowest release CI runs this on): there the exception is checked in the task log alone, and this gives ``""``."""
    if not seen.exists() and Version(airflow.__version__) < Version("3.2"):
        return ""
    return seen.read_text()


def run_and_capture(dag: Any, capfd: Any, caplog: Any) -> tuple[Any, str]:
    """Run ``dag`` with ``dag.test()``; what reached the process's stdout/stderr and the logging records."""
    with caplog.at_level(logging.DEBUG):
        res = run_dag(dag)
    out = "".join(capfd.readouterr())
    records = "\n".join(
        f"{r.getMessage()}\n{''.join(traceback.format_exception(*r.exc_info)) if r.exc_info else ''}"
        for r in caplog.records
    )
    return res, out + "\n" + records


@pytest.mark.parametrize(
    ("cells", "shown"),
    [
        pytest.param(("#parameters\nsignature = ''", "raise ValueError('bad token ' + signature)"),
                     "ValueError: bad token ***", id="cell-raises"),
        pytest.param(("#parameters\nsignature = ''", "raise RuntimeError(f'denied: {signature!r}') from KeyError(signature)"),
                     "RuntimeError: denied: '***'", id="cell-raises-chained"),
        pytest.param(("#parameters\nsignature = ''",
                      "import os, sys\nprint('dying with', signature, file=sys.stderr, flush=True)\nos._exit(3)"),
                     "DeadKernelError: the kernel died", id="kernel-dies"),
    ],
)
def test_a_secret_in_a_failing_cell_is_starred_in_the_exception_callback_and_log(
    airflow_db, make_notebook, capfd, caplog, tmp_path: Path, cells: tuple[str, ...], shown: str
) -> None:
    nb = make_notebook(*cells)
    seen = tmp_path / "callback.json"
    with DAG(dag_id="t_secret_exception", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"signature": TOKEN}, secret_parameters=["signature"],
                         on_failure_callback=functools.partial(record_failure, str(seen)))
    res, log = run_and_capture(dag, capfd, caplog)
    assert res["nb"].state == "failed"
    callback = callback_text(seen)
    assert "NotebookTaskFailed" in log and "Task failed with exception" in log
    leaks = [where for where, text in (("task log", log), ("on_failure_callback", callback)) if TOKEN in text]
    assert not leaks, f"the secret is in the {' and the '.join(leaks)}: {callback}"
    assert shown in (json.loads(callback)["str"] if callback else log)
    assert TOKEN not in Path(res["nb"].xcom["output_notebook"]).read_text()


def test_a_secret_with_a_bad_type_is_starred_in_the_error_the_rendered_fields_and_the_log(
    airflow_db, make_notebook, capfd, caplog, tmp_path: Path
) -> None:
    """A secret parameter that is not a string (a dict holding the value) fails validation; neither the error nor
    the rendered fields Airflow stores show it."""
    nb = make_notebook("#parameters\nsignature = ''", "print('ran')")
    seen = tmp_path / "callback.json"
    with DAG(dag_id="t_secret_bad_type", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"signature": {"key": TOKEN}},
                         secret_parameters=["signature"], on_failure_callback=functools.partial(record_failure, str(seen)))
    res, log = run_and_capture(dag, capfd, caplog)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)
    assert "Secret parameter 'signature' must be a string" in log
    callback = callback_text(seen)
    assert "Secret parameter 'signature' must be a string" in (callback or log)
    assert TOKEN not in callback and TOKEN not in log
    fields = rendered_fields("t_secret_bad_type", "nb")
    assert TOKEN not in fields, fields


def test_a_secret_in_a_papermill_notebook_inlets_parameters_is_hidden_like_any_other(
    airflow_db, make_notebook, capfd, caplog, monkeypatch, tmp_path: Path
) -> None:
    """The papermill drop-in takes parameters from a ``NoteBook`` inlet too: a secret there is hidden from the
    rendered fields, the exception and the log as one given in ``parameters``, and still reaches the kernel."""
    from airflow_notebook_provider.operators.papermill import NoteBook, PapermillOperator

    nb = make_notebook("#parameters\nsignature = ''", "print(len(signature))\nraise ValueError('bad token ' + signature)")
    seen = tmp_path / "callback.json"
    with DAG(dag_id="t_secret_papermill_inlet", schedule=None, start_date=START) as dag:
        PapermillOperator(task_id="nb", input_nb=NoteBook(str(nb), parameters={"signature": "{{ var.value.nb_sig }}"}),
                          output_nb=str(tmp_path / "out.ipynb"), secret_parameters=["signature"], log_output=True,
                          on_failure_callback=functools.partial(record_failure, str(seen)))
    monkeypatch.setenv("AIRFLOW_VAR_NB_SIG", TOKEN)
    res, log = run_and_capture(dag, capfd, caplog)
    assert res["nb"].state == "failed"
    assert f"[stdout] {len(TOKEN)}" in log  # the kernel had the value
    callback = callback_text(seen)
    assert "ValueError: bad token ***" in (json.loads(callback)["str"] if callback else log)
    fields = rendered_fields("t_secret_papermill_inlet", "nb")
    leaks = [where for where, text in (("task log", log), ("on_failure_callback", callback),
                                       ("rendered fields", fields), ("output", (tmp_path / "out.ipynb").read_text()))
             if TOKEN in text]
    assert not leaks, f"the secret is in the {' and the '.join(leaks)}: {fields}"
