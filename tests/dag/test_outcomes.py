"""The notebook decides the task's outcome (``results.skip``, ``results.fail``), and ``retry_on`` decides which
failures are retried: through ``dag.test()`` on the real metadata DB with real kernels, checking what a DAG author
looks at (task states and tries, downstream tasks, the output notebooks and their banners)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_notebook_provider.notebook.errors import NotebookConfigError
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import code_cells, read_nb, run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")
SKIP = "from airflow_notebook_provider import results\nresults.skip('no files for 2026-12-06')"
# A bare `except Exception` in the notebook does not swallow the outcome.
FAIL = ("from airflow_notebook_provider import results\ntry:\n    results.fail('input is corrupt', retry=False)\n"
        "except Exception:\n    pass")


def attempt(output_base: Path, dag_id: str, run_id: str, n: int, task_id: str = "nb") -> dict[str, Any]:
    return read_nb(output_base / dag_id / run_id / task_id / f"attempt-{n}.ipynb")


def banner(nb: dict[str, Any]) -> str:
    first = nb["cells"][0]
    assert "papermill-error-cell-tag" in first["metadata"].get("tags", []), first
    return "".join(first["source"])


def test_skip_marks_the_task_skipped_and_downstream_follows_its_trigger_rule(airflow_db, make_notebook,
                                                                            output_base: Path) -> None:
    nb = make_notebook("import airflow_notebook_provider as anp\nanp.record('seen', 3)", SKIP, "print('later')")
    with DAG(dag_id="t_outcome_skip", schedule=None, start_date=START, catchup=False) as dag:
        task = NotebookOperator(task_id="nb", notebook=str(nb), retries=2, retry_delay=dt.timedelta(0))
        task >> EmptyOperator(task_id="after")
        task >> EmptyOperator(task_id="after_all_done", trigger_rule="all_done")
    res = run_dag(dag)
    assert (res["nb"].state, res["nb"].try_number) == ("skipped", 1)
    assert res["after"].state == "skipped"
    assert res["after_all_done"].state == "success"
    assert res["nb"].xcom["seen"] == 3  # what the notebook recorded before it skipped still reaches XCom
    out = attempt(output_base, "t_outcome_skip", res["__run__"].xcom["run_id"], 1)
    assert "The notebook skipped this task at cell 2 (In [2]): no files for 2026-12-06" in banner(out)
    cells = code_cells(out)
    assert [c["metadata"]["papermill"]["status"] for c in cells] == ["completed", "completed", "pending"]
    assert cells[2]["execution_count"] is None and cells[2]["outputs"] == []
    assert not any(o["output_type"] == "error" for o in cells[1]["outputs"])  # the skip is not an error
    assert out["metadata"]["airflow_notebook"]["outcome"] == {"state": "skipped", "reason": "no files for 2026-12-06",
                                                              "cell": 2}
    assert out["metadata"]["papermill"]["exception"] is None


def test_fail_without_retry_ends_after_one_try(airflow_db, make_notebook, output_base: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    nb = make_notebook(FAIL, "print('later')")
    with DAG(dag_id="t_outcome_fail", schedule=None, start_date=START, catchup=False) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), retries=2, retry_delay=dt.timedelta(0))
    res = run_dag(dag)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)
    out = attempt(output_base, "t_outcome_fail", res["__run__"].xcom["run_id"], 1)
    text = banner(out)
    assert "The notebook failed the task: input is corrupt" in text and "retry=False: not retried" in text
    assert out["metadata"]["airflow_notebook"]["outcome"]["kind"] == "error"
    assert code_cells(out)[1]["metadata"]["papermill"]["status"] == "pending"
    assert "The notebook failed the task with retry=False: not retried" in capfd.readouterr().out  # the task log


def test_retry_on_an_error_is_not_retried_a_dead_kernel_is(airflow_db, make_notebook, output_base: Path) -> None:
    error = make_notebook("raise ValueError('a bug in the code')", name="error.ipynb")
    dies = make_notebook("import os\nos.kill(os.getpid(), 9)", name="dies.ipynb")
    with DAG(dag_id="t_retry_on", schedule=None, start_date=START, catchup=False) as dag:
        for task_id, nb in (("error", error), ("dies", dies)):
            NotebookOperator(task_id=task_id, notebook=str(nb), retries=2, retry_delay=dt.timedelta(0),
                             retry_on=["dead_kernel"])
    res = run_dag(dag)
    run_id = res["__run__"].xcom["run_id"]
    assert (res["error"].state, res["error"].try_number) == ("failed", 1)
    assert "`error` is not in retry_on: not retried" in banner(attempt(output_base, "t_retry_on", run_id, 1, "error"))
    assert (res["dies"].state, res["dies"].try_number) == ("failed", 3)
    for n in (1, 2, 3):  # each attempt keeps its own output notebook
        out = attempt(output_base, "t_retry_on", run_id, n, "dies")
        assert out["metadata"]["airflow"]["try_number"] == n
        assert out["metadata"]["airflow_notebook"]["outcome"]["kind"] == "dead_kernel"
        assert "not retried" not in banner(out)


def test_retry_on_names_are_checked_when_the_dag_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(NotebookConfigError, match=r"'dead_kernal', which is not a failure kind; the kinds are: "
                                                  r"error, timeout, dead_kernel, out_of_memory, startup, storage, stopped"):
        NotebookOperator(task_id="nb", notebook="x.ipynb", retry_on=["dead_kernal"])
    NotebookOperator(task_id="nb2", notebook="x.ipynb", retry_on="{{ params.kinds }}")  # checked once rendered


# -- out of memory: a kernel in a memory cgroup the test makes ---------------------------------------------------


def _memory_cgroup(limit: int) -> tuple[Path, str] | str:
    """A new memory cgroup under this process's own, limited to ``limit`` bytes: (folder, file to join it by), or
    why none can be made here."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError as exc:
        return f"/proc/self/cgroup cannot be read ({exc})"
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2: the memory controller must be enabled for children of our cgroup
            for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                parent = root / rel.lstrip("/")
                try:
                    enabled = (parent / "cgroup.subtree_control").read_text().split()
                except OSError:
                    continue
                if "memory" in enabled and os.access(parent, os.W_OK):
                    return _make(parent, "memory.max", limit)
        elif "memory" in controllers.split(","):
            parent = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
            if os.access(parent, os.W_OK):
                return _make(parent, "memory.limit_in_bytes", limit)
    return "no writable memory cgroup here (cgroup v2 with the memory controller delegated, or v1's memory controller)"


