"""Parameters are data, never code: names are checked, values round-trip exactly through the injected cell."""

from __future__ import annotations

import ast
import datetime as dt
import decimal
import math

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.parameters import INJECTED_TAG, inject, prepare, to_json
from airflow_notebook_provider.notebook.translators import PythonTranslator, translator_for


def evaluate_injected(source: str) -> dict[str, object]:
    """What the kernel would see: each assignment's right-hand side, evaluated as a literal only."""
    tree = ast.parse(source)
    out: dict[str, object] = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign), ast.dump(node)  # nothing but assignments: no calls, no imports
        out[node.targets[0].id] = _literal(node.value)
    return out


def _literal(node: ast.expr) -> object:
    # float('nan') / float('inf') are the one call the translator writes; anything else is a literal.
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name) and node.func.id == "float" and len(node.args) == 1
        return float(ast.literal_eval(node.args[0]))
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    return ast.literal_eval(node)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z").filter(lambda s: s.isidentifier() and not __import__("keyword").iskeyword(s))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text())
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=6))
def test_any_values_round_trip_through_the_injected_cell(params: dict[str, object]) -> None:
    source = PythonTranslator().codify(prepare(params))
    back = evaluate_injected(source)
    assert list(back) == list(params)
    for name, value in params.items():
        assert same(back[name], value), (name, value, back[name])


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_hostile_strings_stay_strings(text: str) -> None:
    for hostile in (text, "'; import os; os.system('x') #", f'"""\n{text}\n"""', "\\" + text + "\\"):
        source = PythonTranslator().codify({"p": hostile})
        assert evaluate_injected(source) == {"p": hostile}


def test_dates_become_iso_strings_and_tuples_stay_tuples() -> None:
    params = prepare({"d": dt.date(2024, 1, 2), "ts": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "t": (1,)})
    assert params == {"d": "2024-01-02", "ts": "2024-01-02T03:04:05+00:00", "t": (1,)}
    assert evaluate_injected(PythonTranslator().codify(params))["t"] == (1,)


@pytest.mark.parametrize("name", ["1abc", "class", "with space", "a-b", "", "None", 3])
def test_invalid_names_are_refused_with_the_fix(name: object) -> None:
    with pytest.raises(ParameterError, match="not a valid Python identifier"):
        prepare({name: 1})


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"price": decimal.Decimal("1.5")}, "'price'"),
        ({"rows": [1, {"x": object()}]}, r"rows\[1\]\['x'\]"),
        ({"s": {1, 2}}, "'s'"),
        ({"d": {(1, 2): "tuple key"}}, "dict key"),
    ],
)
def test_unsupported_values_name_the_parameter(params: dict[str, object], where: str) -> None:
    with pytest.raises(ParameterError, match=where):
        prepare(params)


def test_parameters_must_be_a_mapping() -> None:
    with pytest.raises(ParameterError, match="must be a dict"):
        prepare(["a", 1])  # type: ignore[arg-type]


def test_unknown_language_names_it_and_the_argument_to_set() -> None:
    with pytest.raises(ParameterError, match="'cobol'.*Set `language=`"):
        translator_for("cobol")


def test_to_json_keeps_metadata_valid() -> None:
    assert to_json({"a": (1, 2), "n": float("nan"), "i": float("-inf")}) == {"a": [1, 2], "n": "nan", "i": "-inf"}


def _nb(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


def _tagged(src: str, tag: str) -> nbformat.NotebookNode:
    c = nbformat.v4.new_code_cell(src)
    c.metadata["tags"] = [tag]
    return c


def test_injected_right_after_the_parameters_cell() -> None:
    nb = _nb(nbformat.v4.new_code_cell("import x"), _tagged("a = 1", "parameters"), nbformat.v4.new_code_cell("a"))
    assert inject(nb, {"a": 2}) == 2
    assert nb.cells[2].metadata.tags == [INJECTED_TAG]
    assert nb.cells[2].source == "# Parameters\na = 2\n"
    assert [c.source for c in (nb.cells[0], nb.cells[1], nb.cells[3])] == ["import x", "a = 1", "a"]


def test_earlier_injected_cell_is_replaced_not_duplicated() -> None:
    nb = _nb(_tagged("a = 1", "parameters"), _tagged("# Parameters\na = 2\n", INJECTED_TAG), nbformat.v4.new_code_cell("a"))
    inject(nb, {"a": 3})
    assert [c.source for c in nb.cells] == ["a = 1", "# Parameters\na = 3\n", "a"]


def test_without_parameters_cell_injects_at_top_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    nb = _nb(nbformat.v4.new_code_cell("print(a)"))
    assert inject(nb, {"a": 1}) == 0
    assert nb.cells[0].metadata.tags == [INJECTED_TAG]
    assert "no cell tagged 'parameters'" in caplog.text


def test_no_parameters_no_cell() -> None:
    nb = _nb(_tagged("a = 1", "parameters"))
    assert inject(nb, {}) is None
    assert len(nb.cells) == 1
