"""``airflow-notebook``: debug a notebook task like a local problem, on the same engine the operator uses.

- ``run``: run a notebook as a task would (same injection, metadata, error banner and failure message).
- ``pull``: fetch an output notebook (path, URL or the UI's viewer link) and write a ready-to-debug copy.
- ``rerun``: run the original notebook again with the parameters an output notebook recorded.
- ``inspect``: print the record of a run (identity, parameters, status, failing cell, durations per cell).

Local files need no Airflow configuration: Airflow is imported only for ``--conn-id`` and viewer links.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlparse

from airflow_notebook_provider import __version__
from airflow_notebook_provider.engine import (
    ExecutionSettings,
    NotebookError,
    NotebookExecutionError,
    NotebookRun,
    dumps,
    load,
    prepare_parameters,
    sha256,
    storage,
)
from airflow_notebook_provider.engine.notebook import ERROR_MARKER_TAG
from airflow_notebook_provider.engine.parameters import INJECTED_TAG, validate_name
from airflow_notebook_provider.results import RecordError, read_records

PROG = "airflow-notebook"
SECRET_ENV_PREFIX = "NOTEBOOK_SECRET_"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class CliError(Exception):
    """A problem with what was asked (missing file, bad option); printed without a traceback, exit status 2."""


# -- storage -----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _airflow() -> Iterator[None]:
    """Around code that imports Airflow: its log goes to stderr at WARNING (stdout stays for results)."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _read(location: str, conn_id: str | None) -> bytes:
    if conn_id and storage.is_url(location):
        with _airflow():
            from airflow_notebook_provider.hooks.notebook import NotebookHook

            return NotebookHook(conn_id=conn_id).read(location)
    try:
        return storage.read_bytes(location)
    except FileNotFoundError:
        raise CliError(f"{location} does not exist.") from None
    except IsADirectoryError:
        raise CliError(f"{location} is a folder; give the .ipynb file.") from None
    except NotebookError:
        raise
    except Exception as exc:  # noqa: BLE001 - fsspec raises many kinds; say which location and how to fix
        hint = " (object storage needs credentials: pass --conn-id with an Airflow connection)" if storage.is_url(location) else ""
        raise CliError(f"Cannot read {location}: {exc}{hint}") from None


def _write(location: str, data: bytes, conn_id: str | None) -> None:
    if conn_id and storage.is_url(location):
        with _airflow():
            from airflow_notebook_provider.hooks.notebook import NotebookHook

            NotebookHook(conn_id=conn_id).write(location, data)
        return
    storage.write_bytes(location, data)


def _same_location(a: str, b: str) -> bool:
    if storage.is_url(a) or storage.is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(storage.local_path(a)) == os.path.realpath(storage.local_path(b))


