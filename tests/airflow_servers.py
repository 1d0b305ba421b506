"""A real Airflow for the browser test: api-server, scheduler and dag-processor (LocalExecutor, SQLite) on 127.0.0.1
in a temporary AIRFLOW_HOME, each in its own process group, stopped by group with a bounded wait."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.helpers import free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@dataclass
class Airflow:
    home: Path
    port: int
    username: str
    password: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    """Every configured user's password: ``analyst``'s and those of the ``users`` given to ``start_airflow``."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, *args: str) -> None:
        with self.log(name).open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *args], env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM every group, then SIGKILL what is left after 20 s (the scheduler waits for running tasks)."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)  # the group may hold task or kernel processes even if its leader left
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def tails(self) -> str:
        """The end of every server log, for an assertion message."""
        return "\n".join(f"--- {name} ---\n{self.log(name).read_text(errors='replace')[-3000:]}" for name in self.procs)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.tails()}")

    # -- REST ---------------------------------------------------------------------------------------------------

    def token(self) -> str:
        body = json.dumps({"username": self.username, "password": self.password}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["access_token"]

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            f"{self.base}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.loads(resp.read())

    def wait_for(self, what: str, probe: Any, timeout: float) -> Any:
        """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds with the logs."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = probe()
                if last:
                    return last
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = exc
            time.sleep(1)
        raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{self.tails()}")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_airflow(home: Path, dags: Path, extra_env: dict[str, str] | None = None,
                  users: dict[str, str] | None = None) -> Airflow:
    """Configure a fresh AIRFLOW_HOME, migrate its SQLite DB, and start the three servers; ``extra_env`` adds or
    overrides settings (e.g. ``AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST``); ``users`` (name -> role) are
    more users beside ``analyst`` (role ``user``), their passwords in ``Airflow.passwords``."""
    port = free_port()
    roles = {"analyst": "user", **(users or {})}
    all_passwords = {name: secrets.token_urlsafe(12) for name in roles}
    password = all_passwords["analyst"]
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(all_passwords))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, role in roles.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__NOTEBOOK__CHECKPOINT_INTERVAL": "1",
    })
    env.update(extra_env or {})
    af = Airflow(home=home, port=port, username="analyst", password=password, env=env, passwords=all_passwords)
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=home, capture_output=True, timeout=240,
                             start_new_session=True)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout.decode()[-3000:]}{migrate.stderr.decode()[-3000:]}")
    try:
        af.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        af.start("scheduler", "scheduler")
        af.start("dag-processor", "dag-processor")
        af.wait_for("the api-server answers", lambda: urllib.request.urlopen(f"{af.base}/api/v2/monitor/health",
                                                                             timeout=5).status == 200, 120)
    except BaseException:
        af.stop()
        raise
    return af


def trigger_and_wait(af: Airflow, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 180) -> tuple[str, str]:
    """POST a DAG run through the public REST API and wait until it ends: (run id, final state)."""
    body: dict[str, Any] = {"logical_date": None}
    if conf is not None:
        body["conf"] = conf
    run_id = af.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def finished() -> str | None:
        state = af.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
        return state if state in ("success", "failed") else None

    return run_id, af.wait_for(f"run {run_id} of {dag_id} finishes", finished, timeout)
