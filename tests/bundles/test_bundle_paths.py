"""A relative ``notebook`` is read from the DAG's bundle, not the worker's folder: under ``dag.test()`` (which parses no
bundle) the DAG file's folder; ``notebook_root``; the errors; what the output, XCom and ``pull`` record of it.
The scheduler and a real ``GitDagBundle``: test_git_bundle.py."""

from __future__ import annotations

import hashlib
import importlib.util
import textwrap
from pathlib import Path
from typing import Any

from tests.helpers import cli, code_cells, load_example, python_notebook, read_nb, run_dag, stream_text

EXAMPLE_NOTEBOOK = Path(__file__).resolve().parents[2] / "example_dags" / "notebooks" / "bundle_report.ipynb"


def load_dag_file(path: Path) -> Any:
    """Import a DAG file as the dag-processor would (its ``fileloc`` is that file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def write_nb(path: Path, *sources: str) -> str:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(python_notebook(*sources), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_example_dag_runs_its_notebook_from_its_bundle_folder(airflow_db) -> None:
    res = run_dag(load_example("example_notebook_bundle").dag)["bundle_report"]
    assert res.state == "success"
    out = read_nb(res.xcom["output_notebook"])
    assert stream_text(code_cells(out)[-1]).startswith("report for ")
    expected = {"bundle": None, "version": None, "path": "notebooks/bundle_report.ipynb",
                "sha256": hashlib.sha256(EXAMPLE_NOTEBOOK.read_bytes()).hexdigest()}
    assert out["metadata"]["airflow"]["notebook"] == expected
    assert res.xcom["notebook_record"]["notebook"] == expected  # XCom carries the same


def test_relative_paths_come_from_the_bundle_not_the_working_folder(airflow_db, tmp_path: Path, monkeypatch,
                                                                  capfd) -> None:
    bundle = tmp_path / "bundle"
    sha = write_nb(bundle / "nbs" / "a.ipynb", "#parameters\nwho = 'x'", "print(f'bundle notebook for {who}')")
    write_nb(tmp_path / "elsewhere" / "nbs" / "a.ipynb", "print('the working folder one')")
    write_nb(tmp_path / "outside.ipynb", "print('outside the bundle')")
    (bundle / "bundle_dag.py").write_text(textwrap.dedent("""\
        import pendulum
        from airflow.sdk import DAG
        from airflow_notebook_provider.operators.notebook import NotebookOperator
        with DAG(dag_id="t_bundle_paths", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            NotebookOperator(task_id="relative", notebook="nbs/a.ipynb", parameters={"who": "{{ task.task_id }}"})
            NotebookOperator(task_id="rooted", notebook="a.ipynb", notebook_root="{{ 'nbs' }}",
                             parameters={"who": "{{ task.task_id }}"})
            NotebookOperator(task_id="missing", notebook="nbs/nope.ipynb", retries=0)
            NotebookOperator(task_id="escapes", notebook="outside.ipynb", notebook_root="..", retries=0)
            NotebookOperator(task_id="root_with_absolute", notebook=__file__, notebook_root="nbs", retries=0)
        """))
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative path read from here would run the wrong notebook
    res = run_dag(load_dag_file(bundle / "bundle_dag.py"))
    logs = "".join(capfd.readouterr())

    for task_id in ("relative", "rooted"):
        assert res[task_id].state == "success", logs[-3000:]
        out = read_nb(res[task_id].xcom["output_notebook"])
        assert stream_text(code_cells(out)[-1]) == f"bundle notebook for {task_id}\n"
        assert out["metadata"]["airflow"]["notebook"] == {"bundle": None, "version": None, "path": "nbs/a.ipynb",
                                                          "sha256": sha}
        assert out["metadata"]["papermill"]["input_path"] == str(bundle / "nbs" / "a.ipynb")

    assert res["missing"].state == "failed"
    assert (f"Notebook 'nbs/nope.ipynb' is not in the DAG file's folder {bundle} (dag.test() runs no bundle): "
            f"looked for {bundle / 'nbs' / 'nope.ipynb'} in folder {bundle}") in logs
    assert res["escapes"].state == "failed"
    assert "`notebook` 'outside.ipynb' with `notebook_root` '..' leads out of the DAG file's folder" in logs
    assert "outside the bundle" not in logs
    assert res["root_with_absolute"].state == "failed"
    assert "`notebook_root` ('nbs') applies to a relative `notebook` only" in logs


def test_pull_and_rerun_say_which_version_ran_and_warn_when_the_local_copy_differs(airflow_db, tmp_path: Path) -> None:
    res = run_dag(load_example("example_notebook_bundle").dag)["bundle_report"]
    output = res.xcom["output_notebook"]
    checkout = tmp_path / "checkout"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "notebooks" / "bundle_report.ipynb").write_bytes(EXAMPLE_NOTEBOOK.read_bytes())
    same = cli("pull", output, "-o", str(tmp_path / "pulled"), cwd=checkout)
    assert same.returncode == 0, same.stderr
    assert "Ran notebook notebooks/bundle_report.ipynb at the DAG file's folder (sha256 " in same.stdout
    assert "differs" not in same.stdout

    local = checkout / "notebooks" / "bundle_report.ipynb"
    write_nb(local, "#parameters\nday = ''", "print(f'edited since, for {day}')")
    changed = cli("pull", output, "-o", str(tmp_path / "pulled"), cwd=checkout)
    assert f"Warning: your {local} differs from the notebook that ran." in changed.stdout

    rerun = cli("rerun", output, "--notebook", str(local), "-o", str(tmp_path / "rerun.ipynb"), "--yes")
    assert rerun.returncode == 0, rerun.stderr
    assert "version     the recorded run ran notebooks/bundle_report.ipynb at the DAG file's folder" in rerun.stderr
    assert f"Warning: {local} is not the notebook that ran" in rerun.stderr


def test_an_absolute_notebook_root_is_refused(airflow_db, capfd) -> None:
    from airflow.sdk import DAG

    from airflow_notebook_provider.operators.notebook import NotebookOperator

    with DAG(dag_id="t_bundle_abs_root", schedule=None) as dag:
        NotebookOperator(task_id="nb", notebook="a.ipynb", notebook_root="/abs/nbs", retries=0)
    assert run_dag(dag)["nb"].state == "failed"
    assert "`notebook_root` ('/abs/nbs') must be relative to the root of the DAG file's folder" in "".join(
        capfd.readouterr())
