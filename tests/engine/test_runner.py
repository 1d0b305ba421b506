"""The engine alone, with a real ipykernel: record, failures, early exit, checkpoints, live log, stop."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from airflow_notebook_provider.engine import (
    EarlyKernel,
    ExecutionSettings,
    LocalKernels,
    NotebookRun,
    load,
)
from airflow_notebook_provider.engine.storage import write_atomic
from airflow_notebook_provider.notebook.errors import NotebookExecutionError, NotebookInputError
from airflow_notebook_provider.notebook.record import ERROR_MARKER_TAG
from tests.engine.running import Recorder, run
from tests.helpers import code_cells, kernel_processes, read_nb, stream_text


def valid_notebook(path: Path) -> nbformat.NotebookNode:
    """The output as Jupyter opens it; fails unless it is valid against its nbformat schema."""
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    return nb


def early_kernel(cwd: str | None = None) -> EarlyKernel:
    return EarlyKernel(LocalKernels(), "python3", env={}, cwd=cwd)


def test_success_records_papermill_metadata(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("#parameters\nx = 1", "print(x * 2)", "#md text", "x")
    out = tmp_path / "out.ipynb"
    r, _ = run(nb, out, {"x": 21})
    valid_notebook(out)
    data = read_nb(out)
    pm = data["metadata"]["papermill"]
    assert pm["parameters"] == {"x": 21} and pm["exception"] is None
    assert pm["input_path"] == str(nb) and pm["output_path"] == str(out) and pm["duration"] > 0
    cells = data["cells"]
    assert cells[1]["metadata"]["tags"] == ["injected-parameters"]
    assert {c["metadata"]["papermill"]["status"] for c in cells} == {"completed"}
    assert stream_text(cells[2]) == "42\n"
    assert "".join(code_cells(data)[-1]["outputs"][0]["data"]["text/plain"]) == "21"
    assert data["metadata"]["language_info"]["name"] == "python"
    assert r.writes == 2  # start and end, nothing per cell
    assert not kernel_processes()


@pytest.mark.parametrize(
    ("source", "kind", "ename"),
    [
        ("raise ValueError('bad value')", "error", "ValueError"),
        ("import sys; sys.exit(3)", "error", "SystemExit"),
        ("import os; os._exit(1)", "dead_kernel", "DeadKernelError"),
        ("import time; time.sleep(60)", "timeout", "CellTimeoutError"),
        ("input('name? ')", "error", "StdinNotImplementedError"),
    ],
)
def test_failures_leave_a_marked_notebook_and_nothing_runs_after(make_notebook, tmp_path: Path, source, kind, ename) -> None:
    nb = make_notebook("print('before')", source, "print('after')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookExecutionError) as err:
        run(nb, out, cell_timeout=2)
    e = err.value
    assert (e.kind, e.ename, e.cell_index) == (kind, ename, 1)
    assert str(nb) in str(e) and str(out) in str(e) and ename in str(e)
    valid_notebook(out)
    data = read_nb(out)
    assert data["metadata"]["papermill"]["exception"] is True
    assert ERROR_MARKER_TAG in data["cells"][0]["metadata"]["tags"]
    assert ERROR_MARKER_TAG in data["cells"][2]["metadata"]["tags"]  # the anchor right above the failing cell
    failing = data["cells"][3]
    assert failing["metadata"]["papermill"]["status"] == "failed" and failing["metadata"]["papermill"]["exception"] is True
    assert any(o["output_type"] == "error" and o["ename"] == ename for o in failing["outputs"])
    after = data["cells"][4]
    assert after["outputs"] == [] and after["metadata"]["papermill"]["status"] == "pending"
    assert not kernel_processes()


@pytest.mark.parametrize("source", ["import sys; sys.exit(0)", "import sys; sys.exit()", "raise SystemExit"])
def test_clean_system_exit_ends_early_without_failing(make_notebook, tmp_path: Path, source: str) -> None:
    nb = make_notebook("print('a')", source, "print('never')")
    out = tmp_path / "out.ipynb"
    r, _ = run(nb, out)
    assert r.stopped_early  # the task says it ended early, and succeeds
    data = read_nb(out)
    assert data["metadata"]["papermill"]["exception"] is None
    assert stream_text(data["cells"][0]) == "a\n" and stream_text(data["cells"][2]) == ""
    assert data["cells"][2]["metadata"]["papermill"]["status"] == "pending"


def test_tags_raises_exception_and_skip_execution(make_notebook, tmp_path: Path) -> None:
    path = make_notebook("raise KeyError('allowed')", "print('skipped')", "print('ran')")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells[0].metadata["tags"] = ["raises-exception"]
    nb.cells[1].metadata["tags"] = ["skip-execution"]
    nbformat.write(nb, str(path))
    out = tmp_path / "out.ipynb"
    run(path, out)
    cells = read_nb(out)["cells"]
    assert cells[0]["outputs"][0]["ename"] == "KeyError"
    assert cells[1]["outputs"] == []
    assert stream_text(cells[2]) == "ran\n"


def test_output_reaches_the_log_while_the_cell_runs(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')")
    r, rec = run(nb, tmp_path / "out.ipynb")
    times = {msg: t for t, msg in rec.records}
    first = next(t for m, t in times.items() if m.endswith("first"))
    end = next(t for m, t in times.items() if "cell 1/1 finished" in m)
    assert end - first > 1.0, rec.records
    assert any(m == "cell 1/1 started" for _, m in rec.records)


def test_log_truncates_a_flood_but_the_notebook_keeps_it(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("for i in range(5000):\n    print('x' * 50, i)")
    out = tmp_path / "out.ipynb"
    r, rec = run(nb, out, log_output_limit=10_000)
    logged = [m for _, m in rec.records if m.startswith("[stdout]")]
    assert 150 < len(logged) < 250
    assert any("truncated in the log" in m for _, m in rec.records)
    assert stream_text(read_nb(out)["cells"][0]).count("\n") == 5000


def test_checkpoints_are_bounded_by_time_not_cells(make_notebook, tmp_path: Path) -> None:
    cells = [f"x{i} = {i}" for i in range(150)] + ["import time; time.sleep(2.2)"]
    nb = make_notebook(*cells)
    r, _ = run(nb, tmp_path / "out.ipynb", checkpoint_interval=1.0)
    duration = read_nb(tmp_path / "out.ipynb")["metadata"]["papermill"]["duration"]
    assert 2 <= r.writes <= 2 + duration / 1.0 + 1e-9
    assert r.writes >= 3  # at least one checkpoint while the sleeping cell ran


def test_checkpoint_shows_the_running_cell(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("print('step 1', flush=True)", "import time; print('working', flush=True); time.sleep(3)")
    out = tmp_path / "out.ipynb"
    seen: list[dict] = []

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen:
            if out.exists():
                data = read_nb(out)
                if data["cells"][1]["metadata"]["papermill"]["status"] == "running":
                    seen.append(data)
            time.sleep(0.1)

    t = threading.Thread(target=watch)
    t.start()
    run(nb, out, checkpoint_interval=1.0)
    t.join()
    assert seen, "no checkpoint was written while the second cell ran"
    assert stream_text(seen[0]["cells"][0]) == "step 1\n"


def test_stop_kills_the_kernel_and_saves_a_stopped_notebook(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("print('start', flush=True)", "import time; time.sleep(60)")
    out = tmp_path / "out.ipynb"
    log = logging.getLogger("stop")
    r = NotebookRun(load(nb.read_bytes(), str(nb)), input_path=str(nb), output_path=str(out),
                    save=lambda b: write_atomic(out, b), log=log)
    threading.Timer(3.0, r.stop, args=("on_kill",)).start()
    t0 = time.monotonic()
    with pytest.raises(NotebookExecutionError) as err:
        r.run()
    assert time.monotonic() - t0 < 15
    assert err.value.kind == "stopped" and "on_kill" in str(err.value)
    valid_notebook(out)
    data = read_nb(out)
    assert data["cells"][-1]["metadata"]["papermill"]["status"] == "failed"
    assert "was stopped" in "".join(data["cells"][0]["source"])
    assert not kernel_processes()


def test_a_4_4_notebook_failing_after_parameters_is_saved_as_a_valid_4_5(make_notebook, tmp_path: Path) -> None:
    """Jupyter saved many notebooks as nbformat 4.0-4.4, without cell ids; the cells the engine adds (parameters,
    error banner and anchor) carry an id, which only 4.5 allows, so the output must be a valid 4.5 notebook."""
    path = make_notebook("#parameters\nx = 1", "print('x is', x)", "raise ValueError(f'bad {x}')", "print('after')")
    nb = nbformat.read(str(path), as_version=4)
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    path.write_text(json.dumps(nb))  # nbformat.write would add the ids back
    original = nbformat.reads(path.read_text(), as_version=4)
    nbformat.validate(original)
    assert original.nbformat_minor == 4 and not any("id" in c for c in original.cells)
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookExecutionError) as err:
        run(path, out, {"x": 5})
    assert (err.value.ename, err.value.cell_index) == ("ValueError", 3)  # after the injected parameters
    data = valid_notebook(out)
    assert (data.nbformat, data.nbformat_minor) == (4, 5)
    ids = [c.get("id") for c in data.cells]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), ids
    assert ERROR_MARKER_TAG in data.cells[0].metadata.tags
    injected = [c for c in data.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 5" in injected[0].source
    failing = [c for c in data.cells if c.cell_type == "code" and c.metadata.papermill.status == "failed"]
    assert len(failing) == 1 and "raise ValueError" in failing[0].source
    assert any(o.get("ename") == "ValueError" and o.get("evalue") == "bad 5" for o in failing[0].outputs)
    assert stream_text(data.cells[-1]) == "" and data.cells[-1].metadata.papermill.status == "pending"
    assert not kernel_processes()


def test_cwd_and_env_reach_the_kernel(make_notebook, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("local file")
    nb = make_notebook("import os\nprint(open('data.txt').read(), os.environ['MODE'])")
    out = tmp_path / "o" / "out.ipynb"
    run(nb, out, cwd=str(tmp_path), env={"MODE": "prod"})
    assert stream_text(read_nb(out)["cells"][0]) == "local file prod\n"


def test_unknown_kernel_fails_before_anything_is_written(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("1", kernelspec={"name": "no-such-kernel", "display_name": "x", "language": "python"})
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookInputError, match="no-such-kernel.*Installed kernels: .*python3"):
        run(nb, out)
    assert not out.exists()


def test_kernel_that_cannot_start_is_recorded(make_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kdir = tmp_path / "share" / "jupyter" / "kernels" / "broken"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text('{"argv": ["/nonexistent/python", "-f", "{connection_file}"], "display_name": "Broken", "language": "python"}')
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    nb = make_notebook("1", kernelspec={"name": "broken", "display_name": "Broken", "language": "python"})
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookExecutionError) as err:
        run(nb, out)
    assert err.value.kind == "startup" and "did not start" in str(err.value)
    data = read_nb(out)
    assert data["metadata"]["papermill"]["exception"] is True
    assert ERROR_MARKER_TAG in data["cells"][0]["metadata"]["tags"]
    assert "did not start" in "".join(data["cells"][0]["source"])


def _pid_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_kernel_started_early_runs_the_notebook(make_notebook, tmp_path: Path) -> None:
    path = make_notebook("import os\nprint(os.getpid(), os.getcwd())")
    settings = ExecutionSettings(cwd=str(tmp_path))
    early = early_kernel(str(tmp_path))
    assert early.pid is not None and _pid_alive(early.pid)
    out = tmp_path / "out.ipynb"
    log = logging.getLogger("test.early")
    log.setLevel(logging.INFO)
    rec = Recorder()
    log.addHandler(rec)
    run = NotebookRun(load(path.read_bytes(), str(path)), input_path=str(path), output_path=str(out),
                      save=lambda b: write_atomic(out, b), settings=settings, log=log)
    run.run(early=early)
    log.removeHandler(rec)
    assert stream_text(read_nb(out)["cells"][0]) == f"{early.pid} {tmp_path}\n"
    assert any("was started early" in m for _, m in rec.records)
    early.discard()  # a no-op once the run took it
    assert not _pid_alive(early.pid) and not kernel_processes()


def test_kernel_started_early_for_another_kernel_is_stopped(make_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kdir = tmp_path / "share" / "jupyter" / "kernels" / "other"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Other",
        "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    path = make_notebook("import os\nprint(os.getpid())", kernelspec={"name": "other", "display_name": "Other",
                                                                      "language": "python"})
    early = early_kernel()  # no kernel_name: python3 is the likely one
    assert early.kernel_name == "python3" and early.pid is not None
    out = tmp_path / "out.ipynb"
    run = NotebookRun(load(path.read_bytes(), str(path)), input_path=str(path), output_path=str(out),
                      save=lambda b: write_atomic(out, b))
    run.run(early=early)
    assert run.kernel_name == "other"
    assert stream_text(read_nb(out)["cells"][0]).strip() != str(early.pid)
    assert not _pid_alive(early.pid) and not kernel_processes()


def test_kernel_started_early_is_killed_when_the_run_never_starts(make_notebook, tmp_path: Path) -> None:
    early = early_kernel()
    assert early.pid is not None
    bad = make_notebook("1", kernelspec={"name": "no-such-kernel", "display_name": "x", "language": "python"})
    run = NotebookRun(load(bad.read_bytes(), str(bad)), input_path=str(bad), output_path=str(tmp_path / "o.ipynb"),
                      save=lambda b: None)
    with pytest.raises(NotebookInputError):
        run.run(early=early)
    assert not _pid_alive(early.pid) and not kernel_processes()
    lone = early_kernel()
    lone.discard()  # the caller gave up before any run (a bad input, a task stopped while fetching)
    assert lone.pid is not None and not _pid_alive(lone.pid)


def test_a_kernel_that_hangs_on_its_way_out_is_killed_after_the_grace_period() -> None:
    """A kernel that answers its shutdown request but does not exit (here an exit handler that sleeps; ipykernel 7
    sometimes deadlocks there by itself) gets ``EXIT_GRACE`` seconds, then the engine kills it (SIGKILL), instead of
    jupyter_client's 2.5 s wait, SIGTERM and 2.5 s more: the kernel's exit status says which of the two ended it."""
    import asyncio
    import signal

    from airflow_notebook_provider.engine import _compat
    from airflow_notebook_provider.engine.kernels.local import EXIT_GRACE

    async def scenario() -> tuple[float, int | None, int | None]:
        kernel = LocalKernels().create("python3", env={}, cwd=None)
        await kernel.start(timeout=60, log=logging.getLogger("test.grace"))
        proc = _compat.kernel_process(kernel.km)
        assert proc is not None, "a local kernel has a process"
        reply = await kernel.kc.execute_interactive("import atexit, time; atexit.register(time.sleep, 60)", timeout=30)
        assert reply["content"]["status"] == "ok"
        started = time.monotonic()
        await kernel.shutdown(now=False)
        took = time.monotonic() - started
        return took, kernel.pid, proc.wait(timeout=30)  # bounded: the exit handler alone would sleep 60 s

    took, pid, status = asyncio.run(scenario())
    assert status == -signal.SIGKILL, f"the kernel ended with status {status}, not killed by the engine"
    assert took >= EXIT_GRACE, f"killed {took:.2f} s after the request, before its grace period"
    assert pid is not None and not _pid_alive(pid)
    assert not kernel_processes()


def test_private_parts_of_jupyter_client_and_nbclient_are_used_only_in_compat() -> None:
    """The layout rule a jupyter_client/nbclient upgrade relies on: every private or undocumented part of them the
    engine uses is in ``engine/_compat.py``, with the versions it was checked on. Also: nothing flips the umask to
    read it (``os.umask`` sets it process-wide, so a thread creating a file meanwhile gets the wrong mode) but the
    one reader, ``storage.current_umask``, where Linux does not show it."""
    import ast

    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from nbclient import NotebookClient

    import airflow_notebook_provider.engine as engine

    library = (AsyncKernelClient, AsyncKernelManager, LocalProvisioner, NotebookClient)
    bases = {cls.__name__ for cls in library}
    private = {name for cls in library for name in dir(cls) if name.startswith("_") and not name.startswith("__")}
    # Attributes the libraries set themselves, by the name the engine gives their owner.
    set_by_the_libraries = {("client", "kc"), ("km", "kernel_id"), ("km", "provisioner"), ("self", "process")}
    trees = {path.name: ast.parse(path.read_text(), str(path))
             for path in sorted(Path(engine.__file__).parent.rglob("*.py")) if path.name != "_compat.py"}
    ours = {node.name for tree in trees.values() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    ours |= {node.attr for tree in trees.values() for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)}
    reader = next(node for node in ast.walk(trees["storage.py"])
                  if isinstance(node, ast.FunctionDef) and node.name == "current_umask")
    allowed_umask = {id(node) for node in ast.walk(reader)}
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr in private - ours:
                found.append(f"{where} uses {node.attr}")
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                owner = ast.unparse(node.value).rsplit(".", 1)[-1]
                if (owner, node.attr) in set_by_the_libraries:
                    found.append(f"{where} sets {owner}.{node.attr}")
            elif isinstance(node, ast.ClassDef) and {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases} & bases:
                found += [f"{where} {node.name} overrides {f.name}" for f in node.body
                          if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                          and (f.name in private or (f.name == "output" and "NotebookClient" in map(ast.unparse, node.bases)))]
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "os.umask" and id(node) not in allowed_umask:
                found.append(f"{where} flips the umask")
    assert found == []
