"""Parameters as data: validate names, write values as literals, inject the papermill-style cell.

Values are never pasted into code as text: each one is written by a translator (``translators/``) as a literal
of the kernel's language, so a string that looks like code stays a string.
"""

from __future__ import annotations

import datetime as dt
import keyword
import logging
import math
from collections.abc import Mapping
from typing import Any

import nbformat
from nbformat import NotebookNode

from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.translators import translator_for

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
MAX_DEPTH = 64

log = logging.getLogger(__name__)

_SCALARS = (str, int, float, bool, type(None))


def validate_name(name: object) -> str:
    """A parameter name must be an identifier of the kernel's language; Python's rules are used."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(
            f"Parameter name {name!r} is not a valid Python identifier (letters, digits and '_', not starting "
            "with a digit, and not a keyword such as 'class'). Rename the key in `parameters`."
        )
    return name


def normalize(name: str, value: Any, _path: str | None = None, _depth: int = 0) -> Any:
    """Return ``value`` with dates as ISO-8601 strings and tuples kept; raise for any unsupported type.

    The result holds only str, int, float, bool, None, list, tuple and dict, so every translator and the
    JSON metadata can represent it.
    """
    path = _path or name
    if _depth > MAX_DEPTH:
        raise ParameterError(f"Parameter {path!r} is nested deeper than {MAX_DEPTH} levels; flatten it.")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        items = [normalize(name, v, f"{path}[{i}]", _depth + 1) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, _SCALARS):
                raise ParameterError(
                    f"Parameter {path!r} has a dict key of type {type(k).__name__} ({k!r}); "
                    "use str, int, float, bool or None keys."
                )
            out[k] = normalize(name, v, f"{path}[{k!r}]", _depth + 1)
        return out
    raise ParameterError(
        f"Parameter {path!r} has a value of type {type(value).__module__}.{type(value).__qualname__}, which "
        "cannot be passed to a notebook. Use str, int, float, bool, None, list, tuple, dict, date or datetime "
        "(convert it, e.g. str(value) or value.tolist())."
    )


def prepare(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate every name and normalize every value; nothing runs if any parameter is bad."""
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise ParameterError(
            f"`parameters` must be a dict of name to value, got {type(parameters).__name__}: {parameters!r}"
        )
    return {validate_name(k): normalize(k, v) for k, v in parameters.items()}


def to_json(value: Any) -> Any:
    """A JSON-safe copy for metadata: tuples become lists, non-finite floats become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def find_tagged(nb: NotebookNode, tag: str) -> int:
    """Index of the first cell carrying ``tag``, or -1."""
    for i, cell in enumerate(nb.cells):
        if tag in cell.get("metadata", {}).get("tags", []):
            return i
    return -1


def inject(
    nb: NotebookNode,
    parameters: Mapping[str, Any],
    language: str = "python",
    secret_env: Mapping[str, str] | None = None,
) -> int | None:
    """Insert the ``injected-parameters`` cell as papermill does; return its index (None without parameters).

    An earlier injected cell (a re-run of an output notebook) is replaced in place; otherwise the cell goes right
    after the first ``parameters`` cell, or at the top with a warning when there is none. ``secret_env`` maps a
    secret parameter to the environment variable holding it: the cell reads the variable, so the value is never
    written into the notebook.
    """
    if not parameters and not secret_env:
        return None
    source = translator_for(language).codify(parameters, secret_env=secret_env)
    cell = nbformat.v4.new_code_cell(source=source)
    cell.metadata["tags"] = [INJECTED_TAG]
    injected = find_tagged(nb, INJECTED_TAG)
    if injected >= 0:
        nb.cells[injected] = cell
        return injected
    tagged = find_tagged(nb, PARAMETERS_TAG)
    if tagged < 0:
        log.warning("The notebook has no cell tagged 'parameters'; the parameters are injected at the top.")
    nb.cells.insert(tagged + 1, cell)
    return tagged + 1
