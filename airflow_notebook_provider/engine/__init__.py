"""The notebook engine: load, parameterize, execute, record and save a notebook, with no Airflow import.

The Airflow hook and operator, and the command-line tool, are thin layers over this package.
"""

from __future__ import annotations

from airflow_notebook_provider.engine.errors import (
    NotebookError,
    NotebookExecutionError,
    NotebookInputError,
    NotebookStorageError,
    ParameterError,
)
from airflow_notebook_provider.engine.notebook import dumps, load, sha256
from airflow_notebook_provider.engine.parameters import prepare as prepare_parameters
from airflow_notebook_provider.engine.runner import EarlyKernel, ExecutionSettings, NotebookRun, RunResult

__all__ = [
    "EarlyKernel",
    "ExecutionSettings",
    "NotebookError",
    "NotebookExecutionError",
    "NotebookInputError",
    "NotebookRun",
    "NotebookStorageError",
    "ParameterError",
    "RunResult",
    "dumps",
    "load",
    "prepare_parameters",
    "sha256",
]
