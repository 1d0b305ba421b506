"""Schedule: a DAG file with one ``NotebookOperator`` for a notebook, parsed by Airflow before it is saved.

The file is built from ``repr()`` of validated values (never a user's string pasted into code), parsed by Airflow's
``DagBag`` in a subprocess of this environment's Python with a time limit, and written into the configured DAGs
folder only if Airflow found the DAG and no error: a file the dag-processor would refuse is never saved.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from airflow_notebook_provider.jupyter.config import ENV_DAG_FOLDER

DAG_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")
PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
CRON = re.compile(r"[0-9A-Za-z*/,?#-]+(?: [0-9A-Za-z*/,?#-]+){4,5}")
_MARK = "airflow-notebook-parse:"

# Run by this environment's Python: Airflow's own DAG parsing of one file. Prints one marked JSON line.
PARSE_SCRIPT = f"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.0 and 3.1
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False, load_op_links=False)
print({_MARK!r} + json.dumps({{"dag_ids": sorted(bag.dag_ids),
                              "errors": {{str(k): str(v) for k, v in bag.import_errors.items()}}}}))
"""


class Refused(ValueError):
    """The request cannot be scheduled as asked: 400 (or ``status``) with this message."""

    def __init__(self, message: str, status: int = 400, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.details = status, details


@dataclass(frozen=True)
class DagSpec:
    dag_id: str
    schedule: str | None
    notebook: str
    parameters: dict[str, Any]
    output: str | None
    conn_id: str | None
    start_date: dt.date

    @property
    def task_id(self) -> str:
        stem = PurePosixPath(self.notebook).name.rsplit(".", 1)[0]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip(".") or "notebook"


def check_schedule(value: Any) -> str | None:
    """None (no schedule: triggered only), a preset (``@daily``) or a cron expression of 5 or 6 fields; what the
    cron fields mean is Airflow's to check when it parses the file."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        return None
    if not isinstance(value, str):
        raise Refused("`schedule` must be a string: a preset such as @daily, or a cron expression.")
    text = " ".join(value.split())
    if text in PRESETS or CRON.fullmatch(text):
        return text
    raise Refused(f"Schedule {value!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a cron expression of "
                  "5 fields (minute hour day month weekday), e.g. '0 6 * * 1-5'.")


def _check_value(name: str, value: Any, depth: int = 0) -> None:
    """A parameter value must be plain JSON data, so that ``repr`` of it is a Python literal."""
    if depth > 20:
        raise Refused(f"Parameter {name!r} is nested too deeply.")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refused(f"Parameter {name!r} is {value}, which a DAG's params cannot hold.")
        return
    if isinstance(value, list):
        for item in value:
            _check_value(name, item, depth + 1)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_value(name, item, depth + 1)
        return
    raise Refused(f"Parameter {name!r} must be JSON data (string, number, boolean, null, list or object).")


def spec(body: Mapping[str, Any], notebook: str, declared: set[str] | None) -> DagSpec:
    """The request's DAG, validated: names, schedule, parameters (declared by the notebook, JSON values)."""
    dag_id = body.get("dag_id")
    if not isinstance(dag_id, str) or not DAG_ID.fullmatch(dag_id):
        raise Refused(f"DAG id {dag_id!r} is not valid: use letters, digits, '_', '.' and '-' (at most 250, not "
                      "starting with '.' or '-').")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise Refused("`parameters` must be an object of parameter name -> value.")
    check_parameters(parameters, declared)
    for name, value in parameters.items():
        _check_value(name, value)
    optional = {}
    for key in ("output", "conn_id"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise Refused(f"`{key}` must be a string.")
        optional[key] = value.strip() if value and value.strip() else None
    start = body.get("start_date")
    try:
        start_date = dt.date.fromisoformat(start) if start else dt.datetime.now(dt.timezone.utc).date()
    except (TypeError, ValueError):
        raise Refused(f"`start_date` {start!r} is not a date (YYYY-MM-DD).") from None
    return DagSpec(dag_id, check_schedule(body.get("schedule")), notebook, dict(parameters), optional["output"],
                   optional["conn_id"], start_date)


def check_parameters(parameters: Mapping[str, Any], declared: set[str] | None) -> None:
    """Names the notebook's ``parameters`` cell declares (any identifier when it has no such cell)."""
    bad = [n for n in parameters if not isinstance(n, str) or not n.isidentifier()]
    if bad:
        raise Refused(f"Parameter names must be identifiers: {', '.join(map(repr, bad))}.")
    unknown = sorted(set(parameters) - declared) if declared is not None else []
    if unknown:
        raise Refused(f"The notebook declares no parameter {', '.join(map(repr, unknown))} (it declares: "
                      f"{', '.join(sorted(declared or ())) or 'none'}).")


def render(s: DagSpec) -> str:
    """The DAG file: every value from the request appears as ``repr()`` of validated data."""
    extra = "".join(f"        {key}={value!r},\n" for key, value in (("output_notebook", s.output),
                                                                    ("conn_id", s.conn_id)) if value)
    return (
        f'"""Runs the notebook {json.dumps(s.notebook)[1:-1]} (written by JupyterLab\'s Airflow panel)."""\n\n'
        "import pendulum\n"
        "from airflow.sdk import DAG\n\n"
        "from airflow_notebook_provider.operators.notebook import NotebookOperator\n\n"
        f"NOTEBOOK = {s.notebook!r}\n"
        f"PARAMETERS = {s.parameters!r}\n\n"
        "with DAG(\n"
        f"    dag_id={s.dag_id!r},\n"
        f"    schedule={s.schedule!r},\n"
        f"    start_date=pendulum.datetime({s.start_date.year}, {s.start_date.month}, {s.start_date.day}, tz='UTC'),\n"
        "    catchup=False,\n"
        "    params=PARAMETERS,  # a run's conf (Trigger, Run now) overrides them\n"
        "    render_template_as_native_obj=True,  # the values keep their types\n"
        "    tags=['notebook'],\n"
        "):\n"
        "    NotebookOperator(\n"
        f"        task_id={s.task_id!r},\n"
        "        notebook=NOTEBOOK,\n"
        "        parameters={name: '{{ params.' + name + ' }}' for name in PARAMETERS},\n"
        f"{extra}"
        "    )\n"
    )


def destination(dag_folder: str, folder: Any, dag_id: str) -> Path:
    """``<dag_folder>/<folder>/<dag_id>.py``, refusing a folder outside the configured DAGs folder."""
    if not dag_folder:
        raise Refused(f"No DAGs folder is configured: set {ENV_DAG_FOLDER} (or c.AirflowNotebook.dag_folder) to the "
                      "folder the dag-processor reads, as seen from JupyterLab.", 503)
    if folder is not None and not isinstance(folder, str):
        raise Refused("`folder` must be a path relative to the DAGs folder.")
    base = Path(dag_folder).resolve()
    target = (base / (folder or "")).resolve()
    if "\x00" in (folder or "") or not target.is_relative_to(base):
        raise Refused(f"Folder {folder!r} is outside the DAGs folder {base}.")
    return target / f"{dag_id}.py"


async def parse(source: str, file_name: str, timeout: float) -> dict[str, Any]:
    """Airflow's parse of ``source`` (``{"dag_ids", "errors"}``), in a subprocess of this environment's Python, in
    a scratch folder: the DAGs folder never sees a file that fails. ``Refused`` (500) if Airflow cannot run."""
    scratch = Path(tempfile.mkdtemp(prefix="airflow-notebook-parse-"))
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    if not env.get("AIRFLOW_HOME"):  # Airflow writes a default config into its home: not the user's ~/airflow
        env["AIRFLOW_HOME"] = str(scratch / "home")
    try:
        (scratch / file_name).write_text(source)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PARSE_SCRIPT, str(scratch / file_name), env=env, cwd=scratch,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise Refused(f"Airflow did not parse the DAG file within {timeout:.0f} s "
                          "(c.AirflowNotebook.parse_timeout).", 504) from None
        for line in reversed(out.decode(errors="replace").splitlines()):
            if line.startswith(_MARK):
                result: dict[str, Any] = json.loads(line[len(_MARK):])
                return result
        raise Refused(f"Airflow could not parse DAG files here ({sys.executable} exited with {proc.returncode}): "
                      f"{err.decode(errors='replace')[-2000:]}", 500)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def save(target: Path, source: str, overwrite: bool) -> None:
    """Write the file in one step; without ``overwrite``, only if nothing is there (checked atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise Refused(f"{target} exists already: choose another DAG id or folder, or ask to overwrite it.",
                              409) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


async def schedule(body: Mapping[str, Any], notebook: str, declared: set[str] | None, dag_folder: str,
                   timeout: float) -> dict[str, Any]:
    """Validate, render, parse with Airflow, then save: the ``schedule`` route."""
    s = spec(body, notebook, declared)
    target = destination(dag_folder, body.get("folder"), s.dag_id)
    overwrite = body.get("overwrite") is True
    if target.exists() and not overwrite:
        raise Refused(f"{target} exists already: choose another DAG id or folder, or ask to overwrite it.", 409)
    source = render(s)
    parsed = await parse(source, target.name, timeout)
    if parsed.get("errors") or s.dag_id not in parsed.get("dag_ids", []):
        errors = "\n".join(parsed.get("errors", {}).values()) or f"the file defines no DAG {s.dag_id!r}"
        raise Refused(f"Airflow cannot parse the DAG: {errors}", 400, {"parse_error": errors})
    save(target, source, overwrite)
    return {"dag_file": str(target), "dag_id": s.dag_id, "task_id": s.task_id, "notebook": notebook}
