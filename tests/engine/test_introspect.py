"""What a notebook declares in its parameters cell, read as papermill's ``--help-notebook`` reads it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG
from papermill.inspection import inspect_notebook

from airflow_notebook_provider.notebook.introspect import NotIntrospectable, declared_parameters
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")
PYTHON_CELL = (
    'region = "eu"  # sales region\n'
    "limit: int = 10\n"
    "ratio = 0.5  # type: float share of rows\n"
    "day = None\n"
    "items = [1, 2]\n"
    "nested = {\n    'a': 1,\n}  # spans lines\n"
    "when = __import__('datetime').date.today()  # computed\n"
)


def notebook(source: str, language: str = "python", tmp: Path | None = None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})],
        metadata={"kernelspec": {"name": "python3" if language == "python" else "ir", "display_name": "x",
                                 "language": language}},
    )
    if tmp is not None:
        nbformat.write(nb, str(tmp))
    return nb


def test_python_matches_papermills_inspection(tmp_path: Path) -> None:
    path = tmp_path / "p.ipynb"
    ours = {p.name: p for p in declared_parameters(notebook(PYTHON_CELL, tmp=path), "python")}
    theirs = inspect_notebook(str(path))
    assert list(ours) == list(theirs)
    for name, pm in theirs.items():
        ours_default = ours[name].default_source
        if "\n" in ours_default:  # papermill joins a multi-line default's lines; the source is kept as written here
            ours_default = "".join(line.strip() for line in ours_default.splitlines())
        assert (ours_default, ours[name].help) == (pm["default"], pm["help"]), name
        if pm["inferred_type_name"] != "None":
            assert ours[name].inferred_type == pm["inferred_type_name"], name  # declared types: the same
    # Where papermill says None, the literal's type; values where the default is a literal.
    assert ours["region"].inferred_type == "str" and ours["region"].default == "eu"
    assert ours["items"].default == [1, 2] and ours["nested"].default == {"a": 1} and ours["nested"].help == "spans lines"
    assert ours["day"].has_value and ours["day"].inferred_type == "NoneType"
    assert not ours["when"].has_value and ours["when"].inferred_type == "None" and ours["when"].help == "computed"


def test_statements_that_assign_nothing_are_not_parameters() -> None:
    # papermill glues such a line onto the previous parameter's default; here it is left out.
    got = declared_parameters(notebook("a = 1\nprint('not a parameter')\nb = 2\nif a:\n    c = 3\n"), "python")
    assert [(p.name, p.default_source) for p in got] == [("a", "1"), ("b", "2")]


def test_r_parameters() -> None:
    cell = 'day <- "2024-01-01"  # the report day\nregions <- list("eu")\nlimit = 10L\nratio <- 0.5\nstrict <- TRUE\n'
    got = {p.name: p for p in declared_parameters(notebook(cell, "R"), "R")}
    assert (got["day"].default, got["day"].inferred_type, got["day"].help) == ("2024-01-01", "character", "the report day")
    assert (got["limit"].default, got["limit"].inferred_type) == (10, "integer")
    assert (got["ratio"].default, got["strict"].default) == (0.5, True)
    assert not got["regions"].has_value and got["regions"].default_source == 'list("eu")'


def test_no_parameters_cell_and_unreadable_languages() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    assert declared_parameters(nb, "python") is None
    with pytest.raises(NotIntrospectable, match="julia notebooks cannot be read"):
        declared_parameters(notebook("x = 1", "julia"), "julia")


# -- a pathological parameters cell: a clear error, not a crash or a hang ---------------------------------------------

PATHOLOGICAL = {
    "unary minus": "x = " + "-" * 200_000 + "1",
    "nested brackets": "x = " + "[" * 100_000 + "]" * 100_000,
    "nested calls": "x = f" + "()" * 100_000,
    "chained additions": "x = " + "1+" * 200_000 + "1",
}


@pytest.mark.parametrize("source", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_a_pathological_cell_is_refused_with_the_cell_and_the_fix(source: str) -> None:
    with pytest.raises(NotIntrospectable) as err:
        declared_parameters(notebook(source), "python")
    text = str(err.value)
    assert "parameters cell (cell 2)" in text, text
    assert "simplify" in text or "fix" in text, text


def test_a_huge_string_default_is_read() -> None:
    big = "a" * 5_000_000
    x, y = declared_parameters(notebook(f"x = '{big}'  # big\ny = 1\n"), "python")
    assert (x.name, x.default == big, x.default_source == f"'{big}'", x.help) == ("x", True, True, "big")
    assert (y.name, y.default) == ("y", 1)


def test_a_cell_with_a_syntax_error_is_not_read_as_declaring_nothing() -> None:
    with pytest.raises(NotIntrospectable, match=r"parameters cell \(cell 2\) is not valid Python.*line 2"):
        declared_parameters(notebook("a = 1\nb = (\n"), "python")


def test_r_lines_that_backtrack_are_read_in_linear_time() -> None:
    """Long R lines shaped to make a backtracking regex take forever: read (or skipped) at once."""
    cell = "x <- a" + " " * 100_000 + "b\ny <- " + "1" * 100_000 + "x\nz <- 2L\n"
    got = {p.name: p for p in declared_parameters(notebook(cell, "R"), "R")}
    assert got["z"].default == 2 and not got["x"].has_value and not got["y"].has_value


def test_an_operator_runs_a_notebook_whose_parameters_cell_cannot_be_read(airflow_db, make_notebook, capfd) -> None:
    """The declared-parameters check is advice: a cell it cannot read is not checked, and the kernel runs it as it
    is. A huge default runs; code Python cannot compile fails at that cell, with Python's error in the output
    notebook and the task's message, as any broken cell does (no crash or hang before the kernel starts)."""
    big = "a" * 5_000_000
    huge = make_notebook(f"#parameters\nx = '{big}'", "print(len(x), y)", name="huge.ipynb")
    broken = make_notebook("#parameters\nx = " + "-" * 200_000 + "1", "print(x, y)", name="broken.ipynb")
    with DAG(dag_id="t_pathological_parameters_cell", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="huge", notebook=str(huge), parameters={"y": 7}, unknown_parameters="warn")
        NotebookOperator(task_id="broken", notebook=str(broken), parameters={"y": 7}, unknown_parameters="fail")
    res = run_dag(dag)
    log = "".join(capfd.readouterr())
    assert res["huge"].state == "success", log[-3000:]
    out = read_nb(res["huge"].xcom["output_notebook"])
    assert stream_text(code_cells(out)[2]) == "5000000 7\n"
    assert "does not declare 'y'" in log  # the huge cell was read: y is not declared in it

    assert res["broken"].state == "failed", log[-3000:]
    out = read_nb(res["broken"].xcom["output_notebook"])
    failed = code_cells(out)[0]
    assert failed["metadata"]["papermill"]["status"] == "failed"
    error = next(o for o in failed["outputs"] if o["output_type"] == "error")
    assert error["ename"] in ("MemoryError", "RecursionError", "SyntaxError"), error
    assert f"{broken} raised at cell " in log and f": {error['ename']}" in log, log[-3000:]


def test_a_lone_surrogate_in_the_cell_is_named() -> None:
    with pytest.raises(NotIntrospectable, match=r"parameters cell \(cell 2\) holds '\\ud800'.*remove it"):
        declared_parameters(notebook("x = '\ud800'"), "python")
