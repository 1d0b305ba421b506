"""Bad input notebooks fail with an error that names the notebook and the fix; every output notebook validates."""

from __future__ import annotations

import json

import nbformat
import pytest

from airflow_notebook_provider.engine.storage import safe_piece
from airflow_notebook_provider.notebook import load as nbrec
from airflow_notebook_provider.notebook import record
from airflow_notebook_provider.notebook.errors import Failure, NotebookInputError
from airflow_notebook_provider.notebook.parameters import inject


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not json at all", "is not a notebook: it is not valid JSON"),
        (b'{"hello": 1}', "JSON but not a Jupyter notebook"),
        (b"[1, 2]", "JSON but not a Jupyter notebook"),
        (b'{"nbformat": 2, "cells": []}', "Upgrade it"),
        (b'{"nbformat": 5, "nbformat_minor": 0, "cells": [], "metadata": {}}', "newer than"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_bad_notebooks_are_refused_with_the_fix(data: bytes, match: str) -> None:
    with pytest.raises(NotebookInputError, match=match) as err:
        nbrec.load(data, "s3://b/k.ipynb")
    assert "s3://b/k.ipynb" in str(err.value)


def test_nbformat3_is_upgraded() -> None:
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [
        {"cells": [{"cell_type": "code", "input": "x = 1", "outputs": [], "language": "python"}]}]}
    nb = nbrec.load(json.dumps(v3).encode(), "old.ipynb")
    assert nb.nbformat == 4 and nb.cells[0].source == "x = 1"


def test_future_minor_version_is_read() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    raw = json.loads(nbformat.writes(nb))
    raw["nbformat_minor"] = 99
    assert nbrec.load(json.dumps(raw).encode(), "new.ipynb").cells[0].source == "1"


def test_dumps_is_what_jupyter_writes() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a\nb")])
    assert json.loads(nbrec.dumps(nb)) == json.loads(nbformat.writes(nb))


def _recorded(nb: nbformat.NotebookNode, failure: Failure | None) -> nbformat.NotebookNode:
    """``nb`` as a run leaves it: parameters injected, record started and finished with ``failure``."""
    inject(nb, {"x": 1})
    record.init_record(nb, parameters={"x": 1}, input_path="in.ipynb", output_path="out.ipynb")
    record.finish_record(nb, failure)
    return nb


def test_error_banner_is_papermills() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("1/0")])
    record.init_record(nb, parameters={}, input_path="in.ipynb", output_path="out.ipynb")
    record.finish_record(nb, Failure("error", "ZeroDivisionError", "division by zero", cell_index=1, execution_count=2))
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [[record.ERROR_MARKER_TAG], [], [record.ERROR_MARKER_TAG], []]
    assert 'href="#papermill-error-cell"' in nb.cells[0].source and "In [2]" in nb.cells[0].source
    assert 'id="papermill-error-cell"' in nb.cells[2].source


@pytest.mark.parametrize("minor", [0, 2, 4, 5])
@pytest.mark.parametrize("failure", [None, Failure("timeout", "CellTimeoutError", "too long", cell_index=0),
                                     Failure("startup", "RuntimeError", "no kernel")])
def test_outputs_validate_whatever_minor_version_came_in(minor: int, failure: Failure | None) -> None:
    """Cells the engine adds carry an ``id``, which exists only from nbformat 4.5: older inputs are upgraded."""
    raw = json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2")])))
    raw["nbformat_minor"] = minor
    if minor < 5:
        for cell in raw["cells"]:
            cell.pop("id", None)
    nb = _recorded(nbrec.load(json.dumps(raw).encode(), "in.ipynb"), failure)
    out = nbformat.reads(nbrec.dumps(nb).decode(), as_version=4)
    nbformat.validate(out)  # raises on an invalid notebook
    assert out.nbformat_minor >= 5 and all(c.get("id") for c in out.cells)
    # papermill 2.7's keys, for tools that read papermill outputs
    assert {"default_parameters", "parameters", "environment_variables", "version"} <= set(out.metadata.papermill)
    assert all(c.metadata["tags"] is not None for c in out.cells)


def test_the_reader_agrees_with_the_writer() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1/0"),
                                         nbformat.v4.new_code_cell("never")])
    record.init_record(nb, parameters={"x": 1}, input_path="in.ipynb", output_path="out.ipynb",
                       metadata={record.PROVENANCE_KEY: {"secret_parameters": {"token": "NOTEBOOK_SECRET_token"}}})
    nb.cells[1].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                  traceback=["\x1b[31mZeroDivisionError\x1b[0m: division by zero"])]
    nb.cells[1].execution_count = 1
    record.finish_record(nb, Failure("error", "ZeroDivisionError", "division by zero", cell_index=1,
                                     execution_count=1))
    run = record.read_run(nb)
    assert run.status == "failed" and run.parameters == {"x": 1} and run.input_path == "in.ipynb"
    assert run.secret_parameters == {"token": "NOTEBOOK_SECRET_token"}
    failed = run.failed_cell
    assert failed is not None and (failed.position, failed.execution_count, failed.ename) == (2, 1, "ZeroDivisionError")
    assert nb.cells[failed.index].source == "1/0"  # index counts the banner cells, position does not
    assert failed.traceback == ("ZeroDivisionError: division by zero",)  # colours stripped
    assert [c.status for c in run.cells] == ["pending", "failed", "pending"]


def test_a_stop_puts_its_reason_on_the_running_cell_once() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(60)")])
    record.init_record(nb, parameters={}, input_path="in.ipynb", output_path="out.ipynb")
    record.finish_record(nb, Failure("stopped", "RunStopped", "The run was stopped (on_kill).", cell_index=0))
    errors = [o for o in nb.cells[-1].outputs if o.output_type == "error"]
    assert [(o.ename, o.evalue) for o in errors] == [("RunStopped", "The run was stopped (on_kill).")]
    assert "RunStopped: The run was stopped (on_kill)." in nb.cells[0].source  # the banner says why
    assert record.read_run(nb).failed_cell.evalue == "The run was stopped (on_kill)."


@pytest.mark.parametrize(
    ("piece", "expected"),
    [("manual__2024-01-01T00:00:00+00:00", "manual__2024-01-01T00:00:00+00:00"), ("../../etc", "_._.._etc"),
     ("..", "__"), (".hidden", "_hidden"), ("a/b\\c d", "a_b_c_d"), ("", "_")],
)
def test_safe_piece_cannot_escape(piece: str, expected: str) -> None:
    assert safe_piece(piece) == expected
    assert "/" not in safe_piece(piece) and safe_piece(piece) not in (".", "..")
