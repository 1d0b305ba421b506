"""Text notebooks (jupytext): a ``.py`` (percent and light), ``.md`` (jupytext Markdown and MyST), ``.sh``, ``.R`` and
``.jl`` notebook run through the operator (``dag.test()``, real kernels: python3, bash_kernel, Debian's IRkernel) and
through the ``airflow-notebook`` command, into an ``.ipynb`` output with papermill's run record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pendulum
import pytest
from airflow.sdk import DAG
from jupyter_client.kernelspec import KernelSpecManager

from airflow_notebook_provider.operators.notebook import NotebookOperator
from airflow_notebook_provider.params import notebook_params
from tests.helpers import cli, code_cells, read_nb, run_dag, stream_text

START = pendulum.datetime(2024, 1, 1, tz="UTC")

PERCENT = '# %% tags=["parameters"]\nn = 1\n\n# %%\nprint("n is", n * 2)\n'
LIGHT = '# + tags=["parameters"]\nn = 1\n# -\n\nprint("n is", n * 2)\n'
MARKDOWN = ('# A report\n\nText between the cells.\n\n```python tags=["parameters"]\nn = 1\n```\n\n'
            '```python\nprint("n is", n * 2)\n```\n')
BASH = '# %% tags=["parameters"]\nn=1\n\n# %%\necho "n is $((n * 2))"\n'
R = '# %% tags=["parameters"]\nn <- 1\n\n# %%\ncat("n is", n * 2, "\\n")\n'
JULIA = '# %% tags=["parameters"]\nn = 1\n\n# %%\nprintln("n is ", n * 2)\n'


def myst() -> str:
    """A MyST notebook as jupytext writes it (its YAML header names the format and the kernel)."""
    params = nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# MyST"), params,
                                         nbformat.v4.new_code_cell('print("n is", n * 2)')],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    text: str = jupytext.writes(nb, fmt="md:myst")
    assert "format_name: myst" in text and "{code-cell}" in text
    return text


def julia_kernel() -> str | None:
    return next((name for name in KernelSpecManager().find_kernel_specs() if name.startswith("julia")), None)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-notebooks")
    for name, text in {"percent.py": PERCENT, "light.py": LIGHT, "report.md": MARKDOWN, "myst.md": myst(),
                       "count.sh": BASH, "count.R": R, "count.jl": JULIA}.items():
        (root / name).write_text(text)
    return root


def injected_after_parameters(out: dict[str, Any]) -> bool:
    tags = [c.get("metadata", {}).get("tags", []) for c in out["cells"]]
    at = next(i for i, t in enumerate(tags) if "parameters" in t)
    return "injected-parameters" in tags[at + 1]


def test_text_notebooks_run_as_tasks(airflow_db: Path, folder: Path, capfd: pytest.CaptureFixture[str]) -> None:
    julia = julia_kernel()
    with DAG(dag_id="t_text_notebooks", schedule=None, start_date=START) as dag:
        for task_id, name in [("py_percent", "percent.py"), ("py_light", "light.py"), ("markdown", "report.md"),
                              ("myst", "myst.md"), ("bash", "count.sh"), ("r", "count.R"), ("julia", "count.jl")]:
            NotebookOperator(task_id=task_id, notebook=str(folder / name), parameters={"n": 21},
                             kernel_name=julia if task_id == "julia" and julia else None)
        NotebookOperator(task_id="typo", notebook=str(folder / "percent.py"), parameters={"m": 1},
                         unknown_parameters="fail")
    res = run_dag(dag, logical_date=START)
    for task_id in ("py_percent", "py_light", "markdown", "myst", "bash", "r"):
        task = res[task_id]
        assert task.state == "success", task_id
        output = task.xcom["return_value"]
        assert output.endswith("/attempt-1.ipynb"), output  # an .ipynb, whatever the input's format
        out = read_nb(output)
        assert injected_after_parameters(out), task_id
        assert stream_text(code_cells(out)[-1]).split() == ["n", "is", "42"], task_id
        assert out["metadata"]["papermill"]["parameters"] == {"n": 21}
        assert out["metadata"]["papermill"]["input_path"] == str(folder / Path(out["metadata"]["papermill"]["input_path"]).name)
        nbformat.validate(nbformat.reads(json.dumps(out), as_version=4))
    assert read_nb(res["r"].xcom["return_value"])["metadata"]["kernelspec"]["name"] == "ir"  # by its extension
    assert read_nb(res["bash"].xcom["return_value"])["metadata"]["kernelspec"]["name"] == "bash"
    first = read_nb(res["markdown"].xcom["return_value"])["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# A report")
    text = "".join(capfd.readouterr())
    if julia:
        assert res["julia"].state == "success"
    else:  # no Julia kernel here: the error names the kernel and the fix
        assert res["julia"].state == "failed"
        assert "Kernel 'julia' (asked for by the notebook) is not installed where the task runs" in text
    assert res["typo"].state == "failed"
    assert "'m'" in text and "percent.py" in text  # unknown_parameters="fail" works on a text notebook


def test_notebook_params_of_a_text_notebook(folder: Path) -> None:
    params = notebook_params(folder / "count.R")
    assert params["n"].value == 1 and params["n"].schema["type"] == "number"
    assert notebook_params(folder / "light.py")["n"].schema["type"] == "integer"


def test_cli_run_params_pull_and_diff(folder: Path, tmp_path: Path) -> None:
    nb = tmp_path / "percent.py"
    nb.write_text(PERCENT)
    params = cli("params", str(nb), "--json")
    assert params.returncode == 0, params.stderr
    assert [p["name"] for p in json.loads(params.stdout)["parameters"]] == ["n"]
    first = cli("run", str(nb), "-p", "n", "5")
    assert first.returncode == 0, first.stderr
    output = tmp_path / "percent.out.ipynb"
    assert first.stdout.strip() == str(output)
    out = read_nb(output)
    assert injected_after_parameters(out) and stream_text(code_cells(out)[-1]) == "n is 10\n"
    pulled = cli("pull", str(output), "--format", "py:percent")
    assert pulled.returncode == 0, pulled.stderr
    debug = tmp_path / "percent.out.debug.py"
    text = debug.read_text()
    assert f"Debug copy:      {debug}" in pulled.stdout
    assert '# %% tags=["injected-parameters"]\n# Parameters\nn = 5\n' in text and "papermill" not in text
    assert cli("pull", str(output), "--format", "input", "-o", str(tmp_path / "again")).returncode == 0
    assert (tmp_path / "again" / "percent.out.debug.py").read_text() == text  # the input's own format
    rerun = cli("rerun", str(output), "--yes")  # the recorded input is the .py, run again with n=5
    assert rerun.returncode == 0, rerun.stderr
    assert f"notebook    {nb} (recorded in {output}; unchanged since that run)" in rerun.stdout + rerun.stderr
    assert stream_text(code_cells(read_nb(tmp_path / "percent.out.rerun.ipynb"))[-1]) == "n is 10\n"
    second = cli("run", str(nb), "-p", "n", "6", "-o", str(tmp_path / "six.ipynb"))
    assert second.returncode == 0, second.stderr
    diff = cli("diff", str(output), str(tmp_path / "six.ipynb"), "--json")
    assert diff.returncode == 1
    assert [p["name"] for p in json.loads(diff.stdout)["parameters"]] == ["n"]
    bad = cli("pull", str(output), "--format", "nope:nothing")
    assert bad.returncode == 2 and "is not a jupytext format" in bad.stderr


def test_cli_runs_markdown_and_r(folder: Path, tmp_path: Path) -> None:
    for name in ("myst.md", "count.R"):
        result = cli("run", str(folder / name), "-p", "n", "4", "-o", str(tmp_path / f"{name}.ipynb"))
        assert result.returncode == 0, result.stderr
        assert stream_text(code_cells(read_nb(tmp_path / f"{name}.ipynb"))[-1]).split() == ["n", "is", "8"]


def test_missing_jupytext_names_the_extra(folder: Path) -> None:
    # jupytext is installed here; a machine without it is simulated by blocking its import in a fresh process
    # (``sys.modules[name] = None`` makes ``import`` raise ImportError): that fault cannot be caused otherwise.
    code = ("import sys; sys.modules['jupytext'] = None\n"
            "from airflow_notebook_provider.cli import main\n"
            f"sys.exit(main(['params', {str(folder / 'percent.py')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'needs jupytext' in result.stderr and 'pip install "airflow-notebook-provider[text]"' in result.stderr
