"""Parameters are data, never code; default output locations never leave ``output_base``.

The fuzz checks the injected cell's syntax tree, not only its value: every statement assigns a literal to a
name, and the only call is ``float('nan'|'inf'|'-inf')`` written by the translator, so no value can run code.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import nbformat
import pendulum
from airflow.sdk import DAG
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_notebook_provider.engine import prepare_parameters
from airflow_notebook_provider.notebook.parameters import INJECTED_TAG, inject
from airflow_notebook_provider.operators.notebook import NotebookOperator
from airflow_notebook_provider.task.outputs import TaskInstanceId, default_output
from tests.helpers import read_nb, run_dag

HOSTILE = [
    "'; import os; os.system('touch /tmp/pwned') #",
    '"""; __import__("os").system("id"); """',
    "\\'; exec('1/0') #",
    "{{ 7 * 7 }}", "${HOME}", "$(id)", "`id`", "%s%s%n", "\x00", "\r\n", "\u2028\u2029", "\ud800", "\\", "\\\\'",
    "__import__('os').system('id')", "lambda: 1", "#", "\n# comment\nx = 1", "\t", "é中😀",
]
names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,10}\Z").filter(lambda s: s.isidentifier() and not __import__("keyword").iskeyword(s))
strings = st.one_of(st.text(), st.sampled_from(HOSTILE), st.lists(st.sampled_from(HOSTILE), max_size=3).map("".join))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), strings)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(strings, st.integers(), st.booleans(), st.none()), inner, max_size=4),
    ),
    max_leaves=25,
)
LITERAL_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp, ast.USub, ast.UAdd, ast.Load)


def only_literals(tree: ast.Module) -> None:
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name), ast.dump(stmt)
        for node in ast.walk(stmt.value):
            if isinstance(node, ast.Call):
                assert isinstance(node.func, ast.Name) and node.func.id == "float" and not node.keywords
                assert [a.value for a in node.args if isinstance(a, ast.Constant)] in (["nan"], ["inf"], ["-inf"])
            elif isinstance(node, ast.Name):
                assert node.id == "float", ast.dump(node)
            else:
                assert isinstance(node, LITERAL_NODES), ast.dump(node)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(names, values, min_size=1, max_size=5))
def test_injected_cell_is_only_literals_and_evaluates_back(params: dict[str, object]) -> None:
    prepared = prepare_parameters(params)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    index = inject(nb, prepared)
    assert index == 1 and nb.cells[1].metadata["tags"] == [INJECTED_TAG]
    source = nb.cells[1].source
    only_literals(ast.parse(source))
    namespace: dict[str, object] = {}
    exec(compile(source, "<injected>", "exec"), {"__builtins__": {"float": float}}, namespace)  # shape checked above
    assert list(namespace) == list(prepared)
    for key, value in prepared.items():
        assert same(value, namespace[key]), (key, value, namespace[key])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.sampled_from(HOSTILE + ["..", "../..", "/", "./.", "%2e%2e", "..\\..", ".hidden"])),
       st.one_of(st.text(min_size=1), st.sampled_from(["..", "a/../../b", "/etc/passwd"])))
def test_default_output_never_leaves_output_base(run_id: str, task_id: str) -> None:
    base = "/srv/outputs"
    out = default_output(TaskInstanceId("dag", run_id, task_id), 1, base)
    rel = os.path.relpath(os.path.normpath(out), base)
    assert not rel.startswith(".."), out
    parts = rel.split(os.sep)
    assert len(parts) == 4 and parts[-1] == "attempt-1.ipynb", out
    assert not any(p.startswith(".") for p in parts), out


def test_hostile_parameters_in_a_real_kernel(airflow_db, make_notebook, tmp_path: Path, own_kernels) -> None:
    canary = Path("/tmp/pwned")
    existed = canary.exists()
    # Not "\ud800" here: Airflow cannot store a lone surrogate in a rendered field (the fuzz above covers it).
    hostile = [h for h in HOSTILE if h != "\ud800"]
    params = {f"p{i}": value for i, value in enumerate(hostile)}
    # No NaN/inf here: Airflow itself cannot store such a rendered field (RTIF upload fails before execute).
    params["nested"] = {"k'\"": [HOSTILE[:3], (1.5, -0.0, 10**40)], "": {None: True}}
    dump = tmp_path / "values.json"
    nb = make_notebook(
        "#parameters\n" + "\n".join(f"{k} = None" for k in params),
        "import json, math\n"
        "def enc(v):\n"
        "    if isinstance(v, float) and math.isnan(v): return 'NaN'\n"
        "    if isinstance(v, tuple): return {'tuple': [enc(x) for x in v]}\n"
        "    if isinstance(v, list): return [enc(x) for x in v]\n"
        "    if isinstance(v, dict): return [[repr(k), enc(x)] for k, x in v.items()]\n"
        "    return repr(v)\n"
        f"open({str(dump)!r}, 'w').write(json.dumps({{k: enc(globals()[k]) for k in {list(params)!r}}}))",
    )
    with DAG(dag_id="rel_hostile_params", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters=params)
    res = run_dag(dag)
    assert res["nb"].state == "success"
    got = json.loads(dump.read_text())
    # Strings are Jinja templates (templated field): "{{ 7 * 7 }}" renders once to "49" and Jinja drops one trailing
    # newline ("\r\n" -> ""). Every other value reaches the kernel exactly.
    rendered = {f"p{i}": repr(v) for i, v in enumerate(hostile)}
    rendered[f"p{hostile.index('{{ 7 * 7 }}')}"] = repr("49")
    rendered[f"p{hostile.index(chr(13) + chr(10))}"] = repr("")
    assert {k: v for k, v in got.items() if k != "nested"} == rendered
    assert got["nested"][0][1][1] == {"tuple": [repr(1.5), repr(-0.0), repr(10**40)]}
    assert canary.exists() == existed, "a parameter value ran as code"
    out = read_nb(res["nb"].xcom["output_notebook"])
    assert out["metadata"]["papermill"]["parameters"]["p0"] == HOSTILE[0]
    assert not own_kernels()
