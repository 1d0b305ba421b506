"""The ``airflow-notebook`` command, run as a user runs it: the installed console script in a subprocess.

The debug loop end to end: a notebook fails in Airflow, ``pull`` of the link the UI shows gives a copy that fails
the same way when all its cells run in a real kernel, the notebook is fixed, ``rerun`` checks the fix with the
production parameters.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, cli, code_cells, read_nb, run_dag, s3_client, stream_text

EXE = AIRFLOW_NOTEBOOK
START = pendulum.datetime(2024, 1, 1, tz="UTC")
LINK_KEY = "_link_NotebookOutputLink"


def error_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if "papermill-error-cell-tag" in c.get("metadata", {}).get("tags", [])]


@pytest.fixture
def sales_nb(make_notebook):
    """A notebook that fails for some parameter values, as production notebooks do."""
    return make_notebook(
        "#parameters\nregion = 'eu'\nlimit = 10\nday = None\nratio = 0.5\nstrict = False",
        "print(type(limit).__name__, limit, type(day).__name__, day, ratio, strict, region)",
        "rows = list(range(limit))\nfrom airflow_notebook_provider import record\nrecord('rows', len(rows))",
        "if region == 'us' and limit > 100:\n    raise ValueError(f'no data for {region} beyond {limit} rows')",
        "print('done')",
    )


def test_run_injects_yaml_parameters_like_a_task(sales_nb: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("region: us\nlimit: 5\nratio: 0.25\n")
    out = tmp_path / "out.ipynb"
    proc = cli("run", str(sales_nb), "-o", str(out), "-f", str(params), "-p", "limit", "7", "-p", "day", "2024-05-17",
               "-p", "strict", "true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert proc.stderr == ""  # quiet when not a terminal: no progress, no kernel chatter
    nb = read_nb(out)
    assert stream_text(code_cells(nb)[2]) == "int 7 str 2024-05-17 0.25 True us\n"
    assert nb["metadata"]["papermill"]["parameters"] == {"region": "us", "limit": 7, "ratio": 0.25, "day": "2024-05-17",
                                                         "strict": True}
    assert "injected-parameters" in code_cells(nb)[1]["metadata"]["tags"]
    assert nb["metadata"]["papermill"]["exception"] is None


def test_python_dash_m_and_default_output(sales_nb: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "airflow_notebook_provider", "run", str(sales_nb), "-p", "limit", "3"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    expected = sales_nb.with_name("nb.out.ipynb")
    assert proc.stdout.strip() == str(expected) and expected.exists()


def test_failure_exit_status_and_message_match_the_task(airflow_db, sales_nb: Path, tmp_path: Path, capfd) -> None:
    with DAG(dag_id="t_cli_same_message", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(sales_nb), parameters={"region": "us", "limit": 500})
    assert run_dag(dag)["nb"].state == "failed"
    task_line = next(ln for ln in "".join(capfd.readouterr()).splitlines() if "NotebookTaskFailed:" in ln)
    task_msg = task_line.split("NotebookTaskFailed: ", 1)[1].split(". Output notebook:")[0]

    out = tmp_path / "failed.ipynb"
    proc = cli("run", str(sales_nb), "-o", str(out), "-p", "region", "us", "-p", "limit", "500")
    assert proc.returncode == 1
    cli_msg = proc.stderr.splitlines()[0]
    assert cli_msg == f"{task_msg}. Output notebook: {out}"
    assert "ValueError: no data for us beyond 500 rows" in cli_msg
    nb = read_nb(out)
    assert nb["metadata"]["papermill"]["exception"] is True and len(error_cells(nb)) == 2


def test_bad_input_exits_2_with_the_fix(tmp_path: Path, sales_nb: Path) -> None:
    proc = cli("run", str(tmp_path / "missing.ipynb"))
    assert proc.returncode == 2 and "missing.ipynb does not exist" in proc.stderr
    proc = cli("run", str(sales_nb), "-p", "class", "1")
    assert proc.returncode == 2 and "'class' is not a valid Python identifier" in proc.stderr
    proc = cli("run", str(sales_nb), "-o", str(sales_nb))
    assert proc.returncode == 2 and "is the input notebook" in proc.stderr


def test_progress_on_a_terminal(sales_nb: Path, tmp_path: Path) -> None:
    """On a TTY the live line says which cell runs and for how long; it is erased at the end."""
    slow = sales_nb.with_name("slow.ipynb")
    nb = nbformat.read(str(sales_nb), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time; time.sleep(1.5)"))
    nbformat.write(nb, str(slow))
    primary, replica = pty.openpty()
    proc = subprocess.Popen([EXE, "run", str(slow), "-o", str(tmp_path / "o.ipynb")], stdout=subprocess.PIPE,
                            stderr=replica, stdin=subprocess.DEVNULL)
    os.close(replica)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(primary)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "cell 3/6 · 00:0" in shown and "elapsed" in shown


def test_inspect_text_and_json(sales_nb: Path, tmp_path: Path) -> None:
    out = tmp_path / "failed.ipynb"
    assert cli("run", str(sales_nb), "-o", str(out), "-p", "region", "us", "-p", "limit", "500").returncode == 1
    proc = cli("inspect", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["status"] == "failed"
    assert rec["parameters"] == {"region": "us", "limit": 500}
    assert rec["input_path"] == str(sales_nb)
    assert rec["error"]["cell"] == 5 and rec["error"]["ename"] == "ValueError"
    assert rec["error"]["evalue"] == "no data for us beyond 500 rows"
    assert rec["records"] == {"rows": 500}
    code = [c for c in rec["cells"] if c["type"] == "code"]
    assert [c["status"] for c in code] == ["completed", "completed", "completed", "completed", "failed", "pending"]
    assert all(isinstance(c["duration"], float) for c in code[:5]) and code[5]["duration"] is None
    text = cli("inspect", str(out)).stdout
    assert "Status            failed" in text
    assert "Failed at         cell 5 (In [5]): ValueError: no data for us beyond 500 rows" in text
    assert "Parameters        limit=500, region='us'" in text
    # pull of a local output notebook writes the debug copy next to it
    proc = cli("pull", str(out))
    assert proc.returncode == 0 and f"Debug copy:      {tmp_path / 'failed.debug.ipynb'}" in proc.stdout
    assert not error_cells(read_nb(tmp_path / "failed.debug.ipynb"))


def test_debug_loop_fail_in_airflow_pull_the_link_fix_rerun(airflow_db, make_notebook, tmp_path: Path) -> None:
    """README's worked example, step by step."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "sales.csv").write_text("region,amount\neu,10\nus,oops\n")
    notebook = make_notebook(
        "#parameters\nregion = 'eu'",
        "import csv\nrows = [r for r in csv.DictReader(open('data/sales.csv')) if r['region'] == region]",
        "total = sum(int(r['amount']) for r in rows)\nprint(total)",
        folder=project,
    )
    # 1. It fails in Airflow.
    with DAG(dag_id="t_cli_debug_loop", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="report", notebook=str(notebook), parameters={"region": "us"})
    task = run_dag(dag)["report"]
    assert task.state == "failed"
    link = task.xcom[LINK_KEY]
    assert "/notebook/dags/t_cli_debug_loop/view?" in link or "/notebook/view?dag_id=t_cli_debug_loop" in link

    # 2. Pull the link copied from the UI: the location is resolved from Airflow's metadata DB.
    work = tmp_path / "debug"
    proc = cli("pull", f"http://airflow.example.com{link}", "-o", str(work))
    assert proc.returncode == 0, proc.stderr
    fetched = work / "t_cli_debug_loop__report__attempt-1.ipynb"
    debug = work / "t_cli_debug_loop__report__attempt-1.debug.ipynb"
    assert f"Debug copy:      {debug}" in proc.stdout
    assert "ValueError: invalid literal for int() with base 10: 'oops'" in proc.stdout
    assert read_nb(fetched) == read_nb(task.xcom["output_notebook"])
    copy = read_nb(debug)
    assert not error_cells(copy)
    assert "region = 'us'" in "".join(code_cells(copy)[1]["source"])  # the production parameters are in place
    assert code_cells(copy)[3]["outputs"][0]["ename"] == "ValueError"  # outputs kept

    # 3. Run all cells of the debug copy in a real kernel (from the folder the task ran in): the same failure.
    nb = nbformat.read(str(debug), as_version=4)
    with pytest.raises(CellExecutionError) as err:
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(project)}}, timeout=60).execute()
    assert (err.value.ename, err.value.evalue) == ("ValueError", "invalid literal for int() with base 10: 'oops'")

    # 4. Fix the notebook, then rerun it with the parameters the failed attempt recorded.
    fixed = nbformat.read(str(notebook), as_version=4)
    fixed.cells[2].source = "total = sum(int(r['amount']) for r in rows if r['amount'].isdigit())\nprint(total)"
    nbformat.write(fixed, str(notebook))
    proc = cli("rerun", str(fetched), "-o", str(work / "rerun.ipynb"), "--yes")
    assert proc.returncode == 0, proc.stderr
    rerun = read_nb(work / "rerun.ipynb")
    assert rerun["metadata"]["papermill"]["parameters"] == {"region": "us"}
    assert rerun["metadata"]["papermill"]["exception"] is None
    assert stream_text(code_cells(rerun)[3]) == "0\n"
    assert rerun["metadata"]["airflow_notebook"]["rerun_of"]["airflow"]["dag_id"] == "t_cli_debug_loop"


