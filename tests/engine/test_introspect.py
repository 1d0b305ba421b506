"""What a notebook declares in its parameters cell, read as papermill's ``--help-notebook`` reads it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from papermill.inspection import inspect_notebook

from airflow_notebook_provider.engine.introspect import NotIntrospectable, declared_parameters

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
