"""The operator's arguments, checked and turned into the run's settings: the non-templated ones when the DAG is
parsed (a typo fails there, not at 3 a.m.), the templated ones once rendered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_notebook_provider import config
from airflow_notebook_provider.engine import ExecutionSettings, KernelProvider, NotebookConfigError
from airflow_notebook_provider.engine.inputs import check_input_patterns
from airflow_notebook_provider.engine.publish import check_formats, check_patterns
from airflow_notebook_provider.notebook.outcomes import check_retry_on

if TYPE_CHECKING:
    from airflow_notebook_provider.operators.notebook import NotebookOperator


def check_arguments(op: NotebookOperator) -> None:
    """The arguments that are not templated, checked when the DAG is parsed: a typo fails there, not at run time."""
    if op.unknown_parameters not in ("warn", "fail", "ignore"):
        raise NotebookConfigError(f"`unknown_parameters` must be 'warn', 'fail' or 'ignore', got {op.unknown_parameters!r}")
    seconds("cell_timeout", op.cell_timeout, allow_none=True)
    seconds("startup_timeout", op.startup_timeout, allow_none=False)
    seconds("checkpoint_interval", op.checkpoint_interval, allow_none=True)
    check_input_patterns(op.input_files, skip_templated=True)  # a templated one once rendered
    check_retry_on(op.retry_on, skip_templated=True)
    for name in ("log_output_limit", "collect_files_max_bytes", "input_files_max_bytes"):
        value = getattr(op, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise NotebookConfigError(f"`{name}` must be a whole number (characters or bytes), got {value!r}")
    if not all(isinstance(n, str) for n in op.secret_parameters):
        raise NotebookConfigError(f"`secret_parameters` must be a list of parameter names, got {op.secret_parameters!r}")


def execution_settings(op: NotebookOperator, kernels: KernelProvider) -> ExecutionSettings:
    """The run's settings from the rendered arguments; ``NotebookConfigError`` naming a wrong one and the fix."""
    if not isinstance(op.notebook, str) or not op.notebook.strip():
        raise NotebookConfigError(f"`notebook` must be a path or URL of an .ipynb file, got {op.notebook!r}")
    if op.output_notebook is not None and (not isinstance(op.output_notebook, str) or not op.output_notebook.strip()):
        raise NotebookConfigError(f"`output_notebook` must be a path or URL, or None for the default, got {op.output_notebook!r}")
    for name in ("kernel_name", "language", "python", "kernel_conn_id"):
        value = getattr(op, name)
        if value is not None and not isinstance(value, str):
            raise NotebookConfigError(f"`{name}` must be a string or None, got {value!r}")
    if not isinstance(op.env, Mapping) or not all(isinstance(k, str) for k in op.env):
        raise NotebookConfigError(f"`env` must be a dict of variable name to value, got {op.env!r}")
    interval = op.checkpoint_interval
    if interval is None:
        interval = config.get_float("checkpoint_interval")
    return ExecutionSettings(
        kernel_name=op.kernel_name or None,
        language=op.language or None,
        unknown_parameters=op.unknown_parameters,  # type: ignore[arg-type]  # checked in __init__
        kernels=kernels,
        cell_timeout=seconds("cell_timeout", op.cell_timeout, allow_none=True),
        startup_timeout=seconds("startup_timeout", op.startup_timeout, allow_none=False) or 60.0,
        env={k: str(v) for k, v in op.env.items()},
        cwd=str(op.cwd) if op.cwd else None,
        checkpoint_interval=seconds("checkpoint_interval", interval, allow_none=False) or 30.0,
        log_output=bool(op.log_output),
        log_output_limit=int(op.log_output_limit),
        report_mode=bool(op.report_mode),
        cell_resources=config.get_switch("cell_resources"),
        report_formats=check_formats(op.report_formats),
        collect_files=check_patterns(op.collect_files),
        collect_files_max_bytes=int(op.collect_files_max_bytes),
        retry_on=check_retry_on(op.retry_on),
    )


def seconds(name: str, value: Any, *, allow_none: bool) -> float | None:
    """A positive number of seconds (None where allowed), as a float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise NotebookConfigError(f"`{name}` must be a positive number of seconds{' or None' if allow_none else ''}, got {value!r}")
    return float(value)
