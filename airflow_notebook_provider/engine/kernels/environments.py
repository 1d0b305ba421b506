"""Kernels run by another Python environment's interpreter, with no kernelspec registered where the task runs.

``PythonEnvironment("/opt/envs/report/bin/python")`` is a ``KernelProvider``: the notebook runs on that
interpreter's ipykernel, so it imports that environment's packages, not the worker's. The kernels themselves are
``LocalKernel`` (process group, kill, restart on a port clash, readiness), given this environment's spec.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

from airflow_notebook_provider.engine.kernels.kernel import (
    DEFAULT_KERNEL,
    InheritedEnv,
    KernelProvider,
    KernelSpecInfo,
)
from airflow_notebook_provider.engine.kernels.local import LocalKernel
from airflow_notebook_provider.notebook.errors import NotebookInputError

LAUNCHER_NAME = DEFAULT_KERNEL
"""The name of the environment's own ipykernel (``<python> -m ipykernel_launcher``), as ipykernel names its
kernelspec: what a notebook runs on when no ``kernel_name`` is set."""
UNSET_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
"""Variables of the worker's environment a kernel of another environment does not inherit: they would put the
worker's packages (or its whole Python installation) on the kernel's path."""
PROBE = "import ipykernel, sys; print(sys.prefix)"
PROBE_TIMEOUT = 60.0
_IPYKERNEL_NAMES = frozenset({"python", "python2", "python3"})  # jupyter_client's ``KernelManager.ipykernel``
_BARE_PYTHON = re.compile(r"python[0-9.]*")

logger = logging.getLogger(__name__)


class PythonEnvironment(KernelProvider):
    """The kernels of one Python environment (a virtualenv, a conda env), named by its interpreter.

    How a kernel name resolves:

    - no ``kernel_name`` (whatever kernelspec the notebook names): the environment's ipykernel,
      ``<python> -m ipykernel_launcher -f {connection_file}``, language Python, recorded in the output notebook as
      ``python3``; no kernelspec needs to be registered anywhere;
    - ``kernel_name="python3"``: the same (it is what ipykernel's own ``python3`` kernelspec runs);
    - any other ``kernel_name``: a kernelspec installed in that environment,
      ``<sys.prefix>/share/jupyter/kernels/<name>/kernel.json`` (``<python> -m ipykernel install --sys-prefix
      --name <name>`` puts one there); its ``argv``, ``language`` and ``env`` are used, with a bare ``python``
      as the command meaning this interpreter and ``{prefix}`` that environment's prefix.

    A kernel's spec depends on its name alone, because a kernel started early (``Execution``) is created before
    any name is resolved: a customised ``python3`` kernelspec in the environment is therefore not used (a warning
    says so; install it under another name), and a notebook of another language needs ``kernel_name``.

    ``resolve`` checks the interpreter once (it exists, is executable and imports ipykernel, within
    ``probe_timeout`` seconds) and raises ``NotebookInputError`` with the command that fixes it.

    The kernel does not inherit ``PYTHONPATH``, ``PYTHONHOME`` or ``VIRTUAL_ENV`` from the worker's environment,
    so the worker's packages stay off the kernel's path; the same variables set explicitly, in
    ``ExecutionSettings.env`` or in the kernelspec's ``env``, still apply. ``PATH`` is left as it is.
    """

    def __init__(self, python: str, *, probe_timeout: float = PROBE_TIMEOUT, inherited: InheritedEnv | None = None) -> None:
        self.inherited = inherited or InheritedEnv()
        self.python = _interpreter(python)
        self.probe_timeout = probe_timeout
        self._lock = threading.Lock()
        self._prefix: str | None = None
        self._error: str | None = None
        self._specs: dict[str, KernelSpec] = {}

    def __repr__(self) -> str:
        return f"PythonEnvironment({self.python!r})"

    # -- KernelProvider -----------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        try:
            installed = self.installed()
        except NotebookInputError:
            installed = {}
        return sorted({LAUNCHER_NAME, *installed})

    def resolve(self, name: str, *, explicit: bool) -> KernelSpecInfo:
        self.prefix()  # the interpreter runs and has ipykernel, or NotebookInputError
        if not explicit or name == LAUNCHER_NAME:
            if explicit:
                self._warn_shadowed_launcher()
            return KernelSpecInfo(LAUNCHER_NAME, "python", f"Python ({self.python})")
        spec = self.kernel_spec(name)
        return KernelSpecInfo(name, (spec.language or "python").lower(), spec.display_name or name)

    def create(self, name: str, *, env: Mapping[str, str], cwd: str | None) -> LocalKernel:
        """A kernel for a resolved name; its spec is looked up when it is spawned (``kernel_spec``)."""
        return LocalKernel(name, env=env, cwd=cwd, kernel_specs=_EnvironmentSpecs(self), unset_env=UNSET_ENV,
                           inherited=self.inherited)

    # -- the environment ----------------------------------------------------------------------------------------

    def prefix(self) -> str:
        """The environment's ``sys.prefix``; ``NotebookInputError`` if the interpreter cannot run a kernel.

        The interpreter runs once per ``PythonEnvironment`` (the answer, or the error, is kept).
        """
        with self._lock:
            if self._prefix is None and self._error is None:
                self._prefix, self._error = self._probe()
            if self._error is not None:
                raise NotebookInputError(self._error)
            assert self._prefix is not None
            return self._prefix

    def installed(self) -> dict[str, Path]:
        """Kernelspecs installed in the environment: name -> folder holding its ``kernel.json``."""
        kernels = Path(self.prefix(), "share", "jupyter", "kernels")
        try:
            folders = sorted(kernels.iterdir())
        except OSError:
            return {}
        return {d.name.lower(): d for d in folders if (d / "kernel.json").is_file()}

    def kernel_spec(self, name: str, *, asked_by: str = "`kernel_name`") -> KernelSpec:
        """The spec a kernel named ``name`` runs (see the class docstring); ``NotebookInputError`` if none."""
        if name == LAUNCHER_NAME:
            return self._launcher()
        with self._lock:
            cached = self._specs.get(name)
        if cached is not None:
            return cached
        folder = self.installed().get(name.lower())
        if folder is None:
            raise NotebookInputError(self._missing(name, asked_by))
        try:
            spec = KernelSpec.from_resource_dir(str(folder))
        except (OSError, ValueError, TypeError) as exc:
            raise NotebookInputError(
                f"Kernelspec {name!r} in the Python environment of {self.python} cannot be read "
                f"({folder / 'kernel.json'}: {exc}); fix or reinstall it."
            ) from None
        spec = self._adapt(name, spec)
        with self._lock:
            self._specs[name] = spec
        return spec

    # -- internals ----------------------------------------------------------------------------------------------

    def _probe(self) -> tuple[str | None, str | None]:
        """(prefix, None) if the interpreter imports ipykernel, else (None, the error message)."""
        python = self.python
        fix = _fix(python)
        if not os.path.exists(python):
            where = "does not exist" if os.sep in python else "is not on PATH (give the interpreter's full path)"
            return None, (
                f"Python interpreter {python} {where}, so the notebook cannot run in its environment. "
                f"Create that environment, then install ipykernel in it: {fix}."
            )
        if os.path.isdir(python) or not os.access(python, os.X_OK):
            return None, (
                f"Python interpreter {python} is not an executable file; give the environment's interpreter "
                f"(e.g. <env>/bin/python), with ipykernel installed in it: {fix}."
            )
        try:
            proc = subprocess.run(
                [python, "-c", PROBE], capture_output=True, text=True, timeout=self.probe_timeout,
                env=inherited_env(), stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return None, (
                f"Python interpreter {python} did not import ipykernel within {self.probe_timeout:g} s; check "
                f"that the environment works and has ipykernel: {fix}."
            )
        except OSError as exc:
            return None, f"Python interpreter {python} cannot be run ({exc}); it needs ipykernel: {fix}."
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            errors = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            why = errors[-1] if errors else f"exit code {proc.returncode}"
            return None, (
                f"Python interpreter {python} cannot run a notebook kernel: importing ipykernel failed ({why}). "
                f"Install ipykernel in that environment: {fix} (in an environment without pip, run "
                f"`{shlex.quote(python)} -m ensurepip` first)."
            )
        return lines[-1].strip(), None

    def _launcher(self) -> KernelSpec:
        return KernelSpec(
            argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({self.python})", language="python",
        )

    def _adapt(self, name: str, spec: KernelSpec) -> KernelSpec:
        """The installed spec as this interpreter runs it: jupyter_client would run a bare ``python`` as the
        worker's own ``sys.executable`` and fill ``{prefix}`` with the worker's ``sys.prefix``."""
        prefix = self.prefix()
        argv = [arg.replace("{prefix}", prefix) for arg in spec.argv]
        if argv and _BARE_PYTHON.fullmatch(argv[0]):
            argv[0] = self.python
        # As ``LocalKernel.spawn`` does for the names jupyter_client knows as ipykernel: history in memory.
        if name.lower() not in _IPYKERNEL_NAMES and {"ipykernel", "ipykernel_launcher"} & set(argv):
            argv.append("--HistoryManager.hist_file=:memory:")
        return KernelSpec(**{**spec.to_dict(), "argv": argv}, resource_dir=spec.resource_dir)

    def _missing(self, name: str, asked_by: str) -> str:
        installed = sorted(self.installed())
        where = Path(self.prefix(), "share", "jupyter", "kernels")
        found = f"it has {', '.join(installed)}" if installed else "it has none"
        return (
            f"Kernel {name!r} (asked for by {asked_by}) is not installed in the Python environment of {self.python} "
            f"({where}: {found}). Leave `kernel_name` unset to run that environment's ipykernel, set it to one of "
            f"its kernels, or install it there (e.g. `{shlex.quote(self.python)} -m ipykernel install --sys-prefix "
            f"--name {shlex.quote(name)}`)."
        )

    def _warn_shadowed_launcher(self) -> None:
        """``kernel_name="python3"`` runs the launcher; say so if the environment's python3 kernelspec differs."""
        folder = self.installed().get(LAUNCHER_NAME)
        if folder is None:
            return
        try:
            spec = KernelSpec.from_resource_dir(str(folder))
        except (OSError, ValueError, TypeError):
            return
        if spec.env or self._adapt(LAUNCHER_NAME, spec).argv != self._launcher().argv:
            logger.warning(
                "Kernel %r in %s is customised (%s); %r always runs %s -m ipykernel_launcher. Install the "
                "customised kernelspec under another name to use it.",
                LAUNCHER_NAME, folder, spec.to_json(), LAUNCHER_NAME, self.python,
            )


class _EnvironmentSpecs(KernelSpecManager):
    """What the kernel manager asks for a kernel's spec: the environment's, never one installed on the worker."""

    def __init__(self, environment: PythonEnvironment) -> None:
        super().__init__(ensure_native_kernel=False)
        self.environment = environment

    def find_kernel_specs(self) -> dict[str, str]:
        return {name: str(folder) for name, folder in self.environment.installed().items()}

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self.environment.kernel_spec(kernel_name)


def inherited_env() -> dict[str, str]:
    """The worker's environment without ``UNSET_ENV``: what a kernel of another environment starts from."""
    return {k: v for k, v in os.environ.items() if k not in UNSET_ENV}


def _interpreter(python: str) -> str:
    """An absolute path (a bare name is looked up on ``PATH``), symlinks kept: a virtualenv's ``bin/python`` is a
    symlink to the base interpreter, and only the link's path makes Python find the virtualenv."""
    python = os.path.expanduser(python)
    if os.sep not in python:
        return shutil.which(python) or python
    return os.path.abspath(python)


def _fix(python: str) -> str:
    return f"`{shlex.quote(python)} -m pip install ipykernel`"

