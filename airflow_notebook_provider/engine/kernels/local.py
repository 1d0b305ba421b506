"""The local kernel: a kernelspec installed where the run happens, started as a process of its own (or forked by
the worker's kernel launcher) in its own process group, so that one SIGKILL of the group ends it all.

``LocalKernels`` resolves installed kernelspecs; ``LocalKernel`` manages one kernel process: spawn, liveness, kill,
a shutdown with a short grace period, and how the process ended. ``environments.PythonEnvironment`` runs
``LocalKernel`` on another Python environment's interpreter. The abstractions are in ``kernel.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection, Mapping
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine.kernels.forked import ForkedKernelProcess, LaunchingProvisioner
from airflow_notebook_provider.engine.kernels.kernel import (
    InheritedEnv,
    Kernel,
    KernelProvider,
    KernelSpecInfo,
    describe_exit,
)
from airflow_notebook_provider.launcher import server
from airflow_notebook_provider.launcher.server import kill_group as kill_process_group
from airflow_notebook_provider.notebook.errors import NotebookInputError

# How often a kernel that was asked to shut down is checked for having left, and how long it has.
_EXIT_POLL = 0.01
EXIT_GRACE = 1.0


class LocalKernels(KernelProvider):
    """Kernelspecs installed where the run happens (``jupyter kernelspec list``); ``inherited`` says which of this
    process's environment variables the kernels get."""

    def __init__(self, inherited: InheritedEnv | None = None) -> None:
        self.inherited = inherited or InheritedEnv()

    def names(self) -> list[str]:
        return sorted(KernelSpecManager().find_kernel_specs())

    def resolve(self, name: str, *, explicit: bool) -> KernelSpecInfo:
        asked_by = "`kernel_name`" if explicit else "the notebook"
        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            raise NotebookInputError(
                f"Kernel {name!r} (asked for by {asked_by}) is not installed where the task runs. Installed kernels: "
                f"{', '.join(self.names())}. Install it (e.g. `python -m ipykernel install --name NAME`) or set "
                "`kernel_name`."
            ) from None
        return KernelSpecInfo(name, (spec.language or "python").lower(), spec.display_name or name)

    def create(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> LocalKernel:
        return LocalKernel(name, env=env, cwd=cwd, inherited=self.inherited)


class LocalKernel(Kernel):
    """A kernelspec's process on this machine, a session leader, so that one SIGKILL of its group ends it all.

    By default the kernelspec is the one installed under ``name`` and the kernel inherits this process's
    environment, plus ``env``. Two optional arguments serve providers whose kernels are not installed here
    (``PythonEnvironment``): ``kernel_specs``, a jupyter_client ``KernelSpecManager`` that the kernel manager asks
    for ``name``'s spec (looked up when the kernel is spawned, not before), and ``unset_env``, variables of this
    process's environment that the kernel does not inherit (``env`` and the spec's own ``env`` still apply).
    """

    def __init__(self, name: str, *, env: Mapping[str, str], cwd: str | None,
                 kernel_specs: KernelSpecManager | None = None, unset_env: Collection[str] = (),
                 inherited: InheritedEnv | None = None) -> None:
        self.inherited = inherited or InheritedEnv()
        self.name = name
        self.env = dict(env)
        self.cwd = cwd
        self.kernel_specs = kernel_specs
        self.unset_env = frozenset(unset_env)
        self.pid: int | None = None
        self.km = self._manager()

    def _manager(self) -> AsyncKernelManager:
        if self.kernel_specs is None:
            return AsyncKernelManager(kernel_name=self.name)
        return AsyncKernelManager(kernel_name=self.name, kernel_spec_manager=self.kernel_specs)

    @property
    def spawned(self) -> bool:
        return self.pid is not None

    async def spawn(self) -> None:
        # ipykernel's history in memory: concurrent kernels sharing one SQLite history file lock each other out.
        args = ["--HistoryManager.hist_file=:memory:"] if getattr(self.km, "ipykernel", False) else []
        kwargs: dict[str, Any] = {"cwd": self.cwd} if self.cwd else {}
        inherited = self.inherited.apply(os.environ, {*self.unset_env, server.ENV_VAR})
        socket_path = os.environ.get(server.ENV_VAR)
        if socket_path:
            km = self.km
            _compat.preset_provisioner(km, lambda kernel_id: LaunchingProvisioner(
                kernel_id=kernel_id, kernel_spec=km.kernel_spec, parent=km, socket_path=socket_path,
            ))
        await ensure_async(self.km.start_kernel(extra_arguments=args, env={**inherited, **self.env}, **kwargs))
        proc = _compat.kernel_process(self.km)
        self.pid = getattr(proc, "pid", None) or -1

    @property
    def how_started(self) -> str:
        forked = isinstance(_compat.kernel_process(self.km), ForkedKernelProcess)
        return "forked by the worker's kernel launcher" if forked else ""

    async def is_alive(self) -> bool:
        return bool(await ensure_async(self.km.is_alive()))

    def kill(self, reason: str | None = None) -> None:
        if reason and not self.stop_reason:
            self.stop_reason = reason
        if self.pid is not None and self.pid > 0:
            kill_process_group(self.pid)

    async def shutdown(self, *, now: bool) -> None:
        """As ``Kernel.shutdown``, but a kernel asked to leave is watched every 10 ms (jupyter_client looks every
        100 ms: 50 ms of each short task) and killed if it has not left ``EXIT_GRACE`` seconds after the request:
        ipykernel 7 sometimes hangs on its way out, after its shutdown reply (its exit handler stops the IOPub
        thread, then waits for the control thread, which may still be flushing through IOPub), and jupyter_client
        would wait 2.5 s, send SIGTERM and wait again."""
        if not now and self.spawned:
            try:
                if await self.is_alive():
                    await ensure_async(self.km.request_shutdown())
                    deadline = time.monotonic() + EXIT_GRACE
                    while await self.is_alive() and time.monotonic() < deadline:
                        await asyncio.sleep(_EXIT_POLL)
                    now = await self.is_alive()
            except Exception as exc:  # noqa: BLE001 - the shutdown below kills it whatever happened here
                logging.getLogger(__name__).debug("Kernel shutdown request failed (%s)", exc)
        await super().shutdown(now=now)  # a kernel still there is killed; resources released either way

    def discard(self) -> None:
        super().discard()
        proc = _compat.kernel_process(self.km)
        if proc is not None:
            try:
                proc.wait(timeout=5)  # reap it: no zombie left behind by a kernel nobody used
            except Exception:  # noqa: BLE001 - not ours to reap after all: the SIGKILL is what matters
                pass

    def exit_reason(self) -> str:
        proc = _compat.kernel_process(self.km)
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=2)
            except Exception:  # noqa: BLE001 - still running or not ours to wait for: say what we know
                code = None
        return describe_exit(code)

    def reset(self) -> None:
        self.pid = None
        self.km = self._manager()