def _make(parent: Path, limit_file: str, limit: int) -> tuple[Path, str] | str:
    folder = parent / f"anp-oom-test-{os.getpid()}"
    try:
        folder.mkdir(exist_ok=True)
        (folder / limit_file).write_text(str(limit))
        swap = folder / ("memory.swap.max" if limit_file == "memory.max" else "memory.memsw.limit_in_bytes")
        if swap.exists():
            try:
                swap.write_text("0" if limit_file == "memory.max" else str(limit))
            except OSError:
                pass
    except OSError as exc:
        return f"cannot make a memory cgroup under {parent} ({exc})"
    return folder, "cgroup.procs"


@pytest.fixture
def python_in_memory_cgroup(tmp_path: Path) -> Iterator[Path]:
    """An interpreter (a wrapper of this virtualenv's python) whose processes join a 256 MiB memory cgroup first: a
    kernel started with it (``python=``) runs under that limit, as in a container with a memory limit."""
    made = _memory_cgroup(256 << 20)
    if isinstance(made, str):
        pytest.skip(f"cannot limit a kernel's memory: {made}")
    folder, procs = made
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\necho $$ > {folder / procs} && exec {Path(os.sys.executable).parent / "python"} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    try:
        yield wrapper
    finally:
        try:
            folder.rmdir()
        except OSError:
            pass


def test_a_kernel_killed_for_memory_is_out_of_memory_and_not_retried_unless_in_retry_on(
    airflow_db, make_notebook, output_base: Path, python_in_memory_cgroup: Path
) -> None:
    nb = make_notebook("x = 1", "hog = b'x' * (1 << 30)  # 1 GiB under a 256 MiB limit", "print('later')")
    with DAG(dag_id="t_oom", schedule=None, start_date=START, catchup=False) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), python=str(python_in_memory_cgroup), retries=2,
                         retry_delay=dt.timedelta(0), retry_on=["dead_kernel", "timeout"])
    res = run_dag(dag)
    assert (res["nb"].state, res["nb"].try_number) == ("failed", 1)
    out = attempt(output_base, "t_oom", res["__run__"].xcom["run_id"], 1)
    outcome = out["metadata"]["airflow_notebook"]["outcome"]
    assert (outcome["kind"], outcome["cell"], outcome["retryable"]) == ("out_of_memory", 2, False)
    assert "killed by the out-of-memory killer" in outcome["reason"] and "MiB" in outcome["reason"]
    assert "`out_of_memory` is not in retry_on: not retried" in banner(out)