def test_pull_of_an_unknown_link_says_what_to_do(airflow_db) -> None:
    proc = cli("pull", "/notebook/dags/nope/view?run_id=r&task_id=t&map_index=-1&try_number=1")
    assert proc.returncode == 2
    assert "has no output notebook for task t" in proc.stderr and "Output notebook:" in proc.stderr


def test_pull_and_inspect_from_s3_with_a_connection(moto, sales_nb: Path, tmp_path: Path) -> None:
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="cli-runs")
    s3.upload_file(str(sales_nb), "cli-runs", "templates/sales.ipynb")
    url = "s3://cli-runs/runs/sales-1.ipynb"
    proc = cli("run", "s3://cli-runs/templates/sales.ipynb", "-o", url, "-p", "region", "us", "-p", "limit", "500",
               "--conn-id", "moto_s3")
    assert proc.returncode == 1, proc.stderr
    assert "ValueError: no data for us beyond 500 rows" in proc.stderr
    proc = cli("pull", url, "--conn-id", "moto_s3", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert not error_cells(read_nb(tmp_path / "sales-1.debug.ipynb"))
    assert read_nb(tmp_path / "sales-1.ipynb")["metadata"]["papermill"]["exception"] is True
    proc = cli("inspect", url, "--conn-id", "moto_s3", "--json")
    assert json.loads(proc.stdout)["error"]["ename"] == "ValueError"


def test_record_and_cli_import_no_airflow() -> None:
    code = ("import sys, airflow_notebook_provider.cli\nfrom airflow_notebook_provider import record\n"
            "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert time.monotonic() - t0 < 20


def test_pull_of_an_earlier_attempt_link_after_a_retry(airflow_db, make_notebook, tmp_path: Path) -> None:
    import datetime as dt

    nb = make_notebook("#parameters\nattempt = 0", "assert int(attempt) > 1, f'attempt {attempt} fails'")
    with DAG(dag_id="t_cli_pull_retry", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"attempt": "{{ ti.try_number }}"}, retries=1,
                         retry_delay=dt.timedelta(0))
    task = run_dag(dag)["nb"]
    assert (task.state, task.try_number) == ("success", 2)
    first_link = task.xcom[LINK_KEY].replace("try_number=2", "try_number=1")
    proc = cli("pull", first_link, "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "AssertionError: attempt 1 fails" in proc.stdout
    assert read_nb(tmp_path / "t_cli_pull_retry__nb__attempt-1.ipynb")["metadata"]["airflow"]["try_number"] == 1
