"""The ``[notebook]`` options: each declared once here (name, type, default, help) and read only through here.

``get_provider_info()["config"]`` (what Airflow reads for ``airflow config list`` and its defaults) and the
documentation's configuration page are built from ``OPTIONS``, so the code, Airflow and the docs cannot disagree.
The readers take Airflow's configuration (``airflow.cfg``, ``AIRFLOW__NOTEBOOK__<NAME>`` variables, secrets
backends) through the same ``conf`` object the rest of the provider uses, imported when first read: the task
process, the api-server and the ``airflow-notebook`` CLI all read it the same way. A value that cannot be read
raises ``NotebookConfigError`` naming the option and the fix, instead of a bare ``could not convert`` error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from airflow_notebook_provider.notebook.errors import NotebookConfigError

SECTION = "notebook"
VERSION_ADDED = "0.1.0"

OptionType = Literal["string", "float", "integer"]


@dataclass(frozen=True)
class Option:
    """One ``[notebook]`` option. ``default`` is the typed value a reader returns when the option is unset;
    ``unit`` names what a number counts, for error messages (``set it to seconds such as 30``)."""

    name: str
    type: OptionType
    default: str | float | int
    description: str
    example: str | None = None
    unit: str = ""
    version_added: str = VERSION_ADDED

    @property
    def env_var(self) -> str:
        return f"AIRFLOW__{SECTION.upper()}__{self.name.upper()}"

    @property
    def default_text(self) -> str:
        """The default as Airflow's configuration holds it (a string; ``30``, not ``30.0``)."""
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


OPTIONS: tuple[Option, ...] = (
    Option(
        "output_base", "string", "",
        "Folder or object-storage URL under which output notebooks are written when a task sets no "
        "`output_notebook`: {output_base}/{dag_id}/{run_id}/{task_id}[/map-{i}]/attempt-{try_number}.ipynb. "
        "Empty means $AIRFLOW_HOME/notebook_outputs.",
        "s3://my-bucket/notebook-runs",
    ),
    Option(
        "checkpoint_interval", "float", 30.0,
        "Default least number of seconds between two writes of a running notebook.", "30", unit="seconds",
    ),
    Option(
        "storage_retry_seconds", "float", 60.0,
        "How long reads and writes of object storage are retried, with backoff, before the task fails.", "60",
        unit="seconds",
    ),
    Option(
        "kernel_env_denylist", "string", "AIRFLOW_CONN_*,AIRFLOW_VAR_*,AIRFLOW__*",
        "Comma-separated fnmatch patterns of the worker's environment variables a local kernel does not inherit "
        "(the notebook gets them only through `env` or parameters).",
        "AIRFLOW_CONN_*,AIRFLOW_VAR_*,AIRFLOW__*,AWS_SECRET_ACCESS_KEY",
    ),
    Option(
        "viewer_allowed_locations", "string", "",
        "Comma-separated folders and object-storage prefixes, besides output_base, from which the notebook viewer "
        "(and `airflow-notebook pull` of a viewer link) reads a task's output notebook, reports and files. A "
        "recorded location elsewhere is not read, whatever is there; local paths are checked after resolving "
        "symbolic links and must be absolute; a URL names a bucket and optionally a key prefix (matched on '/' "
        "boundaries), and may name the connection to read it with (s3://conn_id@bucket/prefix) when the task's "
        "operator names none. Only regular files are served.",
        "/data/reports,s3://analytics/notebooks",
    ),
    Option(
        "viewer_max_bytes", "integer", 100 * 1024 * 1024,
        "Largest output notebook the viewer renders, in bytes (checked before reading it). A larger one gets a "
        "page that says so and offers the download, which streams it.",
        "104857600", unit="bytes",
    ),
    Option(
        "viewer_read_timeout", "float", 10.0,
        "Seconds the viewer waits for object storage to connect and for each read (S3: botocore's "
        "connect_timeout and read_timeout, two attempts per request); the viewer retries for a few seconds more, "
        "then answers with a 502 page.",
        "10", unit="seconds",
    ),
    Option(
        "viewer_cache_bytes", "integer", 64 * 1024 * 1024,
        "Memory the api-server keeps for rendered notebook pages (least recently used first out); 0 keeps none.",
        "67108864", unit="bytes",
    ),
    Option(
        "cell_resources", "string", "on",
        "Each code cell's peak memory and CPU seconds, sampled from /proc while it runs (its duration is always "
        "recorded): `on`, or `off` to record durations only.",
        "off",
    ),
    Option(
        "viewer_base_url", "string", "",
        "Base URL of the Airflow UI for 'Output notebook' links; empty means [api] base_url.",
        "https://airflow.example.com",
    ),
)

