"""``notebook_params``: a DAG's ``params`` built from a notebook's parameters cell, so that "Trigger DAG w/ config"
shows a form generated from the notebook and Airflow refuses values of the wrong type before a task runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import Param

from airflow_notebook_provider.engine import load
from airflow_notebook_provider.notebook.introspect import DeclaredParameter, declared_parameters

# JSON-schema types of the literal types Python and R defaults infer to.
_SCHEMA_TYPES = {
    "str": "string", "character": "string",
    "int": "integer", "integer": "integer",
    "float": "number", "numeric": "number",
    "bool": "boolean", "logical": "boolean",
    "list": "array", "tuple": "array",
    "dict": "object",
}


def notebook_params(notebook: str | Path, **overrides: Any) -> dict[str, Param]:
    """A ``Param`` per parameter the local ``notebook`` declares: its default, a JSON-schema type from the
    default's (or the annotation's) type, and its help comment as the description.

    ``overrides`` replace a parameter's default (a plain value) or its whole ``Param``. A default that is not a
    literal (``day = date.today()``) gives a Param with no default value and no type: the form shows it empty.
    Use it as ``DAG(params=notebook_params(path), render_template_as_native_obj=True)`` and pass the values on
    with ``parameters={"region": "{{ params.region }}", ...}``; native rendering keeps their types.
    """
    path = Path(notebook)
    nb = load(path.read_bytes(), str(path))
    language = nb.metadata.get("kernelspec", {}).get("language") or nb.metadata.get("language_info", {}).get("name")
    declared = declared_parameters(nb, language or "python")
    if declared is None:
        raise ValueError(f"{path} has no cell tagged `parameters`: tag the cell holding the defaults, as for papermill.")
    unknown = set(overrides) - {p.name for p in declared}
    if unknown:
        raise ValueError(f"notebook_params: {', '.join(sorted(unknown))} not declared in {path} "
                         f"(it declares: {', '.join(p.name for p in declared)}).")
    params = {p.name: _param(p) for p in declared}
    for name, value in overrides.items():
        params[name] = value if isinstance(value, Param) else Param(value, **_schema(params[name]))
    return params


def _param(p: DeclaredParameter) -> Param:
    description = p.help or f"Default in the notebook: {p.default_source}"
    if not p.has_value:
        return Param(None, description=f"{description} (computed in the notebook: {p.default_source})")
    kind = _SCHEMA_TYPES.get(p.inferred_type)
    if kind is None or p.default is None:
        return Param(p.default, description=description)
    return Param(list(p.default) if kind == "array" else p.default, type=kind, description=description)


def _schema(param: Param) -> dict[str, Any]:
    schema = dict(param.schema)
    description = schema.pop("description", None) or param.description
    return {**schema, "description": description}