def _sibling(location: str, suffix: str) -> str:
    """``x/report.ipynb`` -> ``x/report<suffix>.ipynb`` for a local location; in the current folder for a URL."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    if storage.is_url(location):
        return str(Path.cwd() / f"{stem}{suffix}.ipynb")
    return str(storage.local_path(location).with_name(f"{stem}{suffix}.ipynb"))


# -- progress ----------------------------------------------------------------------------------------------------


class Progress(logging.Handler):
    """Reads the engine's log records: a live "cell i/n, elapsed" line on a terminal, and warnings.

    With ``verbose`` every record is printed, as the task log shows them; otherwise only warnings, and the live
    line when ``stream`` is a terminal (nothing at all when it is not).
    """

    def __init__(self, stream: TextIO, *, verbose: bool) -> None:
        super().__init__(logging.INFO)
        self.stream = stream
        self.verbose = verbose
        self.live = not verbose and stream.isatty()
        self.status = "starting the kernel"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.logger = logging.getLogger(f"{__name__}.run.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("cell %d/%d started") and len(record.args or ()) >= 2:
            i, n = record.args[0], record.args[1]  # type: ignore[index]
            self.status = f"cell {i}/{n}"
        if self.verbose or record.levelno >= logging.WARNING:
            self._print(f"{record.levelname.lower()}: {record.getMessage()}" if record.levelno >= logging.WARNING
                        else record.getMessage())

    def _print(self, text: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            elapsed = int(time.monotonic() - self.started)
            with self._lock:
                self.stream.write(f"\r\x1b[K{self.status} · {elapsed // 60:02d}:{elapsed % 60:02d} elapsed")
                self.stream.flush()

    def __enter__(self) -> Progress:
        if self.live:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.logger.removeHandler(self)


# -- run and rerun ---------------------------------------------------------------------------------------------


def _tool_metadata(command: str, input_sha256: str, **extra: Any) -> dict[str, Any]:
    import nbclient
    import nbformat

    return {
        "command": command,
        "input_sha256": input_sha256,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "versions": {
            "airflow_notebook_provider": __version__,
            "nbclient": nbclient.__version__,
            "nbformat": nbformat.__version__,
            "python": platform.python_version(),
        },
        **extra,
    }


def _execute(
    notebook: str,
    output: str,
    parameters: Mapping[str, Any],
    *,
    command: str,
    kernel: str | None,
    cell_timeout: float | None,
    conn_id: str | None,
    secret_env: Mapping[str, str],
    log_output: bool,
    extra: Mapping[str, Any] | None = None,
) -> int:
    """Run ``notebook`` into ``output`` exactly as ``NotebookOperator.execute`` does; 0 on success, 1 on failure."""
    if _same_location(notebook, output):
        raise CliError(f"The output {output} is the input notebook; choose another -o.")
    if cell_timeout is not None and cell_timeout <= 0:
        raise CliError(f"--cell-timeout must be a positive number of seconds, got {cell_timeout:g}.")
    missing = [var for var in secret_env.values() if var not in os.environ]
    if missing:
        raise CliError(
            f"Secret parameters are read from the environment: set {', '.join(missing)} (the production value "
            "came from an Airflow connection or variable; it is never written into notebooks)."
        )
    if not storage.is_url(notebook):
        notebook = str(storage.local_path(notebook))
    if not storage.is_url(output):
        output = str(storage.local_path(output))
    data = _read(notebook, conn_id)
    nb = load(data, notebook)
    params = prepare_parameters(parameters)
    # As the operator: the kernel starts in the notebook's folder, or in a temporary one for a URL.
    tmp_cwd = tempfile.mkdtemp(prefix="airflow-notebook-") if storage.is_url(notebook) else None
    cwd = tmp_cwd or str(storage.local_path(notebook).parent)
    settings = ExecutionSettings(
        kernel_name=kernel, cell_timeout=cell_timeout, cwd=cwd, log_output=log_output, secret_env=dict(secret_env)
    )
    metadata = _tool_metadata(
        command, sha256(data), **({"secret_env": dict(secret_env)} if secret_env else {}), **(extra or {})
    )
    try:
        with _KernelStderr() as kernel_stderr:
            progress = Progress(kernel_stderr.terminal, verbose=log_output)
            run = NotebookRun(
                nb,
                input_path=notebook,
                output_path=output,
                save=lambda b: _write(output, b, conn_id),
                parameters=params,
                settings=settings,
                extra_metadata={"airflow_notebook": metadata},
                log=progress.logger,
            )
            with progress:
                run.run()
    except NotebookExecutionError as exc:
        if exc.kind in ("dead_kernel", "startup") and kernel_stderr.text.strip():
            print(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        print(f"Debug it: {PROG} pull {output}", file=sys.stderr)
        return 1
    finally:
        if tmp_cwd:
            shutil.rmtree(tmp_cwd, ignore_errors=True)
    if log_output and kernel_stderr.text.strip():
        print(f"The kernel's stderr:\n{kernel_stderr.text.rstrip()}", file=sys.stderr)
    print(output)
    return 0


class _KernelStderr:
    """Collect what the kernel process writes to its stderr (it inherits ours) instead of mixing it into ours.

    The kernel's own log chatter is not the notebook's output (that is in the notebook and, with --log-output, on
    the screen); it is shown only when the kernel died or did not start, or with --log-output. ``terminal`` is the
    real stderr, for progress and messages while fd 2 is redirected.
    """

    def __enter__(self) -> _KernelStderr:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self.terminal = os.fdopen(os.dup(self._saved), "w", buffering=1)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self.terminal.close()
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


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
    secret_env = {}
    for name in args.secret or []:
        validate_name(name)
        secret_env[name] = SECRET_ENV_PREFIX + name
        params.pop(name, None)
    output = args.output or _sibling(args.notebook, ".out")
    return _execute(
        args.notebook, output, params, command="run", kernel=args.kernel, cell_timeout=args.cell_timeout,
        conn_id=args.conn_id, secret_env=secret_env, log_output=args.log_output,
    )


def cmd_rerun(args: argparse.Namespace) -> int:
    nb = load(_read(args.output_notebook, args.conn_id), args.output_notebook)
    pm = nb.metadata.get("papermill", {})
    airflow = dict(nb.metadata.get("airflow", {}))
    notebook = args.notebook or pm.get("input_path") or airflow.get("input_path")
    if not notebook:
        raise CliError(f"{args.output_notebook} records no input notebook (metadata.papermill.input_path); pass --notebook.")
    secret_env = dict(airflow.get("secret_parameters") or nb.metadata.get("airflow_notebook", {}).get("secret_env") or {})
    output = args.output or _sibling(args.output_notebook, ".rerun")
    return _execute(
        notebook, output, dict(pm.get("parameters") or {}), command="rerun", kernel=args.kernel,
        cell_timeout=args.cell_timeout, conn_id=args.conn_id, secret_env=secret_env, log_output=args.log_output,
        extra={"rerun_of": {"location": args.output_notebook, "airflow": airflow or None}},
    )


# -- pull ----------------------------------------------------------------------------------------------------------


def _viewer_identity(location: str) -> dict[str, Any] | None:
    """The task-instance identity in a viewer link (``…/notebook/<route>?dag_id=…``), else None."""
    parsed = urlparse(location)
    if "/notebook/" not in parsed.path or not parsed.query:
        return None
    query = parse_qs(parsed.query)
    if not all(query.get(k) for k in ("dag_id", "run_id", "task_id")):
        return None
    try:
        map_index = int(query.get("map_index", ["-1"])[0])
        try_number = int(query["try_number"][0]) if query.get("try_number") else None
    except ValueError:
        raise CliError(f"The viewer link {location} has a map_index or try_number that is not a number.") from None
    return {
        "dag_id": query["dag_id"][0], "run_id": query["run_id"][0], "task_id": query["task_id"][0],
        "map_index": map_index, "try_number": try_number,
    }


def _notebook_record(ident: Mapping[str, Any]) -> dict[str, Any]:
    """The task's XCom ``notebook_record``, read from the Airflow metadata DB this machine is configured for."""
    what = f"task {ident['task_id']} (map {ident['map_index']}) of DAG {ident['dag_id']}, run {ident['run_id']}"
    fallback = "or pass the output location the task log prints ('Output notebook: …') instead of the link"
    try:
        with _airflow():
            from airflow.models.xcom import XComModel
            from airflow.utils.session import create_session
            from sqlalchemy import select

            from airflow_notebook_provider.links.notebook import RECORD_XCOM_KEY

            with create_session() as session:
                row = session.execute(
                    select(XComModel.value).where(
                        XComModel.key == RECORD_XCOM_KEY,
                        XComModel.dag_id == ident["dag_id"],
                        XComModel.run_id == ident["run_id"],
                        XComModel.task_id == ident["task_id"],
                        XComModel.map_index == ident["map_index"],
                    )
                ).first()
            value = XComModel.deserialize_value(row) if row is not None else None
    except Exception as exc:  # noqa: BLE001 - no Airflow, no config, DB unreachable: all end in the same advice
        raise CliError(
            f"Cannot read {what} from the Airflow metadata DB ({type(exc).__name__}: {exc}). Run pull where "
            f"Airflow's database is reachable (same AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN), {fallback}."
        ) from None
    if not isinstance(value, Mapping) or not value.get("location"):
        raise CliError(f"The Airflow metadata DB has no output notebook for {what}; {fallback}.")
    return dict(value)


