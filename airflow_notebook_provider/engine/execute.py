"""The one entry point of a run, for the operator, the CLI and the benchmark alike (papermill's
``execute_notebook``): secrets, working folder, provenance, refusing output == input, and the early kernel.

``Execution`` is that entry point split in two, so that the kernel boots while the caller fetches the notebook::

    with Execution(input_path, parameters=..., secrets=..., settings=...) as execution:  # the kernel starts
        data = read(input_path)                                                           # the caller's storage
        result = execution.run(data, output_path, save=write)

``execute_notebook`` does both at once, for a caller that already holds the bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from airflow_notebook_provider import __version__
from airflow_notebook_provider.engine import storage
from airflow_notebook_provider.engine.kernels.kernel import DEFAULT_KERNEL, EarlyKernel
from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.engine.publish import Publisher, check_formats, check_patterns
from airflow_notebook_provider.engine.runner import NotebookRun
from airflow_notebook_provider.engine.settings import ExecutionSettings, RunHooks, RunResult
from airflow_notebook_provider.notebook import textformats
from airflow_notebook_provider.notebook.errors import NotebookConfigError, OutputIsInputError, ParameterError
from airflow_notebook_provider.notebook.load import load, sha256
from airflow_notebook_provider.notebook.parameters import prepare, validate_name
from airflow_notebook_provider.notebook.record import PROVENANCE_KEY, SECRET_PARAMETERS_KEY

SECRET_ENV_PREFIX = "NOTEBOOK_SECRET_"


class Execution:
    """One run of one notebook, from its settings to its last write; a context manager that owns the early kernel
    and a temporary working folder, and removes both however the run ends.

    :param input_path: The notebook's location (a path or URL), for the record, the default working folder and
        the output == input check; the caller reads the bytes.
    :param parameters: Values injected after the ``parameters`` cell; validated here (``ParameterError``).
    :param secrets: Secret parameter name -> value (a string). The kernel gets each value in the environment
        variable ``NOTEBOOK_SECRET_<name>`` and the injected cell reads it: the value is never written into the
        notebook or its metadata, which records only the variable's name.
    :param settings: How to run; ``cwd`` None means the notebook's folder for a local notebook (as Jupyter
        does), else a temporary folder removed afterwards.
    :param early_kernel: Start the kernel (``settings.kernel_name``, else ``python3``) on entering, so that it
        boots while the caller fetches the notebook.
    """

    def __init__(
        self,
        input_path: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
        settings: ExecutionSettings | None = None,
        log: Log | None = None,
        hooks: RunHooks | None = None,
        early_kernel: bool = True,
    ) -> None:
        self.input_path = input_path
        self.parameters = prepare(parameters)
        self.settings = dataclasses.replace(settings) if settings else ExecutionSettings()  # filled in below
        self.settings.report_formats = check_formats(self.settings.report_formats)
        self.settings.collect_files = check_patterns(self.settings.collect_files)
        self.log: Log = log or logging.getLogger(__name__)
        self.hooks = hooks or RunHooks()
        self._early_kernel = early_kernel
        self._secret_env = _secret_env(secrets or {}, self.settings.kernels.env_prefix)
        self.settings.env = {**self.settings.env, **dict(self._secret_env.values())}
        self.settings.secret_env = {name: var for name, (var, _) in self._secret_env.items()}
        self._tmp_cwd: str | None = None
        self._early: EarlyKernel | None = None
        self._run: NotebookRun | None = None
        self._stop_reason: str | None = None
        self.publisher: Publisher | None = None
        """The run's reports and collected files (``reports``, ``files``), once ``run`` has started."""

    def __enter__(self) -> Execution:
        s = self.settings
        if s.cwd is None and s.kernels.local_files:  # a remote kernel's folder is the gateway's (or ``cwd``)
            if storage.is_url(self.input_path):
                s.cwd = self._tmp_cwd = tempfile.mkdtemp(prefix="notebook-run-")
            else:
                s.cwd = str(storage.local_path(self.input_path).parent)
        # A remote kernel is started early only when its name is known: guessing may cost a gateway a whole pod.
        if self._early_kernel and (s.kernel_name or s.kernels.local_files):
            guess = s.kernel_name or textformats.default_kernel(self.input_path) or DEFAULT_KERNEL  # .R: ir
            self._early = EarlyKernel(s.kernels, guess, env=s.env, cwd=s.cwd, log=self.log)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._run = None
        if self._early is not None:
            self._early.discard()  # unless the run took it
        if self._tmp_cwd:
            shutil.rmtree(self._tmp_cwd, ignore_errors=True)

    def run(
        self,
        data: bytes,
        output_path: str,
        *,
        save: Callable[[bytes], None],
        save_file: Callable[[str, bytes], None] | None = None,
        metadata: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run the notebook ``data`` into ``output_path`` (written through ``save``); see ``NotebookRun.run``.

        ``save_file(location, data)`` writes the reports and collected files the settings ask for, beside the
        output, when the run ends (before the notebook's last write, which lists them). ``metadata`` goes into the
        notebook's metadata as it is (the operator's ``airflow`` identity); ``provenance`` is merged into
        ``metadata.airflow_notebook`` (a command name, extra ``versions``).
        """
        self.check_output(output_path)
        nb = load(data, self.input_path)
        run = NotebookRun(
            nb, input_path=self.input_path, output_path=output_path, save=save, parameters=self.parameters,
            settings=self.settings, log=self.log, hooks=self._publishing(output_path, save_file),
            metadata={**(metadata or {}), PROVENANCE_KEY: self._provenance(data, provenance or {})},
        )
        self._run = run
        if self._stop_reason:
            run.stop(self._stop_reason)
        return run.run(early=self._early)

    def _publishing(self, output_path: str, save_file: Callable[[str, bytes], None] | None) -> RunHooks:
        """The hooks, with the reports and files the settings ask for made before the caller's ``on_finish``."""
        s = self.settings
        if not (s.report_formats or s.collect_files):
            return self.hooks
        if save_file is None:
            raise NotebookConfigError("Reports and collected files need somewhere to be written: pass `save_file`.")
        publisher = self.publisher = Publisher(
            output_path, save=save_file, formats=list(s.report_formats), report_mode=s.report_mode,
            patterns=list(s.collect_files), max_bytes=s.collect_files_max_bytes,
            cwd=s.cwd if s.kernels.local_files else None,
        )
        also = self.hooks.on_finish

        def on_finish(nb: Any) -> None:
            publisher(nb, self.log)
            if also is not None:
                also(nb)

        return dataclasses.replace(self.hooks, on_finish=on_finish)

    def check_output(self, output_path: str) -> None:
        """Refuse an output location that is the input notebook (``OutputIsInputError``): it would be overwritten."""
        if storage.same_location(output_path, self.input_path):
            raise OutputIsInputError(
                f"The output notebook {output_path} is the input notebook; the template would be overwritten."
            )

    def stop(self, reason: str) -> None:
        """Stop the run from outside (``on_kill``, a signal handler): kill the kernel; ``run`` records the stop."""
        self._stop_reason = reason
        if self._run is not None:
            self._run.stop(reason)

    def _provenance(self, data: bytes, extra: Mapping[str, Any]) -> dict[str, Any]:
        """Where and with what the run happened: the notebook's sha256, host, process, versions, secret names."""
        import jupyter_client
        import nbclient
        import nbformat

        versions = {
            "airflow_notebook_provider": __version__,
            "nbclient": nbclient.__version__,
            "nbformat": nbformat.__version__,
            "jupyter_client": jupyter_client.__version__,
            "python": platform.python_version(),
            **extra.get("versions", {}),
        }
        out: dict[str, Any] = {
            "input_sha256": sha256(data), "hostname": socket.gethostname(), "pid": os.getpid(),
            **{k: v for k, v in extra.items() if k != "versions"}, "versions": versions,
        }
        if self.settings.secret_env:
            out[SECRET_PARAMETERS_KEY] = dict(self.settings.secret_env)
        return out


def execute_notebook(
    data: bytes,
    *,
    input_path: str,
    output_path: str,
    save: Callable[[bytes], None],
    parameters: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    settings: ExecutionSettings | None = None,
    log: Log | None = None,
    hooks: RunHooks | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run notebook ``data`` into ``output_path`` in one call (no early kernel: the bytes are already here)."""
    with Execution(input_path, parameters=parameters, secrets=secrets, settings=settings, log=log, hooks=hooks,
                   early_kernel=False) as execution:
        return execution.run(data, output_path, save=save, provenance=provenance)


def _secret_env(secrets: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[str, str]]:
    """Secret name -> (environment variable, value), each name a valid identifier and each value a string; the
    variable is ``<prefix>NOTEBOOK_SECRET_<name>`` (``KERNEL_NOTEBOOK_SECRET_<name>`` for a gateway kernel)."""
    out: dict[str, tuple[str, str]] = {}
    for name, value in secrets.items():
        validate_name(name)
        if not isinstance(value, str):
            raise ParameterError(
                f"Secret parameter {name!r} must be a string (it reaches the kernel as an environment variable), "
                f"got {type(value).__name__}; pass str(value) or a templated connection/variable field."
            )
        out[name] = (prefix + SECRET_ENV_PREFIX + name, value)
    return out
