"""A DAG written for apache-airflow-providers-papermill runs on this provider after changing only its import.

The same DAG source runs twice under dag.test(): with the papermill provider's operator and with the shim; the
output notebooks agree on what a user checks (parameters, cell outputs), and the shim adds the provider's record.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from tests.helpers import code_cells, read_nb, run_dag, stream_text

PAPERMILL_IMPORT = "from airflow.providers.papermill.operators.papermill import PapermillOperator"
SHIM_IMPORT = "from airflow_notebook_provider.operators.papermill import PapermillOperator"

# Papermill provider's own example DAG (example_papermill.py), with paths and a DAG id filled in.
DAG_SOURCE = '''
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG
{import_line}

with DAG(
    dag_id="{dag_id}",
    schedule="0 0 * * *",
    start_date=datetime(2021, 1, 1),
    dagrun_timeout=timedelta(minutes=60),
    tags=["example"],
    catchup=False,
) as dag:
    run_this = PapermillOperator(
        task_id="run_example_notebook",
        input_nb="{input_nb}",
        output_nb="{out_dir}/out-{{{{ logical_date }}}}.ipynb",
        parameters={{"msgs": "Ran from Airflow at {{{{ logical_date }}}}!", "n": 3}},
        kernel_name="python3",
        language_name="python",
        log_output=True,
        nbconvert=False,
        nbconvert_args=None,
    )
'''


def load_dag(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_papermill_dag_runs_unchanged_but_for_its_import(airflow_db, make_notebook, tmp_path: Path, capfd) -> None:
    pytest.importorskip("airflow.providers.papermill")
    nb = make_notebook("#parameters\nmsgs = 'Hello!'\nn = 1", "print(msgs)", "print(type(n).__name__, n * 2)")
    when = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    outputs = {}
    for kind, import_line in (("papermill", PAPERMILL_IMPORT), ("shim", SHIM_IMPORT)):
        out_dir = tmp_path / kind
        out_dir.mkdir()
        source = DAG_SOURCE.format(import_line=import_line, dag_id=f"t_pm_{kind}", input_nb=nb, out_dir=out_dir)
        res = run_dag(load_dag(tmp_path / f"dag_{kind}.py", source), logical_date=when)
        assert res["run_example_notebook"].state == "success", kind
        (out,) = out_dir.glob("out-*.ipynb")
        assert "2024-03-01" in out.name
        outputs[kind] = read_nb(out)
        if kind == "shim":
            from airflow.sdk.serde import deserialize

            assert deserialize(res["run_example_notebook"].xcom["return_value"]).url == str(out)  # a NoteBook
            assert "/notebook/dags/t_pm_shim/view?" in res["run_example_notebook"].xcom["_link_NotebookOutputLink"]

    pm, shim = outputs["papermill"], outputs["shim"]
    assert shim["metadata"]["papermill"]["parameters"] == pm["metadata"]["papermill"]["parameters"]
    assert shim["metadata"]["papermill"]["parameters"]["msgs"].startswith("Ran from Airflow at 2024-03-01")
    assert [stream_text(c) for c in code_cells(shim)] == [stream_text(c) for c in code_cells(pm)]
    assert stream_text(code_cells(shim)[3]) == "int 6\n"
    assert "injected-parameters" in code_cells(shim)[1]["metadata"]["tags"]
    assert shim["metadata"]["airflow"]["dag_id"] == "t_pm_shim"
    assert "[stdout] int 6" in "".join(capfd.readouterr())  # log_output=True streams cells to the task log
