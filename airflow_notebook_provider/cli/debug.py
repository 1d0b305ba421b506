"""``pull`` and ``inspect``: fetch an output notebook (a path, a URL or the UI's viewer link), write a ready-to-debug
copy, and print what it says about its run (``notebook.record.read_run``, the reader the viewer uses too)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from airflow_notebook_provider.cli import storage
from airflow_notebook_provider.cli.origin import pull_lines
from airflow_notebook_provider.cli.run import PROG
from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.cli.untrusted import echo, file_name
from airflow_notebook_provider.engine import SECRET_ENV_PREFIX, dumps, load
from airflow_notebook_provider.engine.storage import is_url, local_path, safe_piece, same_location, write_atomic
from airflow_notebook_provider.notebook import textformats
from airflow_notebook_provider.notebook.debug import debug_copy
from airflow_notebook_provider.notebook.record import read_run
from airflow_notebook_provider.results import ResultError, read_results

_LINK_PATH = re.compile(r"/notebook/dags/(?P<dag_id>[^/]+)/[^/]+/?$")


def _viewer_link(location: str) -> tuple[Any, int | None] | None:
    """(task-instance identity, try number or None) of a viewer link
    (``…/notebook/dags/<dag_id>/<route>?run_id=…&task_id=…``), else None."""
    parsed = urlparse(location)
    if "/notebook/" not in parsed.path or not parsed.query:
        return None
    query = parse_qs(parsed.query)
    in_path = _LINK_PATH.search(parsed.path)
    dag_id = unquote(in_path.group("dag_id")) if in_path else ""
    if not (dag_id and query.get("run_id") and query.get("task_id")):
        return None
    try:
        map_index = int(query.get("map_index", ["-1"])[0])
        try_number = int(query["try_number"][0]) if query.get("try_number") else None
    except ValueError:
        raise CliError(f"The viewer link {location} has a map_index or try_number that is not a number.") from None
    with storage.airflow_imported():
        from airflow_notebook_provider.task.outputs import TaskInstanceId

        return TaskInstanceId(dag_id, query["run_id"][0], query["task_id"][0], map_index), try_number


def fetch(location: str, conn_id: str | None) -> tuple[str, bytes]:
    """(the notebook's location, its bytes) for a path, a URL or a viewer link.

    A viewer link is resolved as the viewer resolves it (``lookup.read_output``: XCom, else the attempt's record file,
    and the notebook must name that attempt), through the Airflow metadata DB this machine is configured for.
    """
    link = _viewer_link(location)
    if link is None:
        return location, storage.read(location, conn_id)
    ti, try_number = link
    attempt = f", attempt {try_number}" if try_number is not None else ""
    what = f"task {ti.task_id} (map {ti.map_index}) of DAG {ti.dag_id}, run {ti.run_id}{attempt}"
    fallback = "or pass the output location the task log prints ('Output notebook: …') instead of the link"
    try:
        with storage.airflow_imported():
            from airflow_notebook_provider.viewer.lookup import OutputNotFound, read_output

            try:
                _, loaded = read_output(ti, try_number)
            except OutputNotFound as exc:
                note = _removed_by_retention(ti, try_number)
                if note is not None:
                    raise CliError(f"The output notebook of {what} was removed by retention on {note.get('at')} "
                                   f"({note.get('by')}); only its record is left.") from None
                raise CliError(f"Airflow has no output notebook for {what}: {exc.detail} Run pull where Airflow's "
                               f"metadata DB and [notebook] output_base are reachable, {fallback}.") from None
    except CliError:
        raise
    except Exception as exc:  # noqa: BLE001 - no Airflow, no config, DB unreachable: all end in the same advice
        raise CliError(
            f"Cannot read {what} from the Airflow metadata DB ({type(exc).__name__}: {exc}). Run pull where "
            f"Airflow's database is reachable (same AIRFLOW_HOME or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN), {fallback}."
        ) from None
    return loaded.record.location, loaded.data


def _removed_by_retention(ti: Any, try_number: int | None) -> dict[str, Any] | None:
    """The tombstone ``clean`` left in the attempt's record file (``retention``), or None."""
    from airflow_notebook_provider.hooks.notebook import NotebookHook
    from airflow_notebook_provider.maintenance.retention import removal_note
    from airflow_notebook_provider.task.outputs import record_location
    from airflow_notebook_provider.viewer.lookup import READ_RETRY_SECONDS, xcom_record

    try:
        latest = xcom_record(ti)
        number = try_number if try_number is not None else (latest.try_number if latest else None)
        if number is None:
            return None
        hook = NotebookHook(conn_id=latest.conn_id if latest else None, retry_seconds=READ_RETRY_SECONDS)
        return removal_note(json.loads(hook.read(record_location(ti, number))))
    except Exception:  # noqa: BLE001 - no record or no store: the usual "no output notebook" message stands
        return None


def _local_name(nb: Any, location: str) -> str:
    """A file name for a fetched notebook: identity-based for a task's output, else the location's last part.

    Both come from data (the notebook's metadata, a URL or a record), so ``file_name`` makes one plain name of
    them: ``../`` or ``/etc/`` in a dag_id or a URL never leads the copy out of the chosen folder.
    """
    af = nb.metadata.get("airflow") or {}
    if isinstance(af, Mapping) and af.get("dag_id") and af.get("task_id") and af.get("try_number") is not None:
        parts = [af["dag_id"], af["task_id"]]
        if isinstance(af.get("map_index"), int) and af["map_index"] >= 0:
            parts.append(f"map-{af['map_index']}")
        parts.append(f"attempt-{af['try_number']}")
        stem = safe_piece("__".join(map(str, parts)))
    else:
        name = urlparse(location).path.rstrip("/").rsplit("/", 1)[-1]
        stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
    return file_name(unquote(stem) or "notebook") + ".ipynb"


def _destination(args: argparse.Namespace, nb: Any, location: str) -> tuple[Path, bool]:
    """(where the fetched notebook is, whether to write it there).

    A local path typed on the command line without ``-o`` stays where it is (its debug copy goes beside it: the
    user named that folder). Anything else, a URL or a viewer link whose record names a location, is copied into
    ``-o DIR`` or the current folder under a name made by ``_local_name``, never into a folder the data names.
    """
    if not args.output_dir and not is_url(args.location) and _viewer_link(args.location) is None:
        return local_path(args.location), False
    folder = Path(args.output_dir or ".").absolute()
    local = folder / _local_name(nb, location)
    if local.parent != folder:  # a name with a separator: file_name makes none; the check keeps it so
        raise CliError(f"Refusing to write {local}: it is not in {folder}.")
    return local, is_url(location) or not same_location(str(local), location)


def cmd_pull(args: argparse.Namespace) -> int:
    location, data = fetch(args.location, args.conn_id)
    nb = load(data, location)
    local, copy_it = _destination(args, nb, location)
    if copy_it:
        write_atomic(local, data)
    stem = local.name[: -len(".ipynb")] if local.name.endswith(".ipynb") else local.name
    debug_path = local.with_name(stem + ".debug.ipynb")
    if (fmt := getattr(args, "format", "ipynb") or "ipynb") != "ipynb":  # a text copy (jupytext), to edit and diff
        text, ext = textformats.writes(debug_copy(nb, location), fmt)
        write_atomic(debug_path := local.with_name(stem + ".debug" + ext), text.encode())
    else:
        write_atomic(debug_path, dumps(debug_copy(nb, location)))
    run = read_run(nb)
    lines = [f"Output notebook: {local}", f"Debug copy:      {debug_path}"]
    if run.failed_cell:
        err = run.failed_cell
        lines.append(f"It failed at cell {err.position} (In [{err.execution_count or ' '}]): {err.ename}: {err.evalue}")
    else:
        lines.append(f"Status: {run.status}")
    lines += _secret_hints(run.secret_parameters)
    lines += pull_lines(nb, Path.cwd())  # the bundle version that ran; a warning if ./<its path> differs
    if run.input_path and isinstance(run.input_path, str) and not is_url(run.input_path):
        lines.append(f"The task ran in {Path(run.input_path).parent} (relative paths in the notebook start there).")
    lines.append(f"Open the debug copy in Jupyter and run all cells (`jupyter lab {debug_path}`); when fixed, check with "
                 f"`{PROG} rerun {local}`.")
    echo("\n".join(lines))
    return 0


def _secret_hints(recorded: Mapping[str, Any]) -> list[str]:
    """What to export before running the debug copy (whose injected cell reads the recorded variables) or rerun
    (which reads ``NOTEBOOK_SECRET_<name>`` only); a recorded variable of another shape is pointed out, not echoed
    as advice."""
    if not recorded:
        return []
    from airflow_notebook_provider.engine.kernels.gateway_api import ENV_PREFIX as GATEWAY_PREFIX  # a gateway kernel's

    usual, odd = [], []
    for name, var in recorded.items():
        rerun_var = SECRET_ENV_PREFIX + str(name)
        if var == rerun_var:
            usual.append(f"export {var}=…")
        elif var == GATEWAY_PREFIX + rerun_var:  # a gateway kernel's: the debug copy reads it, rerun does not
            usual.append(f"export {var}=… (the debug copy) and {rerun_var}=… (rerun)")
        else:
            odd.append(f"{name} (recorded as read from {var!r})")
    lines = ["Set the secret parameters first: " + ", ".join(usual)] if usual else []
    if odd:
        lines.append("Check the injected cell before running the debug copy: these secret parameters do not come from a "
                     f"{SECRET_ENV_PREFIX} variable: {', '.join(odd)}. `{PROG} rerun` reads "
                     f"${SECRET_ENV_PREFIX}<name> only.")
    return lines


def run_record(nb: Any, location: str) -> dict[str, Any]:
    """What an output notebook says about its run, as plain JSON-able data (``inspect --json``)."""
    run = read_run(nb)
    af = nb.metadata.get("airflow") or {}
    try:
        records: dict[str, Any] | str = read_results(nb)
    except ResultError as exc:
        records = f"unreadable: {exc}"
    err = run.failed_cell
    return {
        "location": location,
        "status": run.status,
        "airflow": {k: af.get(k) for k in ("dag_id", "run_id", "task_id", "map_index", "try_number", "logical_date")}
        if af else None,
        "input_path": run.input_path,
        "input_sha256": run.input_sha256,
        "parameters": run.parameters,
        "secret_parameters": run.secret_parameters,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration": run.duration,
        "error": {"cell": err.position, "execution_count": err.execution_count, "ename": err.ename,
                  "evalue": err.evalue, "traceback": list(err.traceback)} if err else None,
        "records": records,
        "cells": [{"cell": c.position, "type": c.cell_type, "execution_count": c.execution_count, "status": c.status,
                   "duration": c.duration, "injected_parameters": c.injected_parameters, "first_line": c.first_line}
                  for c in run.cells],
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
    location, data = fetch(args.output_notebook, args.conn_id)
    rec = run_record(load(data, location), location)
    echo(json.dumps(rec, indent=2, default=str) if args.json else _format_record(rec))
    return 0
