"""What a run is told (``ExecutionSettings``), what it calls back (``RunHooks``) and what it returns (``RunResult``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nbformat import NotebookNode

from airflow_notebook_provider.engine.kernels.kernel import InheritedEnv, KernelProvider
from airflow_notebook_provider.engine.kernels.local import LocalKernels
from airflow_notebook_provider.engine.writer import WriteKind
from airflow_notebook_provider.notebook.errors import Failure
from airflow_notebook_provider.notebook.outcomes import Asked

DEFAULT_COLLECT_MAX_BYTES = 100 * 2**20


@dataclass
class ExecutionSettings:
    """How to run a notebook; every field has the default a scheduled task wants."""

    kernel_name: str | None = None
    """Kernel to start; default: the notebook's kernelspec, then ``python3``."""
    language: str | None = None
    """Language the parameters are written in; default: the kernelspec's ``language``, then the notebook's
    ``language_info.name``. Set it for a kernel whose kernelspec names no language or a wrong one."""
    cell_timeout: float | None = None
    """Seconds one cell may run; None means no limit."""
    startup_timeout: float = 60.0
    """Seconds the kernel may take to start and answer."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the kernel, on top of this process's environment."""
    cwd: str | None = None
    """Working directory of the kernel; None means this process's (``Execution`` picks one for you)."""
    checkpoint_interval: float = 30.0
    """Least number of seconds between two checkpoint writes while the notebook runs."""
    log_output: bool = True
    """Send the cells' stdout and stderr to the log as they are produced."""
    log_output_limit: int = 100_000
    """Characters of one cell's output that reach the log; the notebook always keeps everything."""
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Secret parameter name -> environment variable holding its value (the value is in ``env``); the injected
    cell reads the variable, so the value is never written into the notebook or its metadata. ``Execution``
    fills it from its ``secrets``."""
    unknown_parameters: Literal["warn", "fail", "ignore"] = "warn"
    """A parameter the notebook's ``parameters`` cell does not declare: logged with the closest declared name
    (``warn``), refused before any cell runs (``fail``), or injected silently (``ignore``)."""
    report_mode: bool = False
    """papermill's ``report_mode``: every cell's source is marked ``jupyter.source_hidden`` in the output."""
    report_formats: Sequence[str] = ()
    """Reports rendered beside the output when the run ends, failed or not: ``html``, ``markdown``, ``pdf``."""
    collect_files: Sequence[str] = ()
    """Glob patterns, relative to the kernel's working folder, of files copied beside the output when the run ends."""
    collect_files_max_bytes: int = DEFAULT_COLLECT_MAX_BYTES
    """Most bytes ``collect_files`` copies in all; files beyond it are left out and listed as such."""
    cell_resources: bool = True
    """Sample each code cell's peak memory and CPU seconds (``engine.resources``); False records durations only."""
    kernels: KernelProvider = field(default_factory=LocalKernels)
    """Where kernels come from: installed kernelspecs by default; the plug point for other kinds of kernel."""
    retry_on: frozenset[str] | None = None
    """Failure kinds that may be retried (``outcomes.check_retry_on``); None: every kind. The output's banner says
    when a failure will not be."""


def kernel_provider(python: str | None = None, inherited: InheritedEnv | None = None) -> KernelProvider:
    """Installed kernelspecs, or with ``python`` the kernels of that interpreter's own environment."""
    if not python:
        return LocalKernels(inherited)
    from airflow_notebook_provider.engine.kernels.environments import PythonEnvironment

    return PythonEnvironment(python, inherited=inherited)


@dataclass(frozen=True)
class KernelReady:
    name: str
    language_info: Mapping[str, Any]
    early: bool
    """True when the kernel was started while the notebook was still being fetched."""


@dataclass
class RunHooks:
    """Callbacks at the points of a run where callers attach publishing, progress and measurements, as nbclient's
    ``on_cell_start`` / ``on_cell_executed``. A hook must be quick; ``on_write`` may run in a worker thread. An
    exception from a hook ends the run like any other error from outside the notebook."""

    on_write: Callable[[WriteKind, int], None] | None = None
    """After each write of the output notebook: ``("first" | "checkpoint" | "final", bytes written)``. The first
    write happens while the kernel boots, before any cell can run."""
    on_kernel_ready: Callable[[KernelReady], None] | None = None
    """The kernel answered and cells are about to run."""
    on_cell_start: Callable[[int, int, NotebookNode], None] | None = None
    """A code cell starts: ``(1-based number among all cells, number of cells, cell)``."""
    on_cell_end: Callable[[int, NotebookNode, Failure | None], None] | None = None
    """A code cell ended: ``(number, cell, the failure it ended the run with, or None)``."""
    on_finish: Callable[[NotebookNode], None] | None = None
    """The run ended (success or failure) and its record is closed: right before the last write, so that what it
    adds to the notebook (reports, collected files) is written too. An exception here is logged, not raised."""


@dataclass
class RunResult:
    nb: NotebookNode
    output_path: str
    writes: int
    stopped_early: bool = False
    """The notebook ended itself early with ``sys.exit(0)`` (not a failure; later cells stay pending)."""
    skipped: Asked | None = None
    """The notebook called ``results.skip(reason)``: the task is skipped (later cells stay pending)."""
