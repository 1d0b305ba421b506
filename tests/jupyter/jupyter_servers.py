"""A real Jupyter server from ``.venv-jupyter`` (``make jupyter``) with this provider's extension, on 127.0.0.1 with
a token, in its own process group, and an HTTP client that talks to it as JupyterLab in a browser does: logged in
by cookie, with the ``_xsrf`` cookie echoed in ``X-XSRFToken`` on every POST."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
JUPYTER_VENV = REPO / ".venv-jupyter"
JUPYTER = JUPYTER_VENV / "bin" / "jupyter"
ROUTE = "airflow-notebook/api"


@dataclass
class Jupyter:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    @contextmanager
    def browser(self) -> Iterator[httpx.Client]:
        """A client logged in as the browser is after opening ``/lab?token=…``: the login and ``_xsrf`` cookies."""
        with httpx.Client(base_url=self.url, timeout=180, follow_redirects=True) as client:
            client.get("/lab", params={"token": self.token}).raise_for_status()
            assert client.cookies.get("_xsrf"), f"no _xsrf cookie after logging in: {dict(client.cookies)}"
            yield client

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def api_get(client: httpx.Client, name: str, **params: Any) -> httpx.Response:
    return client.get(f"/{ROUTE}/{name}", params=params)


def api_post(client: httpx.Client, name: str, body: dict[str, Any], xsrf: bool = True) -> httpx.Response:
    headers = {"X-XSRFToken": client.cookies.get("_xsrf") or ""} if xsrf else {}
    return client.post(f"/{ROUTE}/{name}", json=body, headers=headers)


@contextmanager
def jupyter_server(root: Path, home: Path, env: dict[str, str], timeout: float = 120) -> Iterator[Jupyter]:
    """``jupyter server`` on ``root`` with the extension enabled, its config, data and runtime folders under
    ``home`` (nothing of the user's), ``env`` added; stopped by process group at the end."""
    port, token = free_port(), secrets.token_hex(16)
    for sub in ("config", "data", "runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    enabled = {"ServerApp": {"jpserver_extensions": {"airflow_notebook_provider.jupyter": True}}}
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps(enabled))
    log = home / "jupyter.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "JUPYTER"))}
    full_env.update({"JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
                     "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_PLATFORM_DIRS": "1", **env})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(JUPYTER), "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
             "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
            env=full_env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Jupyter(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {proc.returncode}:\n{server.tail()}")
            try:
                if httpx.get(f"{server.url}/api/status", params={"token": token}, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter server not up within {timeout:.0f} s:\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
