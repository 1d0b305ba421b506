"""A notebook in its own Python environment (``PythonEnvironment``), on a REAL virtualenv built once for this module.

The virtualenv gets ipykernel from the package index (pinned to the worker's versions, so pip's cache serves it),
this project with ``--no-deps`` (for ``record``: no Airflow, no engine dependencies), a package the worker does not
have, and one kernelspec of its own. Building it takes some seconds; with ``CI`` set, a package index that cannot be
reached fails the tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_notebook_provider.engine import Execution, ExecutionSettings, RunResult, execute_notebook
from airflow_notebook_provider.engine.kernels.environments import PythonEnvironment
from airflow_notebook_provider.engine.storage import write_atomic
from airflow_notebook_provider.notebook.errors import NotebookInputError
from airflow_notebook_provider.results import read_results
from tests.helpers import code_cells, kernel_processes, read_nb, stream_text

REPO = Path(__file__).resolve().parents[2]
ENV_ONLY = "anp_env_only_pkg"  # installed in the virtualenv only
ENV_KERNEL = "env-kernel"  # a kernelspec installed in the virtualenv only
PIP_TIMEOUT = 900
# What pip says when it cannot reach the package index (as opposed to a package that fails to build).
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Connection refused|ConnectTimeoutError|Read timed out|"
    r"ProxyError|Could not fetch URL|from versions: none",
)


@dataclass(frozen=True)
class Venv:
    python: str
    prefix: Path


def _pip(python: Path, *args: str) -> None:
    """``pip install`` in the virtualenv; skip if the index is unreachable (fail instead under ``CI``)."""
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out, code = f"{exc.stdout or ''}{exc.stderr or ''}timed out after {PIP_TIMEOUT} s", None
    else:
        if proc.returncode == 0:
            return
        out, code = proc.stdout + proc.stderr, proc.returncode
    tail = "\n".join(out.strip().splitlines()[-15:])
    message = f"Building the test virtualenv failed: {' '.join(cmd)} (exit {code}):\n{tail}"
    if (code is None or _UNREACHABLE.search(out)) and not os.environ.get("CI"):
        pytest.skip(f"package index unreachable; {message}")
    pytest.fail(message)


def _run(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.fixture(scope="module")
def venv() -> Iterator[Venv]:
    """A virtualenv with ipykernel (the worker's versions), this project (``--no-deps``), ``ENV_ONLY`` and the
    ``ENV_KERNEL`` kernelspec; removed afterwards (it weighs over 100 MB)."""
    assert importlib.util.find_spec(ENV_ONLY) is None, f"the worker must not have {ENV_ONLY}"
    root = Path(tempfile.mkdtemp(prefix="anp-pyenv-"))
    try:
        env = root / "venv"
        _run(sys.executable, "-m", "venv", env)
        python = env / "bin" / "python"
        # The worker's versions (pip's cache or the local index holds them): a constraints file, not requirements.
        freeze = _run(sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check")
        pins = root / "worker-pins.txt"
        pins.write_text("\n".join(line for line in freeze.splitlines() if "==" in line and not line.startswith("-")))
        # A package the worker does not have: a minimal pyproject.toml and one module.
        pkg = root / "env-only-pkg"
        pkg.mkdir()
        (pkg / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{ENV_ONLY.replace("_", "-")}"\nversion = "1.0"\n\n'
            f'[tool.setuptools]\npy-modules = ["{ENV_ONLY}"]\n'
        )
        (pkg / f"{ENV_ONLY}.py").write_text("VALUE = 21\n")
        _pip(python, "-c", str(pins), "ipykernel", str(pkg))
        # This project without its dependencies, from a copy: pip's in-tree build would write build/ and
        # *.egg-info into the working tree.
        project = root / "project"
        shutil.copytree(REPO / "airflow_notebook_provider", project / "airflow_notebook_provider",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, project / name)
        _pip(python, "--no-deps", str(project))
        # A kernelspec of the environment's own, written as ipykernel's wheel writes its python3 one: a bare
        # `python` (which jupyter_client alone would run as the worker's interpreter) and a `{prefix}` argument.
        kernel_dir = env / "share" / "jupyter" / "kernels" / ENV_KERNEL
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps({
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}", "--AnpTest.prefix={prefix}"],
            "display_name": "Env kernel", "language": "python", "env": {"ANP_FROM_KERNELSPEC": "yes"},
        }))
        yield Venv(str(python), env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def bare_venv() -> Iterator[str]:
    """A virtualenv without pip, hence without ipykernel."""
    root = Path(tempfile.mkdtemp(prefix="anp-bare-"))
    try:
        _run(sys.executable, "-m", "venv", "--without-pip", root / "venv")
        yield str(root / "venv" / "bin" / "python")
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Saves:
    """The ``save`` callback, counting writes (none means the run failed before anything was written)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.count = 0

    def __call__(self, data: bytes) -> None:
        self.count += 1
        write_atomic(self.out, data)


def run(path: Path, out: Path, python: str, **settings: object) -> tuple[RunResult, Saves]:
    saves = Saves(out)
    result = execute_notebook(path.read_bytes(), input_path=str(path), output_path=str(out), save=saves,
                              settings=ExecutionSettings(kernels=PythonEnvironment(python), **settings))
    return result, saves


def test_notebook_runs_in_its_own_environment(venv: Venv, make_notebook, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's own environment, which must not reach the kernel's path.
    worker_site = os.path.dirname(os.path.dirname(pytest.__file__))
    monkeypatch.setenv("PYTHONPATH", worker_site)
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    nb = make_notebook(
        "#parameters\nfactor = 1",
        f"import importlib.util, os, sys\nimport {ENV_ONLY}\nprint(sys.executable)\n"
        "print(importlib.util.find_spec('airflow') is None, os.environ.get('PYTHONPATH'), os.environ.get('VIRTUAL_ENV'))",
        f"import airflow_notebook_provider\nfrom airflow_notebook_provider import record\n"
        f"record('answer', {ENV_ONLY}.VALUE * factor)\nprint(airflow_notebook_provider.__file__)",
    )
    out = tmp_path / "out.ipynb"
    saves = Saves(out)
    result = execute_notebook(nb.read_bytes(), input_path=str(nb), output_path=str(out), save=saves,
                              parameters={"factor": 2},
                              settings=ExecutionSettings(kernels=PythonEnvironment(venv.python)))
    cells = code_cells(read_nb(out))
    executable, isolation = stream_text(cells[2]).splitlines()
    assert executable == venv.python  # the virtualenv's interpreter, not the worker's
    assert isolation == "True None None"  # no Airflow there; the worker's PYTHONPATH and VIRTUAL_ENV dropped
    assert stream_text(cells[3]).strip().startswith(str(venv.prefix))  # record came from the virtualenv's copy
    assert read_results(read_nb(out)) == read_results(result.nb) == {"answer": 42}
    assert read_nb(out)["metadata"]["kernelspec"]["name"] == "python3"
    assert saves.count >= 2  # first and final writes
    assert not kernel_processes()


def test_kernelspec_of_the_environment_started_early(venv: Venv, make_notebook, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """``kernel_name`` picks a kernelspec installed in the environment (its argv and env); the operator's path,
    ``Execution`` with the kernel started while the notebook is fetched, takes that kernel."""
    nb = make_notebook("import os, sys\nprint(sys.executable, os.environ.get('ANP_FROM_KERNELSPEC'))\nprint(sys.argv)")
    out = tmp_path / "out.ipynb"
    settings = ExecutionSettings(kernels=PythonEnvironment(venv.python), kernel_name=ENV_KERNEL)
    caplog.set_level(logging.INFO)
    with Execution(str(nb), settings=settings, log=logging.getLogger("test.env.early")) as execution:
        result = execution.run(nb.read_bytes(), str(out), save=Saves(out))
    executable_and_env, argv = stream_text(code_cells(read_nb(out))[0]).splitlines()
    assert executable_and_env == f"{venv.python} yes"  # the spec's env; `python` is the environment's
    assert f"--AnpTest.prefix={venv.prefix}'" in argv  # `{prefix}`: the environment's, not the worker's
    assert "--HistoryManager.hist_file=:memory:" in argv  # as for the worker's own ipykernel
    assert result.nb.metadata["kernelspec"] == {"name": ENV_KERNEL, "display_name": "Env kernel", "language": "python"}
    assert any("was started early" in r.getMessage() for r in caplog.records)
    assert not kernel_processes()


@pytest.mark.parametrize("early", [False, True], ids=["run", "early-kernel"])
def test_missing_interpreter_fails_before_any_cell(make_notebook, tmp_path: Path, early: bool) -> None:
    python = str(tmp_path / "no-such-env" / "bin" / "python")
    nb = make_notebook("print('never runs')")
    out = tmp_path / "out.ipynb"
    saves = Saves(out)
    settings = ExecutionSettings(kernels=PythonEnvironment(python))
    with pytest.raises(NotebookInputError) as err:
        with Execution(str(nb), settings=settings, early_kernel=early) as execution:
            execution.run(nb.read_bytes(), str(out), save=saves)
    message = str(err.value)
    assert f"Python interpreter {python} does not exist" in message
    assert f"`{python} -m pip install ipykernel`" in message
    assert saves.count == 0 and not out.exists()
    assert not kernel_processes()


@pytest.mark.parametrize("early", [False, True], ids=["run", "early-kernel"])
def test_interpreter_without_ipykernel_fails_before_any_cell(bare_venv: str, make_notebook, tmp_path: Path,
                                                             early: bool) -> None:
    nb = make_notebook("print('never runs')")
    out = tmp_path / "out.ipynb"
    saves = Saves(out)
    settings = ExecutionSettings(kernels=PythonEnvironment(bare_venv))
    with pytest.raises(NotebookInputError) as err:
        with Execution(str(nb), settings=settings, early_kernel=early) as execution:
            execution.run(nb.read_bytes(), str(out), save=saves)
    message = str(err.value)
    assert f"Python interpreter {bare_venv} cannot run a notebook kernel" in message
    assert "No module named 'ipykernel'" in message
    assert f"`{bare_venv} -m pip install ipykernel`" in message
    assert f"`{bare_venv} -m ensurepip`" in message  # this one has no pip
    assert saves.count == 0 and not out.exists()
    assert not kernel_processes()


def test_kernel_name_absent_from_the_environment_lists_its_kernels(venv: Venv, make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("print('never runs')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookInputError) as err:
        run(nb, out, venv.python, kernel_name="no-such-kernel")
    message = str(err.value)
    assert f"Kernel 'no-such-kernel' (asked for by `kernel_name`) is not installed in the Python environment of " \
           f"{venv.python}" in message
    assert f"it has {ENV_KERNEL}, python3)" in message  # ENV_KERNEL exists in the environment only
    assert f"`{venv.python} -m ipykernel install --sys-prefix --name no-such-kernel`" in message
    assert not out.exists()
    assert not kernel_processes()


def test_operator_python_argument_and_a_downstream_task(venv: Venv, airflow_db, make_notebook) -> None:
    """What a user declares: ``NotebookOperator(python=...)``; the value the notebook records in its own
    environment is read by the next task from XCom."""
    import pendulum
    from airflow.sdk import DAG, task

    from airflow_notebook_provider.operators.notebook import NotebookOperator
    from tests.helpers import run_dag

    nb = make_notebook("#parameters\nfactor = 1",
                       f"import {ENV_ONLY}\nfrom airflow_notebook_provider import record\n"
                       f"record('answer', {ENV_ONLY}.VALUE * factor)")
    with DAG(dag_id="t_python_env", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        produce = NotebookOperator(task_id="produce", notebook=str(nb), parameters={"factor": 2},
                                   python="{{ params.python }}", params={"python": venv.python})

        @task
        def consume(ti=None) -> int:
            return int(ti.xcom_pull(task_ids="produce", key="answer")) + 1

        produce >> consume()
    res = run_dag(dag)
    assert res["produce"].state == "success", res["produce"]
    assert res["consume"].xcom["return_value"] == 43  # 21 * 2 in the notebook, then + 1 downstream
    assert not kernel_processes()
