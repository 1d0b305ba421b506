"""What the command does with what it did not write: notebooks, their metadata and viewer links are data, never
instructions.

Anyone who can write a task's output location or its XComs can hand a user a notebook. So the command prints its
text only through ``echo`` (control characters and the invisible characters that reorder or hide text escaped),
reads secrets only from ``NOTEBOOK_SECRET_<name>`` variables, runs a recorded input only when it is an absolute
local path and the user said yes, and names the files it writes so that they stay in the folder the user chose.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from airflow_notebook_provider.cli.storage import CliError
from airflow_notebook_provider.engine import SECRET_ENV_PREFIX
from airflow_notebook_provider.engine.storage import is_url
from airflow_notebook_provider.notebook.parameters import validate_name
from airflow_notebook_provider.notebook.text import printable

_NOT_IN_A_NAME = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")
MAX_NAME_BYTES = 200
"""Longest file name written (most file systems stop at 255 bytes; ``.debug.ipynb`` is added to it)."""


def echo(text: object = "", *, err: bool = False, end: str = "\n") -> None:
    """Print ``text`` (stdout, or stderr with ``err``) with every control and invisible character escaped
    (``printable``): the one way out."""
    stream: TextIO = sys.stderr if err else sys.stdout
    stream.write(printable(text) + end)
    stream.flush()


def secret_variable(name: str) -> str:
    """The environment variable a secret parameter is read from: always ``NOTEBOOK_SECRET_<name>``, ``name`` a
    valid identifier, so neither a notebook nor an argument can make the command read ``AWS_SECRET_ACCESS_KEY``."""
    return SECRET_ENV_PREFIX + validate_name(name)


def read_secrets(names: Iterable[str]) -> dict[str, str]:
    """Secret parameter name -> value, from ``$NOTEBOOK_SECRET_<name>``; a ``CliError`` names the unset ones."""
    variables = {name: secret_variable(name) for name in names}
    missing = [var for var in variables.values() if var not in os.environ]
    if missing:
        raise CliError(
            f"Secret parameters are read from the environment: set {', '.join(missing)} (the production value "
            "came from an Airflow connection or variable; it is never written into notebooks)."
        )
    return {name: os.environ[var] for name, var in variables.items()}


def recorded_secret_names(recorded: dict[str, str], source: str) -> list[str]:
    """The secret parameter names an output notebook records; the variables it says they came from are ignored."""
    names = []
    for name in recorded:
        if not isinstance(name, str) or not name.isidentifier():
            raise CliError(f"{source} records a secret parameter named {name!r}, which is not an identifier; it is "
                           "not a notebook this provider wrote. Check it, then pass --notebook and -s yourself with run.")
        names.append(name)
    return names


def recorded_input(path: object, source: str) -> str:
    """The input notebook an output notebook records, if it may be run without the user naming it: an absolute
    local path. A URL would fetch code from wherever the notebook says (with the user's credentials), and a
    relative or ``~`` path would be read from wherever the user happens to be."""
    if not path:
        raise CliError(f"{source} records no input notebook (metadata.papermill.input_path); pass --notebook.")
    if not isinstance(path, str):
        raise CliError(f"{source} records an input notebook that is not a string ({type(path).__name__}); pass "
                       "--notebook.")
    shown = printable(path)
    if is_url(path):
        raise CliError(f"{source} records its input as the URL {shown}: rerun does not fetch and run code from a "
                       f"location a notebook names. If you trust it, pass --notebook {shown} (with --conn-id for "
                       "object storage), or --notebook with your local copy.")
    local = path[len("file://"):] if path.startswith("file://") else path
    if not os.path.isabs(local):
        raise CliError(f"{source} records its input as {shown}, not an absolute path: it would be read from the "
                       "current folder, not from where the task ran. Pass --notebook with the notebook to run.")
    return path


def confirm(plan: Sequence[str], *, yes: bool, what: str = "Run it") -> None:
    """Show ``plan`` (stderr) and ask on a terminal; ``--yes`` answers for scripts. Raise ``CliError`` otherwise."""
    for line in plan:
        echo(line, err=True)
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError("Not run: the notebook above runs as your user, with your environment; there is no terminal "
                       "to ask for confirmation, so pass --yes once you have checked it.")
    echo(f"{what}? [y/N] ", err=True, end="")
    try:
        answer = input()
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("Not run: not confirmed (answer y, or pass --yes).")


def file_name(text: str) -> str:
    """A file name made from data (a notebook's metadata, a URL): one segment, no separators or control
    characters, not hidden and not ``.``/``..``, short enough for any file system."""
    name = _NOT_IN_A_NAME.sub("_", text).strip()
    if not name.strip("."):
        name = "notebook"
    if name.startswith("."):
        name = "_" + name[1:]
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = name.encode()[: MAX_NAME_BYTES - 16].decode("utf-8", "ignore") + "-" + digest
    return name
