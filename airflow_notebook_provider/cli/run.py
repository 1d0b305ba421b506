"""``run`` and ``rerun``: run a notebook locally exactly as a task would, through the engine's one entry point."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_notebook_provider.cli import storage
from airflow_notebook_provider.cli.origin import rerun_lines
from airflow_notebook_provider.cli.progress import KernelStderr, Progress
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.cli.untrusted import (
    confirm,
    echo,
    read_secrets,
    recorded_input,
    recorded_secret_names,
    secret_variable,
)
from airflow_notebook_provider.engine import (
    Execution,
    ExecutionSettings,
    NotebookError,
    NotebookExecutionError,
    OutputIsInputError,
    RunHooks,
    RunSummary,
    kernel_provider,
    load,
    read_run,
    sha256,
)
from airflow_notebook_provider.engine.storage import is_url, local_path

PROG = "airflow-notebook"
EXIT_SKIPPED, EXIT_NOT_RETRIED = 3, 4
EXIT_CODES = ("exit status: 0 the notebook ran (or ended early with sys.exit(0)); 1 it failed (a cell raised, timed "
              "out, lost its kernel...); 2 bad input or arguments; 3 the notebook skipped itself (results.skip); 4 it "
              "failed itself without retry (results.fail(..., retry=False))")


def execute(
    notebook: str,
    output: str,
    parameters: Mapping[str, Any],
    *,
    secrets: Mapping[str, str],
    args: argparse.Namespace,
    provenance: Mapping[str, Any],
    data: bytes | None = None,
) -> int:
    """Run ``notebook`` into ``output`` as ``NotebookOperator`` does; the exit status (``EXIT_CODES``).

    ``secrets`` maps each secret parameter to its value (``untrusted.read_secrets``); ``data`` is the notebook when
    the caller has read it already (``rerun`` shows it before asking).
    """
    if args.cell_timeout is not None and args.cell_timeout <= 0:
        raise CliError(f"--cell-timeout must be a positive number of seconds, got {args.cell_timeout:g}.")
    notebook, output = storage.absolute(notebook), storage.absolute(output)
    settings = ExecutionSettings(kernel_name=args.kernel, language=args.language, kernels=kernel_provider(args.python),
                                 cell_timeout=args.cell_timeout, log_output=args.log_output,
                                 report_mode=args.report_mode, report_formats=args.report or (),
                                 collect_files=args.collect or ())
    published: list[str] = []
    try:
        with KernelStderr() as kernel_stderr:  # the kernel, started early below, inherits the redirected stderr
            progress = Progress(kernel_stderr.terminal, verbose=args.log_output)
            with Execution(notebook, parameters=parameters, secrets=secrets, settings=settings, log=progress.logger,
                           hooks=RunHooks(on_cell_start=progress.cell_started)) as execution:
                execution.check_output(output)
                if data is None:
                    data = storage.read(notebook, args.conn_id)
                with progress:
                    try:
                        result = execution.run(data, output, save=lambda b: storage.write(output, b, args.conn_id),
                                      save_file=lambda location, b: storage.write(location, b, args.conn_id),
                                      provenance=provenance)
                    finally:
                        if execution.publisher is not None:
                            published += [*execution.publisher.reports.values(), *execution.publisher.files]
    except OutputIsInputError as exc:
        raise CliError(f"{exc} Choose another -o.") from None
    except NotebookExecutionError as exc:
        if exc.kind in ("dead_kernel", "startup") and kernel_stderr.text.strip():
            echo(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", err=True)
        echo(exc, err=True)
        _echo_published(published, err=True)
        echo(f"Debug it: {PROG} pull {output}", err=True)
        return EXIT_NOT_RETRIED if exc.failure.retry is False else 1
    if args.log_output and kernel_stderr.text.strip():
        echo(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", err=True)
    echo(output)
    _echo_published(published, err=False)
    if (skipped := result.skipped) is not None:
        echo(f"The notebook skipped the run at cell {skipped.code_cell_number}: {skipped.reason}", err=True)
        return EXIT_SKIPPED
    return 0


def _echo_published(locations: list[str], *, err: bool) -> None:
    """The reports and collected files, one per line after the output notebook (stderr when the run failed)."""
    for location in locations:
        echo(location, err=err)


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
    secrets = read_secrets(args.secret or [])
    for name in secrets:
        params.pop(name, None)
    output = args.output or storage.sibling(args.notebook, ".out")
    return execute(args.notebook, output, params, secrets=secrets, args=args, provenance={"command": "run"})


def cmd_rerun(args: argparse.Namespace) -> int:
    """Run the input an output notebook records, with its parameters, after showing it and asking.

    The output notebook is data: its input location is run only when it is an absolute local path (else
    ``--notebook`` must name it), and its secrets are read only from ``NOTEBOOK_SECRET_<name>``.
    """
    source = args.output_notebook
    nb = load(storage.read(source, args.conn_id), source)
    recorded = read_run(nb)
    notebook = args.notebook or recorded_input(recorded.input_path, source)
    secrets = read_secrets(recorded_secret_names(recorded.secret_parameters, source))
    output = args.output or storage.sibling(source, ".rerun")
    data = storage.read(notebook, args.conn_id)
    confirm(_plan(args, nb, recorded, notebook, data, output) + rerun_lines(nb, notebook, data), yes=args.yes)
    rerun_of = {"location": source, "airflow": dict(nb.metadata.get("airflow") or {}) or None}
    return execute(notebook, output, recorded.parameters, secrets=secrets, args=args, data=data,
                   provenance={"command": "rerun", "rerun_of": rerun_of})


def _plan(args: argparse.Namespace, nb: Any, recorded: RunSummary, notebook: str, data: bytes, output: str) -> list[str]:
    """What rerun is about to do, taken from the output notebook: shown before asking (and with --yes)."""
    def kernel_of(node: Any) -> str | None:
        spec = node.metadata.get("kernelspec")
        name = spec.get("name") if isinstance(spec, Mapping) else None
        return str(name) if name else None

    where = "given with --notebook" if args.notebook else f"recorded in {args.output_notebook}"
    if recorded.input_sha256:
        where += "; unchanged since that run" if sha256(data) == recorded.input_sha256 else "; changed since that run"
    try:
        input_kernel = kernel_of(load(data, notebook))
    except NotebookError:
        input_kernel = None  # the run says why the notebook cannot be read
    kernel = f"{args.kernel} (-k)" if args.kernel else (
        f"{input_kernel} (the notebook's kernelspec)" if input_kernel else "python3 (the notebook names none)")
    recorded_kernel = kernel_of(nb)
    if recorded_kernel and recorded_kernel != (args.kernel or input_kernel):
        kernel += f"; the recorded run used {recorded_kernel}"
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(recorded.parameters.items())) or "(none)"
    lines = [f"{PROG} rerun runs:", f"  notebook    {storage.absolute(notebook)} ({where})"]
    if not is_url(notebook):
        lines.append(f"  in folder   {local_path(notebook).parent}")
    lines += [f"  kernel      {kernel}", f"  parameters  {params}"]
    if recorded.secret_parameters:
        lines.append("  secrets     " + ", ".join(f"{name} (from ${secret_variable(name)})"
                                               for name in recorded.secret_parameters))
    lines.append(f"  output      {storage.absolute(output)}")
    return lines
