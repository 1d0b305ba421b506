"""The kernel launcher (``airflow_notebook_provider.launcher.server``): a real launcher process forking real ipykernel
kernels for the engine. A forked kernel must behave as a kernel started as a new process (environment, working
directory, umask, output, interrupt, death), must die with the process that asked for it, and anything the
launcher cannot fork must still run, as a new process."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_notebook_provider.engine.kernels import forked
from airflow_notebook_provider.launcher import server
from airflow_notebook_provider.notebook.errors import NotebookExecutionError
from tests.engine.running import run
from tests.helpers import SECRET_SIZES, memory_scan, read_nb, stream_text
from tests.reliability.faults import CASES

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    path: str
    log: Path

    def children(self) -> list[int]:
        """The launcher's live child processes: the kernels it forked that are still running."""
        out = []
        for pid in os.listdir("/proc"):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, ValueError):
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("PPid", "").strip() == str(self.proc.pid) and not fields.get("State", "").startswith("Z"):
                out.append(int(pid))
        return out

    def forks(self) -> int:
        return self.log.read_text().count("forked kernel")


@pytest.fixture
def kernel_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[Launched]:
    folder = tempfile.mkdtemp(prefix="nkl-")
    log = Path(folder) / "server.log"
    with log.open("wb") as err:
        # pytest changes PYTEST_CURRENT_TEST between set-up and call: a launcher with it would fork nothing
        proc, path = server.start(folder, stderr=err, env={k: v for k, v in os.environ.items()
                                                             if k != "PYTEST_CURRENT_TEST"})
    monkeypatch.setenv(server.ENV_VAR, path)
    launched = Launched(proc, path, log)
    try:
        yield launched
        deadline = time.monotonic() + 10
        while launched.children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not launched.children(), f"kernels outlived their run:\n{log.read_text()}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


FACTS = textwrap.dedent("""\
    import os, sys, json
    mask = os.umask(0); os.umask(mask)
    print(json.dumps({"ppid": os.getppid(), "cwd": os.getcwd(), "mode": os.environ.get("MODE"),
                      "launcher_var": os.environ.get("NOTEBOOK_KERNEL_LAUNCHER"), "umask": mask,
                      "session_leader": os.getsid(0) == os.getpid(), "argv0": os.path.basename(sys.argv[0])}))
    os.write(2, b"written to fd 2\\n")
""")


def test_a_forked_kernel_gets_the_runs_environment_folder_and_umask(kernel_launcher: Launched, make_notebook, tmp_path: Path, capfd) -> None:
    (tmp_path / "data.txt").write_text("local file")
    nb = make_notebook(FACTS, "print(open('data.txt').read())")
    out = tmp_path / "out.ipynb"
    old = os.umask(0o027)
    try:
        _, rec = run(nb, out, cwd=str(tmp_path), env={"MODE": "prod"})
    finally:
        os.umask(old)
    cells = read_nb(out)["cells"]
    facts = json.loads(stream_text(cells[0]))
    assert facts == {"ppid": kernel_launcher.proc.pid, "cwd": str(tmp_path), "mode": "prod", "launcher_var": None,
                     "umask": 0o027, "session_leader": True, "argv0": "ipykernel_launcher.py"}
    assert stream_text(cells[1]) == "local file\n"
    assert any("forked by the worker's kernel launcher" in m for _, m in rec.records)
    assert kernel_launcher.forks() == 1


