"""A bash parameter cannot be a variable bash or bash_kernel treats specially: ``PS0``'s value is run before each
command by the interactive bash that bash_kernel drives, ``IFS`` re-splits every word, ``PS1`` hangs the kernel.

Through the public paths: a ``NotebookOperator`` task (``dag.test()``, the real bash_kernel) and the installed
``airflow-notebook`` command; a marker file shows whether the value ever ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG
from jupyter_client.kernelspec import KernelSpecManager

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators import translator_for
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag
from tests.languages.kernels import kernel

START = pendulum.datetime(2024, 1, 1, tz="UTC")
EXE = str(Path(sys.executable).with_name("airflow-notebook"))
BASH = {"name": "bash", "display_name": "Bash", "language": "bash"}
PS0_REFUSED = "bash treats PS0 specially: its value would be run before each command"


@pytest.fixture
def bash_notebook(make_notebook) -> Path:
    if "bash" not in KernelSpecManager().find_kernel_specs():
        next(kernel("bash"))  # skips (or fails in CI) with the reason
    return make_notebook("#parameters\nregion=eu", 'echo "region: $region"', "echo done", kernelspec=BASH)


def test_operator_refuses_a_ps0_parameter_before_anything_runs(airflow_db, bash_notebook: Path, tmp_path: Path,
                                                                capfd) -> None:
    marker = tmp_path / "xyz-marker"
    with DAG(dag_id="t_bash_ps0", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="ps0", notebook=str(bash_notebook), parameters={"PS0": f"$(touch {marker})"},
                         retries=2)
        NotebookOperator(task_id="ok", notebook=str(bash_notebook), parameters={"region": "us"})
    res = run_dag(dag)
    log = "".join(capfd.readouterr())
    assert not marker.exists(), "the PS0 parameter's value ran in the kernel's bash"
    assert (res["ps0"].state, res["ps0"].try_number) == ("failed", 1), log  # a config error: no retry
    assert "Parameter name 'PS0'" in log and PS0_REFUSED in log
    assert "rename the parameter" in log and "env PS0=" in log
    assert res["ok"].state == "success"  # the same notebook with an ordinary parameter runs


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def test_cli_run_refuses_a_ps0_parameter(bash_notebook: Path, tmp_path: Path) -> None:
    marker = tmp_path / "xyz-marker"
    out = tmp_path / "out.ipynb"
    proc = cli("run", str(bash_notebook), "-o", str(out), "-p", "PS0", f"$(touch {marker})")
    assert not marker.exists(), "the PS0 parameter's value ran in the kernel's bash"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Parameter name 'PS0'" in proc.stderr and PS0_REFUSED in proc.stderr
    assert not out.exists()

    # rerun of an output notebook whose record names the parameter: refused the same way, nothing runs.
    good = tmp_path / "good.ipynb"
    assert cli("run", str(bash_notebook), "-o", str(good), "-p", "region", "us").returncode == 0
    import nbformat

    nb = nbformat.read(str(good), as_version=4)
    nb.metadata["papermill"]["parameters"] = {"PS0": f"$(touch {marker})"}
    nbformat.write(nb, str(good))
    rerun = tmp_path / "rerun.ipynb"
    proc = cli("rerun", str(good), "-o", str(rerun), "--yes")
    assert not marker.exists()
    assert proc.returncode == 2 and PS0_REFUSED in proc.stderr, proc.stdout + proc.stderr
    assert not rerun.exists()


def test_every_variable_a_bare_interactive_bash_sets_is_refused() -> None:
    """The list is checked against bash itself: what ``bash -i`` defines with an empty environment (and no rc
    file) is refused, whatever bash version runs the tests."""
    names = subprocess.run(["bash", "--norc", "--noprofile", "-i", "-c", "compgen -v"], env={}, capture_output=True,
                           text=True, timeout=60, check=True).stdout.split()
    assert "PS1" in names and "BASH_VERSION" in names
    accepted = []
    for name in names:
        try:
            translator_for("bash").codify({name: "x"})
        except ParameterError:
            continue
        accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize(("name", "why"), [
    ("PS0", "its value would be run before each command"),
    ("PS4", "run before each command that `set -x` traces"),
    ("PROMPT_COMMAND", "run before each prompt"),
    ("BASH_ENV", "run by every bash"),
    ("ENV", "run by every"),
    ("FPATH", "functions"),
    ("IFS", "splits every word"),
    ("PATH", "which program"),
    ("PS1", "hangs the kernel"),
    ("PAGER", "bash_kernel"),
    ("UID", "read-only"),
    ("HISTFILE", "history"),
    ("HISTTIMEFORMAT", "history"),
    ("LC_ALL", "locale"),
    ("READLINE_LINE", "bash sets or reads"),
    ("COMP_WORDS", "bash sets or reads"),
    ("EPOCHSECONDS", "bash sets or reads"),
    ("_", "bash sets or reads"),
    ("histchars", "history"),
])
def test_refused_names_say_why_and_how(name: str, why: str) -> None:
    for language in ("bash", "sh"):
        with pytest.raises(ParameterError) as err:
            translator_for(language).codify({name: "x"})
        text = str(err.value)
        assert f"Parameter name {name!r}" in text and f"treats {name} specially" in text and why in text, text
        assert "rename the parameter" in text and f"env {name}=" in text, text
    # A secret parameter is a variable too.
    with pytest.raises(ParameterError, match=f"treats {name} specially"):
        translator_for("bash").codify({}, secret_env={name: "NOTEBOOK_SECRET_x"})


@pytest.mark.parametrize("name", ["region", "ps0", "Path", "histogram", "prefix", "display_id",
                                  "LANGUAGE_CODE", "COMPANY", "TERMS"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert f"{name}=$'x'" in translator_for("bash").codify({name: "x"})


def test_the_kernels_prompt_variables_are_what_bash_kernel_sets() -> None:
    """bash_kernel (the installed one) drives bash through PS1, PS2 and PROMPT_COMMAND and exports PAGER=cat:
    each of them is refused."""
    import bash_kernel.kernel

    source = Path(bash_kernel.kernel.__file__).read_text()
    for name in ("PS1", "PS2", "PROMPT_COMMAND", "PAGER"):
        assert f"{name}=" in source, name
        with pytest.raises(ParameterError, match=f"treats {name} specially"):
            translator_for("bash").codify({name: "x"})
