"""``run`` and ``rerun``: run a notebook locally exactly as a task would, through the engine's one entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_notebook_provider.cli import storage
from airflow_notebook_provider.cli.progress import KernelStderr, Progress
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.engine import (
    SECRET_ENV_PREFIX,
    Execution,
    ExecutionSettings,
    NotebookExecutionError,
    OutputIsInputError,
    RunHooks,
    kernel_provider,
    load,
    read_run,
)
from airflow_notebook_provider.engine.parameters import validate_name

PROG = "airflow-notebook"


def execute(
    notebook: str,
    output: str,
    parameters: Mapping[str, Any],
    *,
    secret_names: Mapping[str, str],
    args: argparse.Namespace,
    provenance: Mapping[str, Any],
) -> int:
    """Run ``notebook`` into ``output`` as ``NotebookOperator`` does; 0 on success, 1 on failure.

    ``secret_names`` maps each secret parameter to the environment variable its value is read from here.
    """
    if args.cell_timeout is not None and args.cell_timeout <= 0:
        raise CliError(f"--cell-timeout must be a positive number of seconds, got {args.cell_timeout:g}.")
    missing = [var for var in secret_names.values() if var not in os.environ]
    if missing:
        raise CliError(
            f"Secret parameters are read from the environment: set {', '.join(missing)} (the production value "
            "came from an Airflow connection or variable; it is never written into notebooks)."
        )
    secrets = {name: os.environ[var] for name, var in secret_names.items()}
    notebook, output = storage.absolute(notebook), storage.absolute(output)
    settings = ExecutionSettings(kernel_name=args.kernel, language=args.language, kernels=kernel_provider(args.python),
                                 cell_timeout=args.cell_timeout, log_output=args.log_output)
    try:
        with KernelStderr() as kernel_stderr:  # the kernel, started early below, inherits the redirected stderr
            progress = Progress(kernel_stderr.terminal, verbose=args.log_output)
            with Execution(notebook, parameters=parameters, secrets=secrets, settings=settings, log=progress.logger,
                           hooks=RunHooks(on_cell_start=progress.cell_started)) as execution:
                execution.check_output(output)
                data = storage.read(notebook, args.conn_id)
                with progress:
                    execution.run(data, output, save=lambda b: storage.write(output, b, args.conn_id),
                                  provenance=provenance)
    except OutputIsInputError as exc:
        raise CliError(f"{exc} Choose another -o.") from None
    except NotebookExecutionError as exc:
        if exc.kind in ("dead_kernel", "startup") and kernel_stderr.text.strip():
            print(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        print(f"Debug it: {PROG} pull {output}", file=sys.stderr)
        return 1
    if args.log_output and kernel_stderr.text.strip():
        print(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", file=sys.stderr)
    print(output)
    return 0


def _yaml_value(text: str) -> Any:
    """A ``-p`` value read as YAML, as papermill does: ``3`` is an int, ``true`` a bool, ``2024-01-01`` a date."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.parameters_file:
        import yaml

        try:
            loaded = yaml.safe_load(Path(args.parameters_file).read_text())
        except OSError as exc:
            raise CliError(f"Cannot read the parameters file {args.parameters_file}: {exc.strerror or exc}.") from None
        except yaml.YAMLError as exc:
            raise CliError(f"{args.parameters_file} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise CliError(f"{args.parameters_file} must hold a mapping of name: value, got {type(loaded).__name__}.")
        params.update(loaded or {})
    for name, value in args.param or []:
        params[name] = _yaml_value(value)
    secret_names = {validate_name(name): SECRET_ENV_PREFIX + name for name in args.secret or []}
    for name in secret_names:
        params.pop(name, None)
    output = args.output or storage.sibling(args.notebook, ".out")
    return execute(args.notebook, output, params, secret_names=secret_names, args=args,
                   provenance={"command": "run"})


def cmd_rerun(args: argparse.Namespace) -> int:
    nb = load(storage.read(args.output_notebook, args.conn_id), args.output_notebook)
    recorded = read_run(nb)
    notebook = args.notebook or recorded.input_path
    if not notebook:
        raise CliError(f"{args.output_notebook} records no input notebook (metadata.papermill.input_path); pass --notebook.")
    output = args.output or storage.sibling(args.output_notebook, ".rerun")
    rerun_of = {"location": args.output_notebook, "airflow": dict(nb.metadata.get("airflow") or {}) or None}
    return execute(notebook, output, recorded.parameters, secret_names=recorded.secret_parameters, args=args,
                   provenance={"command": "rerun", "rerun_of": rerun_of})