def _attempt_record(ident: Mapping[str, Any], conn_id: str | None) -> dict[str, Any] | None:
    """The record an attempt keeps beside the default outputs (written for the viewer), if there is one."""
    try:
        with _airflow():
            from airflow_notebook_provider.hooks.notebook import NotebookHook
            from airflow_notebook_provider.links.notebook import record_location

            location = record_location(NotebookHook.default_output_base(), **ident)
            value = json.loads(_read(location, conn_id))
    except Exception:  # noqa: BLE001 - optional: absent for attempts from before records, or another layout
        return None
    return value if isinstance(value, dict) and value.get("location") else None


def _resolve(location: str, conn_id: str | None) -> tuple[str, str | None]:
    """(notebook location, conn_id) for a path, a URL or a viewer link."""
    ident = _viewer_identity(location)
    if ident is None:
        return location, conn_id
    rec = _notebook_record(ident)
    found, wanted = rec["location"], ident["try_number"]
    rec_try = rec.get("try_number")
    if wanted is not None and rec_try is not None and wanted != rec_try:
        # XCom holds the latest attempt only. Earlier ones: their attempt record, else the default layout.
        earlier = _attempt_record(ident, rec.get("conn_id"))
        if earlier:
            return earlier["location"], conn_id or earlier.get("conn_id")
        suffix = f"/attempt-{rec_try}.ipynb"
        if not found.endswith(suffix):
            raise CliError(
                f"The link asks for attempt {wanted}, but Airflow records only attempt {rec_try}, at {found}; "
                f"pass the location of attempt {wanted} (printed in that attempt's log)."
            )
        found = found[: -len(suffix)] + f"/attempt-{wanted}.ipynb"
    return found, conn_id or rec.get("conn_id")


