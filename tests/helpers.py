"""Test helpers: run a DAG with ``dag.test()`` on the real metadata DB, read what Airflow stored, run moto."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
"""The project's folder (this file is in its tests/)."""


@dataclass
class TaskResult:
    task_id: str
    map_index: int
    state: str
    try_number: int
    xcom: dict[str, Any]


def run_dag(dag: Any, **test_kwargs: Any) -> dict[str, TaskResult]:
    """Serialize ``dag`` into the metadata DB, run ``dag.test()``, and return each task's state and XComs."""
    bag = _dagbag()(dag_folder=os.devnull)
    bag.bag_dag(dag)
    _sync_bag_to_db(bag, "dags-folder", None)
    dr = dag.test(**test_kwargs)
    results: dict[str, TaskResult] = {}
    for ti in dr.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        results[key] = TaskResult(ti.task_id, ti.map_index, str(ti.state), ti.try_number,
                                  xcoms(dag.dag_id, dr.run_id, ti.task_id, ti.map_index))
    results["__run__"] = TaskResult("__run__", -1, str(dr.state), 0, {"run_id": dr.run_id})
    return results


def _dagbag() -> Any:
    """``DagBag``: in airflow.dag_processing.dagbag from Airflow 3.2, airflow.models.dagbag before."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag
    return DagBag


def _sync_bag_to_db(bag: Any, bundle_name: str, bundle_version: str | None) -> None:
    """Write a bag's DAGs to the metadata DB: a function from Airflow 3.1, the ``DagBag.sync_to_db`` method in 3.0."""
    try:
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        try:
            from airflow.models.dagbag import sync_bag_to_db
        except ImportError:  # Airflow 3.0, which also wants a relative_fileloc (set only when parsing a file)
            for dag in bag.dags.values():
                dag.relative_fileloc = dag.relative_fileloc or Path(dag.fileloc).name
            bag.sync_to_db(bundle_name, bundle_version)
            return
    sync_bag_to_db(bag, bundle_name, bundle_version)


def forget_auth_manager() -> None:
    """Drop the api-server's cached auth manager, so that the next app creates the one configured now: held by
    ``_AuthManagerState`` from Airflow 3.2, a module global before."""
    from airflow.api_fastapi import app as app_module

    state = getattr(app_module, "_AuthManagerState", None)
    if state is not None:
        state.instance = None
    else:  # Airflow < 3.2
        app_module.auth_manager = None


def xcoms(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """Every XCom of one task instance, as Airflow stored it (link XComs included)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.key, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
            )
        ).all()
    return {key: XComModel.deserialize_value(SimpleNamespace(value=value)) for key, value in rows}


def python_notebook(*sources: str, metadata: dict[str, Any] | None = None) -> Any:
    """A Python 3 notebook from cell sources; a source starting with ``#parameters`` is tagged ``parameters``."""
    import nbformat

    cells = [nbformat.v4.new_code_cell(src) for src in sources]
    for cell in cells:
        if cell.source.startswith("#parameters"):
            cell.metadata["tags"] = ["parameters"]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, **(metadata or {})}
    return nbformat.v4.new_notebook(cells=cells, metadata=meta)


def upload_notebook(client: Any, bucket: str, key: str, *sources: str) -> None:
    """Put a Python notebook made from cell sources (``python_notebook``) at ``bucket``/``key`` with an S3 client."""
    import nbformat

    client.put_object(Bucket=bucket, Key=key, Body=nbformat.writes(python_notebook(*sources)).encode())


def read_nb(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def code_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def stream_text(cell: dict[str, Any], name: str = "stdout") -> str:
    return "".join(
        "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SESSION_MARK = "ANP_TEST_SESSION"


def kernel_processes() -> list[str]:
    """Command lines of running ipykernel processes started by this test session (to check that none outlives
    its task). Kernels inherit the environment, so the session's marker variable tells ours from anyone else's."""
    return processes_with_env(SESSION_MARK, os.environ.get(SESSION_MARK, ""))


def processes_with_env(var: str, value: str, needle: str = "ipykernel_launcher") -> list[str]:
    """Live (non-zombie) processes whose command line has ``needle`` and whose environment has ``var=value``."""
    mark = f"{var}={value}".encode()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle not in cmd or "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                continue
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                out.append(f"{pid} {cmd}")
        except OSError:
            continue
    return out


@dataclass
class MotoServer:
    endpoint: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Stop the server's whole process group; bounded in time."""
        stop_group(self.proc)

    def requests(self) -> list[dict[str, Any]]:
        """Requests the server has logged (method, path), from its access log."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if '"' in line and "HTTP/1" in line:
                parts = line.split('"')[1].split()
                if len(parts) >= 2:
                    out.append({"method": parts[0], "path": parts[1]})
        return out


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Signal a server's whole process group (it was started as a session leader), then SIGKILL it if it is still
    there after ``grace`` seconds; bounded in time either way."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def start_moto(workdir: Path, port: int | None = None) -> MotoServer:
    """Start ``moto_server`` on 127.0.0.1 in its own process group and wait until it answers (30 s at most)."""
    port = port or free_port()
    log = workdir / f"moto-{port}.log"
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe) if exe.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text()}") from None
            time.sleep(0.1)
    else:
        MotoServer(f"http://127.0.0.1:{port}", proc, log).stop()
        raise RuntimeError("moto_server did not start within 30 s")
    return MotoServer(f"http://127.0.0.1:{port}", proc, log)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def memory_scan(*secrets: str) -> str:
    """A cell that looks for each of ``secrets`` in its kernel's own writable memory (/proc/self/maps and
    /proc/self/mem) and prints ``found: [regions]``. The cell holds each secret's two halves apart, never the secret
    itself, so only a real copy (of an earlier run's request, say) is found."""
    halves = [(s[:len(s) // 2].encode(), s[len(s) // 2:].encode()) for s in secrets]
    return textwrap.dedent(f"""\
        HALVES = {halves!r}
        found = []
        with open('/proc/self/maps') as maps:
            regions = maps.read().splitlines()
        with open('/proc/self/mem', 'rb', buffering=0) as mem:
            for line in regions:
                addr, perms, *rest = line.split()
                name = rest[3] if len(rest) > 3 else ''
                if not perms.startswith('r') or ('w' not in perms and name and not name.startswith('[')) \\
                        or name in ('[vvar]', '[vsyscall]', '[vvar_vclock]'):
                    continue
                start, end = (int(x, 16) for x in addr.split('-'))
                try:
                    mem.seek(start)
                    data = mem.read(end - start)
                except (OSError, ValueError, OverflowError):
                    continue
                for i, (a, b) in enumerate(HALVES):
                    at = data.find(a)
                    while at >= 0:
                        if data[at + len(a):at + len(a) + len(b)] == b:
                            found.append(f'secret {{i}} in {{line}}')
                            break
                        at = data.find(a, at + 1)
                del data
        print('found:', found[:5])
    """)


SECRET_SIZES = (16, 24, 40, 60, 100, 150, 250, 400, 700, 1000, 3000)
"""Secret parameters of many sizes: what is freed by the launcher lands in many of its allocator's bins, and some
are not reused by a later kernel's own start."""


EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def load_example(name: str) -> Any:
    """Import ``example_dags/<name>.py`` as a module (its ``dag`` among its names), as the DAG processor would."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AIRFLOW_NOTEBOOK = str(Path(sys.executable).with_name("airflow-notebook"))


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The installed ``airflow-notebook`` command in a subprocess, as a user runs it (stdin not a terminal)."""
    return subprocess.run([AIRFLOW_NOTEBOOK, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
