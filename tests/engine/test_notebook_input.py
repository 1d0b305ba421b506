"""Bad input notebooks fail with an error that names the notebook and the fix; output paths are made safe."""

from __future__ import annotations

import json

import nbformat
import pytest

from airflow_notebook_provider.engine import notebook as nbrec
from airflow_notebook_provider.engine.errors import NotebookInputError
from airflow_notebook_provider.engine.paths import attempt_variant, default_output, safe_piece


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


def test_error_banner_is_papermills() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("1/0")])
    nbrec.add_error_banner(nb, 1, 2)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [[nbrec.ERROR_MARKER_TAG], [], [nbrec.ERROR_MARKER_TAG], []]
    assert 'href="#papermill-error-cell"' in nb.cells[0].source and "In [2]" in nb.cells[0].source
    assert 'id="papermill-error-cell"' in nb.cells[2].source


@pytest.mark.parametrize(
    ("piece", "expected"),
    [("manual__2024-01-01T00:00:00+00:00", "manual__2024-01-01T00:00:00+00:00"), ("../../etc", "_._.._etc"),
     ("..", "__"), (".hidden", "_hidden"), ("a/b\\c d", "a_b_c_d"), ("", "_")],
)
def test_safe_piece_cannot_escape(piece: str, expected: str) -> None:
    assert safe_piece(piece) == expected
    assert "/" not in safe_piece(piece) and safe_piece(piece) not in (".", "..")


def test_default_output_layout() -> None:
    assert default_output("/o", dag_id="d", run_id="../..", task_id="t", map_index=-1, try_number=2) == "/o/d/_._../t/attempt-2.ipynb"
    assert default_output("s3://b/p/", dag_id="d", run_id="r", task_id="t", map_index=3, try_number=1) == "s3://b/p/d/r/t/map-3/attempt-1.ipynb"


def test_attempt_variant() -> None:
    assert attempt_variant("s3://b/x/report.ipynb", 2) == "s3://b/x/report.attempt-2.ipynb"
    assert attempt_variant("/x/report.ipynb", 2, 1) == "/x/report.attempt-2-1.ipynb"
    assert attempt_variant("report", 3) == "report.attempt-3"