def debug_copy(nb: Any, source: str) -> Any:
    """The notebook with outputs and injected parameters kept, the error banner removed, ready to run all cells."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    out.metadata.setdefault("airflow_notebook", {})["debug_copy_of"] = source
    return out


def _local_name(nb: Any, location: str) -> str:
    """A file name for a fetched notebook: identity-based for a task's output, else the location's name."""
    af = nb.metadata.get("airflow") or {}
    if af.get("dag_id") and af.get("task_id") and af.get("try_number") is not None:
        from airflow_notebook_provider.engine.paths import safe_piece

        parts = [af["dag_id"], af["task_id"]]
        if isinstance(af.get("map_index"), int) and af["map_index"] >= 0:
            parts.append(f"map-{af['map_index']}")
        parts.append(f"attempt-{af['try_number']}")
        return safe_piece("__".join(str(p) for p in parts)) + ".ipynb"
    name = urlparse(location).path.rstrip("/").rsplit("/", 1)[-1] or "notebook.ipynb"
    return name if name.endswith(".ipynb") else name + ".ipynb"


def cmd_pull(args: argparse.Namespace) -> int:
    location, conn_id = _resolve(args.location, args.conn_id)
    data = _read(location, conn_id)
    nb = load(data, location)
    if storage.is_url(location) or args.output_dir:
        folder = Path(args.output_dir or ".").absolute()
        local = folder / _local_name(nb, location)
        if not (not storage.is_url(location) and _same_location(str(local), location)):
            storage.write_atomic(local, data)
    else:
        local = storage.local_path(location)
    debug_path = local.with_name(local.name[: -len(".ipynb")] + ".debug.ipynb" if local.name.endswith(".ipynb")
                                 else local.name + ".debug.ipynb")
    storage.write_atomic(debug_path, dumps(debug_copy(nb, location)))
    rec = run_record(nb, location)
    lines = [f"Output notebook: {local}", f"Debug copy:      {debug_path}"]
    if rec["error"]:
        err = rec["error"]
        lines.append(f"It failed at cell {err['cell']} (In [{err['execution_count'] or ' '}]): {err['ename']}: {err['evalue']}")
    else:
        lines.append(f"Status: {rec['status']}")
    if rec["secret_parameters"]:
        lines.append("Set the secret parameters first: " + ", ".join(f"export {v}=…" for v in rec["secret_parameters"].values()))
    if rec["input_path"] and not storage.is_url(rec["input_path"]):
        lines.append(f"The task ran in {Path(rec['input_path']).parent} (relative paths in the notebook start there).")
    lines.append(f"Open the debug copy in Jupyter and run all cells (`jupyter lab {debug_path}`); when fixed, check with "
                 f"`{PROG} rerun {local}`.")
    print("\n".join(lines))
    return 0


# -- inspect ---------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def run_record(nb: Any, location: str) -> dict[str, Any]:
    """What an output notebook says about its run, as plain JSON-able data."""
    pm = nb.metadata.get("papermill", {}) or {}
    af = nb.metadata.get("airflow", {}) or {}
    tool = nb.metadata.get("airflow_notebook", {}) or {}
    cells: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    number = 0
    for cell in nb.cells:
        if ERROR_MARKER_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        number += 1
        cpm = cell.get("metadata", {}).get("papermill", {}) or {}
        source = _text(cell.get("source"))
        entry = {
            "cell": number,
            "type": cell.get("cell_type"),
            "execution_count": cell.get("execution_count"),
            "status": cpm.get("status"),
            "duration": cpm.get("duration"),
            "injected_parameters": INJECTED_TAG in cell.get("metadata", {}).get("tags", []),
            "first_line": next((ln for ln in source.splitlines() if ln.strip()), ""),
        }
        cells.append(entry)
        if cpm.get("status") == "failed" and error is None:
            out = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), {})
            error = {
                "cell": number,
                "execution_count": cell.get("execution_count"),
                "ename": out.get("ename"),
                "evalue": out.get("evalue"),
                "traceback": [_ANSI.sub("", line) for line in out.get("traceback", [])],
            }
    if pm.get("exception"):
        status = "failed"
    elif pm.get("end_time"):
        status = "succeeded"
    elif pm.get("start_time"):
        status = "running or interrupted"
    else:
        status = "not run"
    try:
        records: dict[str, Any] | str = read_records(nb)
    except RecordError as exc:
        records = f"unreadable: {exc}"
    identity = {k: af.get(k) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number", "logical_date",
                                       "hostname")} if af else None
    return {
        "location": location,
        "status": status,
        "airflow": identity,
        "input_path": pm.get("input_path") or af.get("input_path"),
        "input_sha256": af.get("input_sha256") or tool.get("input_sha256"),
        "parameters": pm.get("parameters") or {},
        "secret_parameters": af.get("secret_parameters") or tool.get("secret_env") or {},
        "start_time": pm.get("start_time"),
        "end_time": pm.get("end_time"),
        "duration": pm.get("duration"),
        "error": error,
        "records": records,
        "cells": cells,
    }


def _format_record(rec: Mapping[str, Any]) -> str:
    def row(label: str, value: str) -> str:
        return f"{label:<18}{value}"

    lines = [row("Output notebook", rec["location"]), row("Status", rec["status"])]
    af = rec["airflow"]
    if af:
        lines.append(row("Airflow", f"dag {af['dag_id']} · run {af['run_id']} · task {af['task_id']} · map index "
                                    f"{af['map_index']} · try {af['try_number']}"))
        if af.get("logical_date"):
            lines.append(row("Logical date", str(af["logical_date"])))
    if rec["input_path"]:
        sha = f" (sha256 {rec['input_sha256'][:12]}…)" if rec.get("input_sha256") else ""
        lines.append(row("Input", f"{rec['input_path']}{sha}"))
    params = ", ".join(f"{k}={v!r}" for k, v in rec["parameters"].items()) or "(none)"
    lines.append(row("Parameters", params))
    if rec["secret_parameters"]:
        lines.append(row("Secret parameters", ", ".join(f"{k} (from ${v})" for k, v in rec["secret_parameters"].items())))
    if rec["duration"] is not None:
        lines.append(row("Duration", f"{rec['duration']:.2f} s ({rec['start_time']} → {rec['end_time']})"))
    err = rec["error"]
    if err:
        lines.append(row("Failed at", f"cell {err['cell']} (In [{err['execution_count'] or ' '}]): {err['ename']}: "
                                      f"{err['evalue']}"))
    if rec["records"]:
        recs = rec["records"]
        lines.append(row("Records", recs if isinstance(recs, str) else ", ".join(f"{k}={v!r}" for k, v in recs.items())))
    lines += ["", f"{'cell':>5}  {'In':<6}{'status':<11}{'seconds':>9}  source"]
    for c in rec["cells"]:
        if c["type"] != "code":
            continue
        dur = f"{c['duration']:.2f}" if isinstance(c["duration"], int | float) else "-"
        count = f"[{c['execution_count']}]" if c["execution_count"] is not None else "[ ]"
        first = c["first_line"][:60] + (" (injected)" if c["injected_parameters"] else "")
        lines.append(f"{c['cell']:>5}  {count:<6}{c['status'] or '-':<11}{dur:>9}  {first}")
    if err and err["traceback"]:
        lines += ["", "Traceback:", *("  " + ln for tb in err["traceback"] for ln in tb.splitlines())]
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    location, conn_id = _resolve(args.output_notebook, args.conn_id)
    nb = load(_read(location, conn_id), location)
    rec = run_record(nb, location)
    print(json.dumps(rec, indent=2, default=str) if args.json else _format_record(rec))
    return 0


# -- entry point -----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run, pull, rerun and inspect notebooks the way airflow-notebook-provider tasks run them."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_conn(p: argparse.ArgumentParser) -> None:
        p.add_argument("--conn-id", help="Airflow connection for object-storage URLs (e.g. an aws connection)")

    def add_exec(p: argparse.ArgumentParser) -> None:
        p.add_argument("-k", "--kernel", help="kernel to run (default: the notebook's kernelspec, then python3)")
        p.add_argument("--cell-timeout", type=float, metavar="S", help="seconds one cell may run (default: no limit)")
        p.add_argument("--log-output", action="store_true", help="print the cells' output and progress as a task log does")
        add_conn(p)

    p = sub.add_parser("run", help="run a notebook locally exactly as a task would")
    p.add_argument("notebook", help="input notebook: path or URL")
    p.add_argument("-o", "--output", help="output notebook (default: NAME.out.ipynb beside the input)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a parameter; VALUE is read as YAML (3, 0.5, true, null, 2024-01-01, text)")
    p.add_argument("-f", "--parameters-file", metavar="params.yaml", help="YAML mapping of parameters (-p wins)")
    p.add_argument("-s", "--secret", action="append", metavar="NAME",
                   help=f"a secret parameter read by the kernel from ${SECRET_ENV_PREFIX}NAME, never written")
    add_exec(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("pull", help="fetch an output notebook (path, URL or viewer link) and write a debug copy")
    p.add_argument("location", help="output notebook path, object-storage URL, or the UI's viewer link")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="folder for the copies (default: beside a local "
                                                             "notebook, else the current folder)")
    add_conn(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("rerun", help="run the original notebook again with an output notebook's parameters")
    p.add_argument("output_notebook", help="an output notebook written by a task or by `run`")
    p.add_argument("-o", "--output", help="new output notebook (default: NAME.rerun.ipynb beside it)")
    p.add_argument("--notebook", help="run this notebook instead of the recorded input (e.g. your fixed copy)")
    add_exec(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("inspect", help="print the record of a run")
    p.add_argument("output_notebook", help="output notebook path, URL or viewer link")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_conn(p)
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, NotebookError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
