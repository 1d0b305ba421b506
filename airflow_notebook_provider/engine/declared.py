"""The declared-parameters check: name the parameters a notebook's parameters cell does not declare, before
anything runs (a typo would silently leave the default in place)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Literal

from nbformat import NotebookNode

from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.notebook.errors import ParameterError
from airflow_notebook_provider.notebook.introspect import (
    NotIntrospectable,
    UnreadableParametersCell,
    declared_parameters,
)


def check_declared(nb: NotebookNode, names: Sequence[str], *, language: str, input_path: str,
                   mode: Literal["warn", "fail", "ignore"], log: Log) -> None:
    """Warn about (``mode="warn"``) or refuse (``"fail"``, ``ParameterError``) the ``names`` the notebook's
    parameters cell does not declare, with a close match as a hint; a notebook that cannot be read is let through."""
    if mode == "ignore" or not names:
        return
    try:
        declared = declared_parameters(nb, language)
    except UnreadableParametersCell as exc:  # the kernel will say the same at that cell: say it first
        log.warning("%s: %s.", input_path, exc)
        return
    except NotIntrospectable as exc:
        log.debug("Declared parameters not checked: %s", exc)
        return
    if declared is None:
        return  # no parameters cell: inject() says so
    known = [p.name for p in declared]
    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    hints = [f"did you mean `{m[0]}` for `{n}`?" for n in unknown if (m := difflib.get_close_matches(n, known, 1))]
    msg = (f"{input_path} does not declare {', '.join(repr(n) for n in unknown)} in its parameters cell "
           f"(it declares: {', '.join(known) or 'nothing'}){'; ' + ' '.join(hints) if hints else ''}")
    if mode == "fail":
        raise ParameterError(msg + ". Fix the name, or set unknown_parameters='warn' to inject it anyway.")
    log.warning("%s. Injected anyway (unknown_parameters='warn').", msg)
