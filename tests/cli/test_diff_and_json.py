"""``airflow-notebook diff`` as a user runs it (the installed script, real kernels, real Airflow for viewer links),
and every ``--json`` output piped into ``json.loads``."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import AIRFLOW_NOTEBOOK, cli, run_dag

EXE = AIRFLOW_NOTEBOOK
START = pendulum.datetime(2024, 1, 1, tz="UTC")
LINK_KEY = "_link_NotebookOutputLink"


@pytest.fixture
def rows_nb(make_notebook):
    return make_notebook(
        "#parameters\nlimit = 10\nregion = 'eu'",
        "print(f'{limit} rows for {region}')",
        "if limit > 100:\n    raise ValueError(f'too many rows: {limit}')",
        "print('done')",
    )


@pytest.fixture
def passed_then_failed(rows_nb: Path, tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "passed.ipynb", tmp_path / "failed.ipynb"
    assert cli("run", str(rows_nb), "-o", str(a), "-p", "limit", "5").returncode == 0
    assert cli("run", str(rows_nb), "-o", str(b), "-p", "limit", "500").returncode == 1
    return a, b


def test_diff_of_a_failed_run_after_a_passed_one(passed_then_failed: tuple[Path, Path]) -> None:
    a, b = passed_then_failed
    proc = cli("diff", str(a), str(b))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith(f"A  {a}  (succeeded, ") and out[1].startswith(f"B  {b}  (failed, ")
    assert "Parameters: 1 differ" in out and "  limit  5 → 500" in out
    assert any(line.startswith("Input notebook: unchanged (sha256 ") for line in out)
    assert "Outputs: 3 cells differ" in out
    assert "      -[stdout] 5 rows for eu" in out and "      +[stdout] 500 rows for eu" in out
    assert "      +[error] ValueError: too many rows: 500" in out
    # Cell numbers are the ones `inspect` (and the task's error) uses.
    failing = json.loads(cli("inspect", str(b), "--json").stdout)["error"]["cell"]
    assert f"First cell whose status differs: cell {failing}: completed → failed  (if limit > 100:)" in out
    assert out[-1] == "Different."
    # The parts come in the order the issue asks for.
    heads = ["Parameters:", "Input notebook:", "Outputs:", "First cell whose status differs:", "     cell  status A"]
    positions = [next(i for i, line in enumerate(out) if line.startswith(h)) for h in heads]
    assert positions == sorted(positions)
    same = cli("diff", str(a), str(a))
    assert same.returncode == 0 and same.stdout.splitlines()[-1] == "Same (times aside)."


def test_diff_shows_the_cells_of_a_changed_input(rows_nb: Path, passed_then_failed: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    a, _ = passed_then_failed
    nb = nbformat.read(str(rows_nb), as_version=4)
    nb.cells[1].source = "print(f'{limit} rows for {region}!')"
    nbformat.write(nb, str(rows_nb))
    c = tmp_path / "edited.ipynb"
    assert cli("run", str(rows_nb), "-o", str(c), "-p", "limit", "5").returncode == 0
    proc = cli("diff", str(a), str(c))
    assert proc.returncode == 1
    out = proc.stdout.splitlines()
    assert "Parameters: same" in out
    assert any(line.startswith("Input notebook: changed (sha256 ") and line.endswith("1 cells differ") for line in out)
    assert "  cell 3: print(f'{limit} rows for {region}!')" in out
    assert "      -print(f'{limit} rows for {region}')" in out and "      +print(f'{limit} rows for {region}!')" in out


def test_diff_errors_exit_2_with_one_line(passed_then_failed: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = passed_then_failed
    (tmp_path / "text.ipynb").write_text("not json")
    for args, expected in (
        ((str(a), str(tmp_path / "missing.ipynb")), "missing.ipynb does not exist."),
        ((str(a), str(tmp_path / "text.ipynb")), "text.ipynb is not a notebook: it is not valid JSON"),
        ((str(a), "/notebook/dags/nope/view?run_id=r&task_id=t"), "of DAG nope, run r"),
    ):
        proc = cli("diff", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == "" and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("airflow-notebook: error: ") and expected in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def retried_links(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Viewer links of a task whose first attempt failed and second passed (dag.test, real kernel)."""
    folder = tmp_path_factory.mktemp("retried")
    nb = folder / "nb.ipynb"
    params = nbformat.v4.new_code_cell("attempt = 0")
    params.metadata["tags"] = ["parameters"]
    ks = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(
        "assert int(attempt) > 1, f'attempt {attempt} fails'")], metadata={"kernelspec": ks}), str(nb))
    with DAG(dag_id="t_cli_diff_links", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"attempt": "{{ ti.try_number }}"}, retries=1,
                         retry_delay=dt.timedelta(0))
    task = run_dag(dag)["nb"]
    assert (task.state, task.try_number) == ("success", 2)
    second = f"http://airflow.example.com{task.xcom[LINK_KEY]}"
    return second.replace("try_number=2", "try_number=1"), second


def test_diff_of_two_viewer_links(retried_links: tuple[str, str]) -> None:
    first, second = retried_links
    proc = cli("diff", first, second)
    assert proc.returncode == 1, proc.stderr
    assert '  attempt  "1" → "2"' in proc.stdout
    assert "First cell whose status differs: cell 3: failed → completed" in proc.stdout


def test_every_json_output_is_json_alone_on_stdout(retried_links: tuple[str, str], rows_nb: Path,
                                                   passed_then_failed: tuple[Path, Path], tmp_path: Path) -> None:
    """Pipe-able: stdout parses as JSON even with Airflow logging at INFO (its logs go to stderr)."""
    first, second = retried_links
    a, b = passed_then_failed
    (tmp_path / "base").mkdir()
    env = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    commands = [
        ("params", str(rows_nb), "--json"),
        ("inspect", str(b), "--json"),
        ("inspect", first, "--json"),
        ("diff", str(a), str(b), "--json"),
        ("diff", first, second, "--json"),
        ("clean", "--older-than", "3650d", "--dry-run", "--json"),  # output_base from the Airflow configuration
        ("clean", "--older-than", "1d", "--dry-run", "--output-base", str(tmp_path / "base"), "--json"),
    ]
    seen = set()
    for args in commands:
        proc = cli(*args, env=env)
        assert proc.returncode in (0, 1), (args, proc.stderr)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"{args}: stdout is not JSON alone:\n{proc.stdout[:2000]}") from None
        assert isinstance(data, dict) and data, args
        seen.add(args[0])
    # Every subcommand with --json is covered here.
    from airflow_notebook_provider.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_json = {name for name, p in sub.choices.items() if any(x.dest == "json" for x in p._actions)}
    assert with_json == seen
    assert json.loads(cli("diff", first, second, "--json", env=env).stdout)["parameters"][0]["name"] == "attempt"
    configured = Path(os.environ["AIRFLOW_HOME"]) / "notebook_outputs"
    assert json.loads(cli(*commands[5], env=env).stdout)["output_base"] == str(configured.resolve())
