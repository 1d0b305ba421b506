"""``make ui``: the Airflow UI on the demo's AIRFLOW_HOME, listening on 127.0.0.1 only.

Runs ``airflow standalone`` until Ctrl-C, with the virtualenv's bin first on PATH: standalone starts
``airflow scheduler``, ``airflow api-server``... from PATH, so without an activated venv it fails with
``FileNotFoundError: 'airflow'``. Once ``/api/v2/monitor/health`` answers, prints the URL, the login and where to
click. Ctrl-C stops standalone, which stops its components.

Run it with the venv's python and the demo's environment (the Makefile does both). UI_PORT (8080) picks the port,
UI_WAIT (180) how many seconds to wait for the UI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
DAG_ID = "example_notebook_daily_report"
TASK_ID = "daily_report"
STOP_GRACE = 60  # seconds standalone gets, after a Ctrl-C, to stop its components before they are killed


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((HOST, port)) == 0


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def admin_password(home: Path) -> tuple[str | None, Path]:
    # Written by Airflow 3's simple auth manager: one JSON object, {"admin": "<password>"}.
    path = Path(
        os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        or home / "simple_auth_manager_passwords.json.generated"
    )
    try:
        return json.loads(path.read_text() or "{}").get("admin"), path
    except (OSError, ValueError):
        return None, path


def kill_session(proc: subprocess.Popen[bytes], signum: int) -> bool:
    """Send ``signum`` to every process left in standalone's session; False if there is none."""
    try:
        os.killpg(proc.pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wait_for_ui(proc: subprocess.Popen[bytes], url: str, wait: float) -> bool:
    """True once the UI answers; False if standalone exited first (its output says why) or after ``wait`` s."""
    deadline = time.monotonic() + wait
    while proc.poll() is None:
        if healthy(url):
            return True
        if time.monotonic() > deadline:
            print(
                f"make ui: no answer from {url} after {wait:.0f} s, see the output above. Ctrl-C stops Airflow.",
                flush=True,
            )
            return False
        time.sleep(1)
    return False


def banner(url: str, home: Path) -> str:
    password, path = admin_password(home)
    rel = os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    login = f"admin / {password}   (kept in {rel})" if password else f"admin (no password found in {rel})"
    bar = "=" * 100
    return f"""
{bar}
Airflow UI:  {url}
Log in as:   {login}
Then click:  Dags > {DAG_ID} > a run (make demo made one) > task {TASK_ID}:
             its "Notebook" tab shows the output notebook;
             Details > Extra Links > "Output notebook" opens it too.
Ctrl-C stops Airflow.
{bar}
"""


def main() -> int:
    home = Path(os.environ["AIRFLOW_HOME"])
    port = int(os.environ.get("UI_PORT", "8080"))
    wait = float(os.environ.get("UI_WAIT", "180"))
    url = f"http://{HOST}:{port}"
    venv_bin = Path(sys.prefix) / "bin"
    if port_in_use(port):
        print(f"make ui: {HOST}:{port} is already taken; stop what listens there, or: make ui UI_PORT={port + 1}")
        return 1

    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        # Tasks report to the execution API; its default URL assumes localhost:8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
    }
    # standalone gets a session of its own, so a Ctrl-C in the terminal reaches only this script, which passes it on
    # to standalone alone; standalone then stops its components. (Sent to the whole process group, the Ctrl-C would
    # hit the scheduler twice, from the terminal and from standalone, and the scheduler can hang joining its
    # LocalExecutor workers.) The handlers are set before standalone starts: it then gets SIGINT's default action
    # even if this script was started with SIGINT ignored (`make ui &`), and reacts to the Ctrl-C passed on.
    proc: subprocess.Popen[bytes] | None = None
    stop_requested: list[float] = []

    def on_stop(*_: object) -> None:
        now = time.monotonic()
        if not stop_requested:
            stop_requested.append(now)
            if proc is not None:
                proc.send_signal(signal.SIGINT)  # standalone's own Ctrl-C handling
        elif now - stop_requested[0] > 1 and proc is not None:  # a second Ctrl-C, not make's SIGTERM copy
            kill_session(proc, signal.SIGKILL)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_stop)
    proc = subprocess.Popen([str(venv_bin / "airflow"), "standalone"], env=env, start_new_session=True)
    if stop_requested:
        proc.send_signal(signal.SIGINT)

    try:
        if wait_for_ui(proc, url, wait) and not stop_requested:
            print(banner(url, home), flush=True)
        while proc.poll() is None:
            if stop_requested and time.monotonic() - stop_requested[0] > STOP_GRACE:
                kill_session(proc, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        # Whatever standalone left behind in its session (it died, or was killed after the grace).
        if kill_session(proc, signal.SIGTERM):
            for _ in range(50):
                time.sleep(0.2)
                if not kill_session(proc, 0):
                    break
            else:
                kill_session(proc, signal.SIGKILL)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
