"""The notebook engine: load, parameterize, execute, record and save a notebook, with no Airflow import.

``execute.py`` is the entry point (``Execution``, ``execute_notebook``); the Airflow operator and the command-line
tool are thin layers over it. Inside: ``runner.py`` runs the cells, ``kernels/`` owns kernels, ``writer.py``
writes the output, ``record.py`` writes and reads the run's record in the notebook.
"""

from __future__ import annotations

from airflow_notebook_provider.engine.execute import SECRET_ENV_PREFIX, Execution, execute_notebook
from airflow_notebook_provider.engine.kernels.kernel import EarlyKernel, Kernel, KernelProvider
from airflow_notebook_provider.engine.kernels.local import LocalKernel, LocalKernels
from airflow_notebook_provider.engine.runner import NotebookRun
from airflow_notebook_provider.engine.settings import (
    ExecutionSettings,
    KernelReady,
    RunHooks,
    RunResult,
    kernel_provider,
)
from airflow_notebook_provider.notebook.errors import (
    Failure,
    NotebookConfigError,
    NotebookError,
    NotebookExecutionError,
    NotebookInputError,
    NotebookStorageError,
    OutputIsInputError,
    ParameterError,
)
from airflow_notebook_provider.notebook.load import dumps, load, sha256
from airflow_notebook_provider.notebook.parameters import prepare as prepare_parameters
from airflow_notebook_provider.notebook.record import RunSummary, read_run

__all__ = [
    "SECRET_ENV_PREFIX",
    "EarlyKernel",
    "Execution",
    "ExecutionSettings",
    "Failure",
    "Kernel",
    "KernelProvider",
    "KernelReady",
    "LocalKernel",
    "LocalKernels",
    "NotebookConfigError",
    "NotebookError",
    "NotebookExecutionError",
    "NotebookInputError",
    "NotebookRun",
    "NotebookStorageError",
    "OutputIsInputError",
    "ParameterError",
    "RunHooks",
    "RunResult",
    "RunSummary",
    "dumps",
    "execute_notebook",
    "kernel_provider",
    "load",
    "prepare_parameters",
    "read_run",
    "sha256",
]