def test_the_kernel_command_line_shows_a_kernel(kernel_launcher: Launched, make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("print(open('/proc/self/cmdline').read())")
    out = tmp_path / "out.ipynb"
    run(nb, out)
    cmdline = stream_text(read_nb(out)["cells"][0])
    assert "-m ipykernel_launcher -f " in cmdline and "server.sock" not in cmdline


@pytest.mark.parametrize("case", ["cell_timeout", "os_exit", "sigkill"])
def test_a_forked_kernel_is_interrupted_and_its_death_explained(kernel_launcher: Launched, make_notebook, tmp_path: Path, case: str) -> None:
    source, settings, expected = CASES[case]
    nb = make_notebook("print('before')", source, "print('never')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(NotebookExecutionError) as err:
        run(nb, out, **settings)
    cells = read_nb(out)["cells"]
    failed = [c for c in cells if c.get("metadata", {}).get("papermill", {}).get("status") == "failed"]
    errors = " | ".join(f"{o['ename']}: {o['evalue']}" for o in failed[0]["outputs"] if o["output_type"] == "error")
    assert expected in errors, (errors, str(err.value))
    assert kernel_launcher.forks() == 1


CLIENT = textwrap.dedent("""\
    import logging, sys
    from pathlib import Path
    from airflow_notebook_provider.engine import NotebookRun, load
    nb = Path(sys.argv[1])
    NotebookRun(load(nb.read_bytes(), str(nb)), input_path=str(nb), output_path=sys.argv[2],
                save=lambda b: None, log=logging.getLogger("client")).run()
""")


def test_the_kernel_dies_with_the_process_that_asked_for_it(kernel_launcher: Launched, make_notebook, tmp_path: Path) -> None:
    """A task process killed with SIGKILL cannot stop its kernel: the launcher does, as the connection closes."""
    nb = make_notebook("import time; time.sleep(120)")
    # Run from the checkout, with the launcher's environment: a PYTHONPATH of its own would not be forked.
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(nb), str(tmp_path / "out.ipynb")], cwd=REPO,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not kernel_launcher.children():
            assert time.monotonic() < deadline and client.poll() is None, kernel_launcher.log.read_text()
            time.sleep(0.1)
        kernel = kernel_launcher.children()[0]
        time.sleep(1)
        os.killpg(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        deadline = time.monotonic() + 10
        while kernel in kernel_launcher.children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kernel not in kernel_launcher.children()
        assert f"the client of kernel {kernel} is gone" in kernel_launcher.log.read_text()
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)


def test_what_cannot_be_forked_starts_as_a_new_process(kernel_launcher: Launched, make_notebook, tmp_path: Path, caplog) -> None:
    """A kernel whose interpreter settings differ from the launcher's (here PYTHONPATH) would not import what it
    should: it is started as a new process, a child of the caller, and says why in the log."""
    nb = make_notebook("import os, sys; print(os.getppid(), '/elsewhere' in sys.path)")
    out = tmp_path / "out.ipynb"
    with caplog.at_level(logging.INFO, logger="airflow_notebook_provider.engine.kernels.forked"):
        run(nb, out, env={"PYTHONPATH": "/elsewhere"})
    assert stream_text(read_nb(out)["cells"][0]) == f"{os.getpid()} True\n"
    assert re.search(r"Kernel started as a new process: .* launcher's \(PYTHONPATH\)", caplog.text), caplog.text
    assert kernel_launcher.forks() == 0


def test_a_launcher_that_is_gone_means_kernels_start_as_new_processes(make_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tempfile.mkdtemp(prefix="nkl-")
    monkeypatch.setenv(server.ENV_VAR, os.path.join(folder, "server.sock"))  # nothing listens there
    nb = make_notebook("import os; print(os.getppid())")
    out = tmp_path / "out.ipynb"
    run(nb, out)
    assert stream_text(read_nb(out)["cells"][0]) == f"{os.getpid()}\n"


def test_a_socket_in_a_folder_others_can_enter_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    with pytest.raises(forked.LauncherUnavailable, match="not private to this user"):
        forked.launch(str(folder / "server.sock"), [sys.executable, "-m", "ipykernel_launcher"], env={}, cwd=None)


def test_the_launcher_leaves_when_the_worker_that_started_it_is_gone(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", "from airflow_notebook_provider.launcher import server; import time\n"
                               "proc, path = server.start(); print(proc.pid, path, flush=True); time.sleep(600)"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, start_new_session=True)
    pid_text, path = starter.stdout.readline().decode().split()  # type: ignore[union-attr]
    pid = int(pid_text)
    try:
        assert Path(f"/proc/{pid}").exists() and os.path.exists(path)
        os.killpg(starter.pid, signal.SIGKILL)
        starter.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            assert time.monotonic() < deadline, "the launcher outlived its worker"
            time.sleep(0.1)
        assert not os.path.exists(path)
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_refusal_names_what_differs() -> None:
    python = [sys.executable, "-m", "ipykernel_launcher", "-f", "x.json"]
    base = {"PATH": "/bin", "PYTHONPATH": "/a"}
    assert server.refusal(python, {**base, "MODE": "x"}, base) is None
    assert server.refusal(python, base, {**base, "SPT_NOENV": "1", "JPY_PARENT_PID": "7"}) is None
    assert "lacks or changes the launcher's (PYTHONPATH)" in (server.refusal(python, {"PATH": "/bin"}, base) or "")
    # inherit_env=False: the kernel's environment is smaller than the launcher's, which /proc/self/environ shows
    assert "(HOME, PYTHONPATH)" in (server.refusal(python, {"PATH": "/bin"}, {**base, "HOME": "/h"}) or "")
    assert "differ from the launcher's (LD_PRELOAD)" in (server.refusal(python, {**base, "LD_PRELOAD": "x.so"}, base) or "")
    assert "another interpreter" in (server.refusal(["/usr/bin/R", "-m", "ipykernel_launcher"], base, base) or "")
    assert "not an ipykernel" in (server.refusal(["/usr/bin/R", "--slave", "-e", "IRkernel::main()"], base, base) or "")


def test_a_workers_launcher_shows_its_kernels_none_of_the_workers_secrets(make_notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``worker.start_launcher`` (what a Celery worker runs when it starts) gives the launcher only what a kernel
    inherits by default: a forked kernel's /proc/self/environ, the environment it was started with, has no
    connection URI; and a run that inherits less than that (``inherit_env=False``) is not forked."""
    from airflow_notebook_provider.celery import worker
    from airflow_notebook_provider.engine.kernels.kernel import InheritedEnv
    from airflow_notebook_provider.engine.kernels.local import LocalKernels

    secret = "postgresql://etl:hunter2@db/warehouse"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", secret)
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "the worker's")  # left in a worker's environment; each task sets its own
    monkeypatch.setenv(server.ENV_VAR, "")  # none yet; and taken away again after the test
    monkeypatch.setattr(worker, "_launcher", None)
    worker.start_launcher()
    proc = worker._launcher
    assert proc is not None
    try:
        probe = "import os; print(os.getppid(), 'hunter2' in open('/proc/self/environ').read(), 'AIRFLOW_CONN_WAREHOUSE' in os.environ)"
        nb = make_notebook(probe)
        out = tmp_path / "out.ipynb"
        monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "this task's")
        run(nb, out, kernels=LocalKernels(InheritedEnv(denylist=("AIRFLOW_CONN_*", "AIRFLOW_VAR_*", "AIRFLOW__*"))))
        assert stream_text(read_nb(out)["cells"][0]) == f"{proc.pid} False False\n"
        run(nb, out, kernels=LocalKernels(InheritedEnv(inherit=False)))
        assert stream_text(read_nb(out)["cells"][0]) == f"{os.getpid()} False False\n"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


PROBE = textwrap.dedent("""\
    import ctypes, json, os, signal, sys
    mask = os.umask(0); os.umask(mask)
    ip = get_ipython()
    print(json.dumps({
        "dumpable": ctypes.CDLL(None).prctl(3, 0, 0, 0, 0),  # PR_GET_DUMPABLE: the launcher is not, a kernel is
        "env": {k: v for k, v in os.environ.items() if k not in ("JPY_PARENT_PID", "PYTEST_CURRENT_TEST")},
        "path": sys.path, "cwd": os.getcwd(), "umask": mask, "argv0": sys.argv[0],
        "modules": sorted(m for m in sys.modules if not m.startswith(("airflow_notebook_provider", "setproctitle", "gc"))),
        "signals": {s: str(signal.getsignal(getattr(signal, s))) for s in ("SIGINT", "SIGTERM", "SIGCHLD", "SIGPIPE", "SIGHUP")},
        "config": {k: dict(v) for k, v in ip.config.items() if k != "IPKernelApp"},
        "stdout": type(sys.stdout).__name__, "displayhook": type(sys.displayhook).__name__,
    }, sort_keys=True))
""")


@pytest.mark.parametrize("sighup", [signal.SIG_DFL, signal.SIG_IGN], ids=["sighup-default", "sighup-ignored-nohup"])
def test_a_forked_kernel_is_what_a_new_kernel_process_would_be(kernel_launcher: Launched, make_notebook, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, sighup: Any) -> None:
    """Same environment (including what the kernel's own imports add), sys.path, folder, umask, signal handlers,
    IPython configuration and modules as a kernel started as a new process, apart from the launcher's own modules;
    also when the task process ignores SIGHUP (a worker started with ``nohup``: a new process inherits that)."""
    previous = signal.signal(signal.SIGHUP, sighup)
    try:
        _compare_forked_and_new(make_notebook, tmp_path, monkeypatch, kernel_launcher)
    finally:
        signal.signal(signal.SIGHUP, previous)


def _compare_forked_and_new(make_notebook: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            kernel_launcher: Launched) -> None:
    nb = make_notebook(PROBE)
    seen = {}
    for how in ("forked", "new process"):
        if how == "new process":
            monkeypatch.delenv(server.ENV_VAR)
        out = tmp_path / f"{how}.ipynb"
        run(nb, out, cwd=str(tmp_path), env={"MODE": "prod"})
        seen[how] = json.loads(stream_text(read_nb(out)["cells"][0]))
    assert kernel_launcher.forks() == 1
    forked, spawned = seen["forked"], seen["new process"]
    differences = {k: (forked[k], spawned[k]) for k in forked if k not in ("env", "modules") and forked[k] != spawned[k]}
    differences["env"] = {k: (forked["env"].get(k), spawned["env"].get(k)) for k in {*forked["env"], *spawned["env"]}
                          if forked["env"].get(k) != spawned["env"].get(k)}
    differences["modules"] = sorted(set(forked["modules"]) ^ set(spawned["modules"]))
    assert differences == {"env": {}, "modules": []}


def test_forked_kernels_exit_by_themselves_when_asked(kernel_launcher: Launched, make_notebook, tmp_path: Path) -> None:
    """A forked kernel must leave on the shutdown request, as a new kernel process does, not be terminated when
    the grace period ends: a stuck exit costs the task seconds (ipykernel 7's control thread and IOPub race,
    which a forked kernel's quick exit used to hit one time in four)."""
    nb = make_notebook("print('one')", "print('two')")
    for i in range(12):
        run(nb, tmp_path / f"out-{i}.ipynb")
    deadline = time.monotonic() + 5
    while kernel_launcher.log.read_text().count("exited with") < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    exits = re.findall(r"exited with (-?\d+)", kernel_launcher.log.read_text())
    assert exits == ["0"] * 12, kernel_launcher.log.read_text()


def test_a_forked_kernel_holds_nothing_of_an_earlier_runs_request(kernel_launcher: Launched, make_notebook, tmp_path: Path) -> None:
    """The launcher forks every kernel from its own memory, so it must never have read a run's request
    (its environment holds the run's ``NOTEBOOK_SECRET_*``): a later kernel scanning its memory finds no copy."""
    values = {f"NOTEBOOK_SECRET_S{n}": ("s" + secrets.token_hex(n))[:n] for n in SECRET_SIZES}
    uses = make_notebook("import os; print(sum(k.startswith('NOTEBOOK_SECRET_') for k in os.environ))", name="uses.ipynb")
    for i in range(3):  # three runs of "DAG A", each with the secrets in its kernel's environment
        run(uses, tmp_path / f"a-{i}.ipynb", env=values)
        assert stream_text(read_nb(tmp_path / f"a-{i}.ipynb")["cells"][0]) == f"{len(values)}\n"
    scan = make_notebook(memory_scan(*values.values()), name="scan.ipynb")
    out = tmp_path / "scan.ipynb"
    run(scan, out)  # "DAG B", later, on the same launcher
    assert kernel_launcher.forks() == 4
    assert stream_text(read_nb(out)["cells"][0]) == "found: []\n"


def _drip(path: str, sent: threading.Event, stop: threading.Event, said: list[bytes]) -> None:
    """A client that announces a large request and sends it one byte a second, until the launcher hangs up or
    ``stop`` is set; what the launcher answered goes to ``said``."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    conn.settimeout(1.0)
    try:
        socket.send_fds(conn, [server.HEADER.pack(100_000) + b"{"], [1, 2])
        sent.set()
        while not stop.is_set():
            try:
                answer = conn.recv(4096)
            except TimeoutError:
                conn.sendall(b" ")
                continue
            said.append(answer)
            if not answer:
                return
    except OSError as exc:  # the launcher hung up while this client was sending
        said.append(repr(exc).encode())
    finally:
        conn.close()


def test_a_slow_client_delays_no_other_and_leaves_no_kernel(kernel_launcher: Launched, make_notebook, tmp_path: Path) -> None:
    """A client that sends its request a byte at a time holds only itself: another task gets its
    forked kernel meanwhile, the slow one is cut off at the request deadline, and no kernel is left untracked."""
    sent, stop, said = threading.Event(), threading.Event(), []
    dripper = threading.Thread(target=_drip, args=(kernel_launcher.path, sent, stop, said), daemon=True)
    dripper.start()
    try:
        assert sent.wait(30), said  # the slow request is first in the launcher's queue
        nb = make_notebook("print('hello')")
        _, rec = run(nb, tmp_path / "out.ipynb")
        assert stream_text(read_nb(tmp_path / "out.ipynb")["cells"][0]) == "hello\n"
        started = [m for _, m in rec.records if "Kernel started" in m or "forked" in m]
        assert any("forked by the worker's kernel launcher" in m for m in started), started
        dripper.join(timeout=60)  # the launcher ends the slow request at its deadline, whatever the client does
        assert not dripper.is_alive(), "the launcher still waits for the slow client's request"
        assert said and b"within" in b"".join(said), said
    finally:
        stop.set()
        dripper.join(timeout=10)


def test_a_client_gone_before_its_answer_leaves_no_kernel(kernel_launcher: Launched, tmp_path: Path) -> None:
    """A task process that dies between its request and the answer (here: closes at once) must not
    leave a kernel nobody tracks; the launcher kills it (the fixture checks that none is left)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    body = json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", str(tmp_path / "kernel.json")],
                       "env": env, "cwd": str(tmp_path), "umask": 0o022}).encode()
    for _ in range(3):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(kernel_launcher.path)
        socket.send_fds(conn, [server.HEADER.pack(len(body)) + body], [1, 2])
        conn.close()
    deadline = time.monotonic() + 30
    while kernel_launcher.log.read_text().count("is gone") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kernel_launcher.log.read_text().count("is gone") == 3, kernel_launcher.log.read_text()