_BY_NAME = {option.name: option for option in OPTIONS}


def option(name: str) -> Option:
    """The declared option ``name``; a ``KeyError`` names the declared ones (a typo in the provider's code)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"[{SECTION}] {name} is not declared in airflow_notebook_provider.config.OPTIONS "
                       f"(declared: {', '.join(_BY_NAME)})") from None


def provider_config() -> dict[str, Any]:
    """The ``config`` section of ``get_provider_info()``, in the shape Airflow reads."""
    return {
        SECTION: {
            "description": "Notebook tasks run by airflow-notebook-provider.",
            "options": {
                o.name: {
                    "description": o.description,
                    "version_added": o.version_added,
                    "type": o.type,
                    "example": o.example,
                    "default": o.default_text,
                }
                for o in OPTIONS
            },
        }
    }


def _raw(name: str) -> str | None:
    """The configured text of ``[notebook] name``, or None when it is not set anywhere."""
    from airflow.providers.common.compat.sdk import conf  # lazy: the CLI reads local files without Airflow

    value = conf.get(SECTION, name, fallback=None)
    return None if value is None else str(value)


def _bad(o: Option, text: str, problem: str) -> NotebookConfigError:
    what = o.unit or "a number"
    return NotebookConfigError(
        f'[{SECTION}] {o.name} = "{text}" {problem}; set it to {what} such as {o.example or o.default_text} '
        f"(in airflow.cfg or {o.env_var}), or remove it for the default, {o.default_text}."
    )


def _number(o: Option, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise _bad(o, text, "is not a number") from None
    if not math.isfinite(value):
        raise _bad(o, text, "is not a number")
    if value < 0:
        raise _bad(o, text, "is negative")
    if o.type == "integer":
        if not value.is_integer():
            raise _bad(o, text, "is not a whole number")
        return int(value)
    return value


def get(name: str) -> str | float | int:
    """``[notebook] name`` as its declared type; the declared default when unset (an empty number too)."""
    o = option(name)
    text = _raw(name)
    if o.type == "string":
        return o.default if text is None else text  # set but empty stays empty: "no denylist" is a choice
    if text is None or not text.strip():
        return o.default
    return _number(o, text.strip())


def get_str(name: str) -> str:
    value = get(name)
    if not isinstance(value, str):
        raise TypeError(f"[{SECTION}] {name} is declared as {option(name).type}, not string")
    return value


def get_float(name: str) -> float:
    value = get(name)
    if isinstance(value, str):
        raise TypeError(f"[{SECTION}] {name} is declared as string, not a number")
    return float(value)


def get_int(name: str) -> int:
    value = get(name)
    if not isinstance(value, int):
        raise TypeError(f"[{SECTION}] {name} is declared as {option(name).type}, not integer")
    return value


_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def get_switch(name: str) -> bool:
    """A string option that says ``on`` or ``off`` (or true/false, yes/no, 1/0); anything else names the fix."""
    o = option(name)
    text = get_str(name).strip().lower()
    if text not in _SWITCH:
        raise NotebookConfigError(
            f'[{SECTION}] {name} = "{text}" is neither on nor off; set it to on or off (in airflow.cfg or '
            f"{o.env_var}), or remove it for the default, {o.default_text}."
        )
    return _SWITCH[text]


def get_list(name: str) -> tuple[str, ...]:
    """A comma-separated string option as its non-empty, stripped entries."""
    return tuple(e.strip() for e in get_str(name).split(",") if e.strip())
