"""Notebook tasks under a real Airflow: api-server + scheduler + dag-processor, LocalExecutor (parallelism 4),
SQLite, in a temporary AIRFLOW_HOME on 127.0.0.1, started and stopped (by process group) by this module.

This is the only place where a notebook task runs in its own task process under a supervisor, the way
production runs it, so it is where a worker's SIGTERM (which Airflow's task runner turns into ``on_kill``) and a
SIGKILL of the task process are tested. The load test reports tasks per minute (``-s`` shows it; it is also
written to ``$RELIABILITY_REPORT`` when set).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from tests.corpus import CORPUS
from tests.helpers import free_port
from tests.processes import TAG_VAR, kill_group, leftover_temp_files, tagged_kernels, wait_for

pytestmark = [pytest.mark.load, pytest.mark.timeout(900)]

PY = Path(sys.executable)
AIRFLOW = PY.with_name("airflow")
LOAD_TASKS = [
    "HelloWorld.ipynb", "Factorials.ipynb", "Sleep1s.ipynb", "Unicode.ipynb",
    "Inline Image.ipynb", "SVG.ipynb", "update-display-id.ipynb",
]
LOAD_RUNS = 5  # 5 runs x (7 corpus notebooks + 1 parameterized one) + Parallel A and B = 42 tasks

DAGS = '''
from __future__ import annotations

import datetime as dt
import re

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator

CORPUS = {corpus!r}
WORK = {work!r}
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG("rel_parallel", schedule=None, start_date=START, is_paused_upon_creation=False) as parallel:
    for side in "AB":
        NotebookOperator(
            task_id=f"parallel_{{side.lower()}}",
            notebook=f"{{CORPUS}}/Parallel Execute {{side}}.ipynb",
            env={{"NBEXECUTE_TEST_PARALLEL_TMPDIR": "{{{{ dag_run.conf['shared'] }}}}"}},
            cell_timeout=60,
            priority_weight=100,
        )

with DAG("rel_load", schedule=None, start_date=START, is_paused_upon_creation=False, max_active_runs=16) as load:
    for name in {load_tasks!r}:
        NotebookOperator(task_id=re.sub(r"[^A-Za-z0-9_]", "_", name.removesuffix(".ipynb")),
                         notebook=f"{{CORPUS}}/{{name}}", cell_timeout=60)
    NotebookOperator(task_id="params", notebook=f"{{WORK}}/params.ipynb",
                     parameters={{"run_id": "{{{{ run_id }}}}", "n": 7, "nested": {{"ds": ["{{{{ dag.dag_id }}}}"]}}}})

with DAG("rel_paths", schedule=None, start_date=START, is_paused_upon_creation=False) as paths:
    NotebookOperator(task_id="hello", notebook=f"{{CORPUS}}/HelloWorld.ipynb")

with DAG("rel_signals", schedule=None, start_date=START, is_paused_upon_creation=False) as signals:
    NotebookOperator(task_id="sigterm", notebook=f"{{WORK}}/wait.ipynb", checkpoint_interval=1,
                     parameters={{"pid_file": f"{{WORK}}/sigterm.pid", "finish_on_try": 99}})
    NotebookOperator(task_id="sigkill", notebook=f"{{WORK}}/wait.ipynb", checkpoint_interval=1,
                     parameters={{"pid_file": f"{{WORK}}/sigkill.pid", "finish_on_try": 2, "try_number": "{{{{ ti.try_number }}}}"}},
                     retries=1, retry_delay=dt.timedelta(seconds=0))
    NotebookOperator(task_id="exec_timeout", notebook=f"{{WORK}}/wait.ipynb", checkpoint_interval=1,
                     parameters={{"pid_file": f"{{WORK}}/exec_timeout.pid", "finish_on_try": 99}},
                     execution_timeout=dt.timedelta(seconds=8))
'''

WAIT_NOTEBOOK = [
    "#parameters\npid_file = ''\nfinish_on_try = 1\ntry_number = 1",
    "import os, time\nprint('task process', os.getppid(), flush=True)",
    # Written after the first checkpoint had a chance to run, so a SIGKILL finds one in place.
    "time.sleep(1.5)\nif int(try_number) < int(finish_on_try):\n"
    "    open(pid_file + '.tmp-w', 'w').write(str(os.getppid()))\n    os.replace(pid_file + '.tmp-w', pid_file)\n"
    "    time.sleep(300)",
    "print('finished on try', try_number)",
]


@dataclass
class Stack:
    home: Path
    work: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_in: float = 0.0

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30)

    def query(self, sql: str, *args: object) -> list[tuple]:
        with self.db() as con:
            return con.execute(sql, args).fetchall()

    def airflow(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run([str(AIRFLOW), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, object] | None = None) -> None:
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf or {}))

    def task_states(self, dag_id: str) -> dict[tuple[str, str], tuple[str | None, int]]:
        rows = self.query("SELECT run_id, task_id, state, try_number FROM task_instance WHERE dag_id = ?", dag_id)
        return {(r, t): (s, n) for r, t, s, n in rows}

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (tail)\n" + p.read_text(errors="replace")[-4000:] for p in sorted(self.home.glob("*.out"))
        )


def _start(stack: Stack, name: str, *args: str) -> None:
    out = (stack.home / f"{name}.out").open("wb")
    stack.procs[name] = subprocess.Popen(
        [str(AIRFLOW), *args], env=stack.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="anp-stack-"))
    work = home / "work"
    for d in ("dags", "work", "tmp", "jupyter-runtime", "outputs"):
        (home / d).mkdir()
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        TAG_VAR: str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "reliability-suite-secret",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
        "AIRFLOW__NOTEBOOK__OUTPUT_BASE": str(home / "outputs"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        "TMPDIR": str(home / "tmp"),
        "PATH": f"{PY.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("AIRFLOW_CONN_MOTO_S3", None)
    stack = Stack(home, work, env)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    for src in WAIT_NOTEBOOK:
        cell = nbformat.v4.new_code_cell(src)
        if src.startswith("#parameters"):
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, str(work / "wait.ipynb"))
    params = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("#parameters\nrun_id = ''\nn = 0\nnested = {}"),
               nbformat.v4.new_code_cell("print(run_id, n * 6, nested['ds'][0])")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    params.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(params, str(work / "params.ipynb"))
    (home / "dags" / "reliability_dags.py").write_text(
        textwrap.dedent(DAGS.format(corpus=str(CORPUS), work=str(work), load_tasks=LOAD_TASKS))
    )
    stack.airflow("db", "migrate")
    try:
        _start(stack, "api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
        _start(stack, "dag-processor", "dag-processor")
        _start(stack, "scheduler", "scheduler")

        def parsed() -> bool:
            for name, proc in stack.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{stack.logs()}"
            try:
                rows = stack.query("SELECT count(*) FROM serialized_dag WHERE dag_id LIKE 'rel_%'")
            except sqlite3.OperationalError:
                return False
            return rows[0][0] == 4

        wait_for(parsed, 240, "the dag-processor to parse the reliability DAGs")
        wait_for(lambda: _answers(port), 120, "the api-server to answer")
        stack.started_in = time.monotonic() - t0
        yield stack
    finally:
        stop_all([proc for proc in stack.procs.values()], grace=30)
        if not os.environ.get("RELIABILITY_KEEP_HOME"):  # set it to read the servers' and tasks' logs afterwards
            shutil.rmtree(home, ignore_errors=True)


def stop_all(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every process group at once, SIGKILL what is left after ``grace`` seconds, reap the leaders."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        kill_group(proc.pid, grace=0)
        proc.wait(timeout=30)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _finished(states: dict[tuple[str, str], tuple[str | None, int]], expected: int) -> bool:
    done = [s for s, _ in states.values() if s in ("success", "failed", "upstream_failed", "skipped")]
    return len(states) >= expected and len(done) == len(states)


def _report(text: str) -> None:
    print(text)
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        with open(target, "a") as fh:
            fh.write(text + "\n")


def test_load_42_notebook_tasks_under_a_real_scheduler(stack: Stack) -> None:
    shared = stack.work / "parallel-shared"
    shared.mkdir()
    t0 = time.monotonic()
    # A and B wait at most 5 s for each other: they pass only if the executor really runs them at the same time.
    stack.trigger("rel_parallel", "parallel_1", {"shared": str(shared)})
    for i in range(LOAD_RUNS):
        stack.trigger("rel_load", f"load_{i}")
    expected = LOAD_RUNS * (len(LOAD_TASKS) + 1)

    def all_done() -> bool:
        return _finished(stack.task_states("rel_parallel"), 2) and _finished(stack.task_states("rel_load"), expected)

    wait_for(all_done, 600, f"{expected + 2} notebook tasks to finish", every=1)
    elapsed = time.monotonic() - t0
    states = {**stack.task_states("rel_parallel"), **stack.task_states("rel_load")}
    failed = {k: v for k, v in states.items() if v[0] != "success"}
    assert not failed, f"{failed}\n{stack.logs()}"

    outputs = sorted((stack.home / "outputs").rglob("*.ipynb"))
    assert len(outputs) == len(states) == expected + 2
    seen_runs = set()
    for path in outputs:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        af = nb.metadata["airflow"]
        seen_runs.add((af["run_id"], af["task_id"]))
        assert nb.metadata["papermill"]["exception"] is None, path
        assert all(c.metadata["papermill"]["status"] == "completed" for c in nb.cells), path
    assert len(seen_runs) == len(outputs)  # each output is a distinct task instance's
    params_out = (stack.home / "outputs" / "rel_load" / "load_3" / "params" / "attempt-1.ipynb").read_text()
    assert "load_3 42 " in params_out
    assert sorted(p.name for p in shared.iterdir()) == ["test_file_A.txt", "test_file_B.txt"]

    wait_for(lambda: not tagged_kernels(str(stack.home)), 30, "every kernel to exit")
    assert not leftover_temp_files(stack.home / "outputs")
    assert not list((stack.home / "jupyter-runtime").glob("kernel-*.json")), "connection files left behind"
    assert not [p for p in (stack.home / "tmp").iterdir() if p.name.startswith("notebook-task-")]

    per_minute = len(states) * 60 / elapsed
    _report(
        f"LOAD: {len(states)} notebook tasks ({LOAD_RUNS} runs of rel_load + Parallel A/B) succeeded in "
        f"{elapsed:.1f} s = {per_minute:.1f} tasks/min; LocalExecutor parallelism 4, SQLite, "
        f"{os.cpu_count()} CPUs; stack started in {stack.started_in:.1f} s"
    )


def _output(stack: Stack, run_id: str, task_id: str, attempt: int) -> Path:
    return stack.home / "outputs" / "rel_signals" / run_id / task_id / f"attempt-{attempt}.ipynb"


def test_worker_sigterm_sigkill_and_execution_timeout(stack: Stack) -> None:
    run_id = "signals_1"
    stack.trigger("rel_signals", run_id)
    work = stack.work

    # SIGTERM to the task process, as a worker shutdown sends: Airflow's task runner calls on_kill.
    term_pid = int(wait_for(lambda: _read_pid(work / "sigterm.pid"), 180, "the sigterm task to start"))
    os.kill(term_pid, signal.SIGTERM)

    # SIGKILL of the task process: nothing can be saved, the last checkpoint stays a valid notebook.
    kill_pid = int(wait_for(lambda: _read_pid(work / "sigkill.pid"), 180, "the sigkill task to start"))
    checkpoint = _output(stack, run_id, "sigkill", 1)
    wait_for(lambda: _shows_running_cell(checkpoint), 30, "a checkpoint showing the running cell")
    os.kill(kill_pid, signal.SIGKILL)

    wait_for(lambda: _finished(stack.task_states("rel_signals"), 3), 300, "the signal tasks to finish", every=1)
    states = stack.task_states("rel_signals")
    assert states[(run_id, "sigterm")][0] == "failed", stack.logs()
    assert states[(run_id, "exec_timeout")][0] == "failed", stack.logs()
    assert states[(run_id, "sigkill")] == ("success", 2), stack.logs()

    for task_id, reason in (("sigterm", "the task was killed"), ("exec_timeout", "AirflowTaskTimeout")):
        nb = nbformat.read(str(_output(stack, run_id, task_id, 1)), as_version=4)
        banner = "".join(nb.cells[0].source)
        assert "The run was stopped" in banner and reason in banner, (task_id, banner)
        assert nb.metadata.papermill.exception is True
        running = [c for c in nb.cells if "time.sleep(300)" in c.source][0]
        assert running.metadata.papermill.status == "failed"
        assert any(o.get("ename") == "RunStopped" for o in running.outputs)

    killed = nbformat.read(str(checkpoint), as_version=4)  # the last checkpoint, never a truncated file
    nbformat.validate(killed)
    assert killed.metadata.airflow.try_number == 1
    assert [c for c in killed.cells if "time.sleep(300)" in c.source][0].metadata.papermill.status == "running"
    retried = nbformat.read(str(_output(stack, run_id, "sigkill", 2)), as_version=4)
    assert retried.metadata.papermill.exception is None and retried.metadata.airflow.try_number == 2
    assert "finished on try 2" in json.dumps(retried.cells[-1].outputs)

    # The SIGKILLed task's kernel notices its parent is gone and exits (ipykernel's parent poller).
    wait_for(lambda: not tagged_kernels(str(stack.home)), 60, "every kernel to exit")
    assert not leftover_temp_files(stack.home / "outputs" / "rel_signals")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _shows_running_cell(path: Path) -> bool:
    try:
        nb = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return False
    return any(
        "time.sleep(300)" in "".join(c["source"]) and c["metadata"]["papermill"]["status"] == "running"
        for c in nb["cells"]
    )


# Airflow 3.3 refuses any run id holding '..' (its path-traversal check, before a run exists) and any with '/'
# (not in ``allowed_run_id_pattern``): a user relies on these never becoming a run.
TRAVERSAL_RUN_IDS = ("..", "../../escape", "a/../../b", "x%2F..%2Fy")
# Accepted by Airflow; the default output location must still make them harmless (no hidden folder, no "~").
# Not ".": Airflow accepts that run id but its own execution API then fails the task (a URL with "/./").
ODD_RUN_IDS = (".hidden", "~root")
AIRFLOW_RUN_ID_REFUSALS = ("must not contain '..'", "does not match regex pattern")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_hostile_run_ids_cannot_move_the_default_output(stack: Stack) -> None:
    """Run ids come from whoever triggers the run (UI, API, ``dag_run.conf``-driven tooling): Airflow refuses the
    ones that could climb out of ``output_base``, and the default output location makes the others safe."""
    base = stack.home / "outputs"
    dag_base = base / "rel_paths"

    def notebooks_outside_base() -> set[Path]:
        return {
            p for p in _files(stack.home)
            if p.name.endswith((".ipynb", ".record.json")) and not p.is_relative_to(base)
        }

    before_base, before_outside = _files(base), notebooks_outside_base()
    accepted: list[str] = []
    refused: dict[str, str] = {}
    for run_id in (*TRAVERSAL_RUN_IDS, *ODD_RUN_IDS):
        try:
            stack.trigger("rel_paths", run_id)
            accepted.append(run_id)
        except AssertionError as exc:  # `airflow dags trigger` failed; its output says why
            refused[run_id] = str(exc)
    wait_for(lambda: _finished(stack.task_states("rel_paths"), len(accepted)), 300, "the rel_paths runs", every=1)
    states = stack.task_states("rel_paths")
    runs = {r for (r,) in stack.query("SELECT run_id FROM dag_run WHERE dag_id = ?", "rel_paths")}
    written = _files(base) - before_base
    outputs: dict[str, Path] = {}  # run id (as recorded in the notebook) -> its output notebook
    for path in sorted(p for p in written if p.suffix == ".ipynb"):
        run_id = nbformat.read(str(path), as_version=4).metadata["airflow"]["run_id"]
        assert run_id not in outputs, f"two output notebooks for run id {run_id!r}: {outputs[run_id]}, {path}"
        outputs[run_id] = path

    for run_id in (*TRAVERSAL_RUN_IDS, *ODD_RUN_IDS):
        if run_id in refused:
            why = refused[run_id]
            assert any(reason in why for reason in AIRFLOW_RUN_ID_REFUSALS), (
                f"triggering run id {run_id!r} failed, but not by Airflow's run-id check:\n{why}"
            )
            assert run_id not in runs and run_id not in outputs, (
                f"Airflow refused run id {run_id!r}, yet a run exists for it ({run_id in runs}) "
                f"or an output notebook was written for it: {outputs.get(run_id)}"
            )
            continue
        path = outputs.get(run_id)
        assert path is not None, (
            f"Airflow accepted run id {run_id!r} (task {states.get((run_id, 'hello'))}) but no output notebook "
            f"was written under {base}; new notebooks outside it: {sorted(notebooks_outside_base() - before_outside)}"
        )
        assert states[(run_id, "hello")][0] == "success", (run_id, states, stack.logs())
        assert path.resolve().is_relative_to(dag_base.resolve()), (
            f"Airflow accepted run id {run_id!r} and its output notebook escaped {dag_base}: {path}"
        )
        parts = path.relative_to(dag_base).parts  # run / task / attempt
        assert len(parts) == 3 and not any(part.startswith((".", "~")) for part in parts), (
            f"Airflow accepted run id {run_id!r} and its output notebook is not a plain run/task/attempt path: {path}"
        )

    # What a user relies on: none of the traversal run ids became a run, the others did.
    assert list(refused) == list(TRAVERSAL_RUN_IDS), (
        f"Airflow accepted {[r for r in TRAVERSAL_RUN_IDS if r in accepted]} "
        f"-> {[str(outputs.get(r)) for r in TRAVERSAL_RUN_IDS if r in accepted]}"
    )
    assert accepted == list(ODD_RUN_IDS), f"Airflow refused {[r for r in ODD_RUN_IDS if r in refused]}: {refused}"
    # Exactly the accepted runs' outputs were written: nothing else under the base, no notebook outside it.
    assert sorted(outputs) == sorted(accepted), (outputs, accepted)
    assert {p.parent for p in written} == {outputs[r].parent for r in accepted}, sorted(written)
    assert not leftover_temp_files(dag_base)
    strays = notebooks_outside_base() - before_outside
    assert not strays, f"notebooks written outside {base}: {sorted(strays)}"
    _report(
        f"RUN IDS: accepted {accepted} -> {[str(outputs[r].relative_to(base)) for r in accepted]}; "
        f"refused by Airflow {list(refused)}"
    )
