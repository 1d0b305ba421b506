"""Start and stop a real Jupyter Enterprise Gateway (PyPI, in its own virtualenv made by `make gateway`) on
127.0.0.1 with token auth, in local-process mode, in a folder of its own; used by tests/gateway and bench/gateway.py.
``assert_nothing_left``: the check run after every gateway test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import free_port, kernel_processes, stop_group
from tests.processes import processes_matching, wait_for

REPO = Path(__file__).resolve().parents[2]
GATEWAY_BIN = Path(os.environ.get("ANP_GATEWAY_VENV", REPO / ".venv-gateway")) / "bin" / "jupyter-enterprisegateway"
TOKEN = "gw-test-token"
WORKER_KERNEL = "worker-python"
"""A kernelspec the gateway offers that runs the worker's virtualenv (with scrapbook and this package), as a
gateway image with the notebook's packages would."""


@dataclass
class Gateway:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    folder: Path
    log: Path

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"token {self.token}"}, timeout=10, **kw)

    def kernels(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/api/kernels")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def kernel_processes(self) -> list[str]:
        """Kernel processes the gateway started (their connection files are in its runtime folder)."""
        return processes_matching(str(self.folder / "runtime"))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_group(self.proc, sig, grace=20.0)
        # Kernels are session leaders of their own: a gateway killed hard leaves them, so end them here too.
        for line in self.kernel_processes():
            try:
                os.killpg(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def connection_json(self, **extra: Any) -> str:
        return json.dumps({"conn_type": "jupyter_gateway", "host": self.url, "password": self.token, "extra": extra})


def start_gateway(folder: Path, *, token: str = TOKEN, port: int | None = None) -> Gateway:
    if not GATEWAY_BIN.exists():
        raise RuntimeError(f"{GATEWAY_BIN} is missing: run `make gateway` (make test and make bench do it)")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    share = folder / "share" / "jupyter" / "kernels" / WORKER_KERNEL
    share.mkdir(parents=True, exist_ok=True)
    (share / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Worker's Python", "language": "python",
    }))
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "ANP_", "VIRTUAL_ENV", "PYTHONPATH", "JUPYTER"))
    }
    env.update({
        "EG_AUTH_TOKEN": token, "EG_UNAUTHORIZED_USERS": "", "EG_LIST_KERNELS": "True",
        "JUPYTER_PATH": str(folder / "share" / "jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_DATA_DIR": str(folder / "data"), "HOME": str(folder), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        # Enterprise Gateway gives a kernel only these of its own variables (a UTF-8 locale for R's text).
        "EG_INHERITED_ENVS": "PATH,LANG,LC_ALL",
    })
    log = folder / "gateway.log"
    proc = subprocess.Popen(
        [str(GATEWAY_BIN), "--ip=127.0.0.1", f"--port={port}", "--port_retries=0"],
        cwd=folder, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    gw = Gateway(f"http://127.0.0.1:{port}", token, proc, folder, log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited: {log.read_text()[-3000:]}")
        try:
            if gw.api("GET", "/api/kernelspecs").status_code == 200:
                return gw
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            gw.stop()
            raise RuntimeError(f"the gateway did not answer within 60 s: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def assert_nothing_left(gw: Gateway) -> None:
    """No kernel left on the gateway (``GET /api/kernels``), no kernel process left on the gateway's side (their
    command lines carry the gateway's runtime folder) and none on the worker."""
    wait_for(lambda: gw.proc.poll() is not None or not gw.kernels(), 15, "the gateway to hold no kernel")
    wait_for(lambda: not gw.kernel_processes(), 15, "no kernel process on the gateway's side")
    wait_for(lambda: not kernel_processes(), 15, "no kernel process on the worker")
