"""How a run's end decides the task's outcome: what the notebook asked (``results.skip`` / ``results.fail``), whether
a failure may be retried (``retry_on``), and how the output notebook says so (a banner, ``metadata.airflow_notebook
.outcome``).

The kernel raises ``NotebookSkip`` or ``NotebookFail`` (``results.py``) after displaying a payload under
``OUTCOME_MIMETYPE``; the engine finds both on the failing cell, so the mechanism works on every kernel that runs
the notebook's Python (local, forked, on a gateway). Pure functions on notebooks as data: no Airflow, no kernel.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

from airflow_notebook_provider.notebook.errors import FAILURE_KINDS, Failure, NotebookConfigError
from airflow_notebook_provider.notebook.record import ERROR_MARKER_TAG, PROVENANCE_KEY, code_cell_number, is_banner
from airflow_notebook_provider.results import OUTCOME_MIMETYPE, NotebookFail, NotebookSkip

OUTCOME_KEY = "outcome"
"""``metadata.airflow_notebook.outcome``: ``{"state": "skipped" | "failed", "kind", "reason", "cell", "retryable"}``."""
_ENAMES = {NotebookSkip.__name__: "skip", NotebookFail.__name__: "fail"}
_SKIP_STYLE = 'style="color:#8a6d00; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:1.5em;"'


@dataclass(frozen=True)
class Asked:
    """What a notebook asked for with ``results.skip`` or ``results.fail``, and in which cell."""

    outcome: str
    """``skip`` or ``fail``."""
    reason: str
    retry: bool
    cell_index: int
    code_cell_number: int | None = None
    execution_count: int | None = None


def asked(nb: NotebookNode, index: int, ename: str | None) -> Asked | None:
    """The outcome a failing cell asked for: its error is ``NotebookSkip``/``NotebookFail`` and its outputs hold the
    payload ``results`` displays; None for any other error (a user's own exception of that name without payload)."""
    outcome = _ENAMES.get(ename or "")
    if outcome is None:
        return None
    cell = nb.cells[index]
    for out in reversed(cell.get("outputs", [])):
        payload = (out.get("data") or {}).get(OUTCOME_MIMETYPE)
        if isinstance(payload, Mapping) and payload.get("outcome") == outcome and isinstance(payload.get("reason"), str):
            return Asked(outcome, payload["reason"], bool(payload.get("retry")), index,
                         code_cell_number(nb, index), cell.get("execution_count"))
    return None


def clear_error(cell: NotebookNode) -> bool:
    """A cell that skipped the run ran as asked: drop its ``NotebookSkip`` error output (the payload's text stays)."""
    cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
    return True


def how_ended(skipped: Asked | None) -> str:
    """How a notebook that ended early ended, for the log."""
    return f"results.skip(): {skipped.reason}" if skipped else "SystemExit (not a failure)"


def check_retry_on(value: Any, *, skip_templated: bool = False) -> frozenset[str] | None:
    """``retry_on`` as a set of failure kinds (None: every kind); ``NotebookConfigError`` naming a wrong one.

    Takes a list of names or, as a template may render it, a comma-separated string. With ``skip_templated`` (at
    parse time) a value holding a Jinja template is left for after rendering."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if skip_templated and any(isinstance(n, str) and "{{" in n for n in ([value] if isinstance(value, str) else names)):
        return None
    if not isinstance(names, Collection) or isinstance(names, Mapping):
        raise NotebookConfigError(f"`retry_on` must be a list of failure kinds ({', '.join(FAILURE_KINDS)}), got {value!r}")
    kinds = set()
    for name in names:
        kind = name.strip() if isinstance(name, str) else name
        if kind not in FAILURE_KINDS:
            raise NotebookConfigError(
                f"`retry_on` names {kind!r}, which is not a failure kind; the kinds are: {', '.join(FAILURE_KINDS)}"
            )
        kinds.add(kind)
    return frozenset(kinds)


def not_retried(kind: str | None, retry_on: Collection[str] | None, asked_retry: bool | None = None) -> str | None:
    """Why a failure of ``kind`` is not retried (a sentence for the log and the banner), or None if it may be.

    The notebook's own ``results.fail(retry=...)`` wins over ``retry_on``."""
    if asked_retry is not None:
        return None if asked_retry else "the notebook failed the task with retry=False: not retried"
    if kind is None or retry_on is None or kind in retry_on:
        return None
    return f"`{kind}` is not in retry_on: not retried"


def mark(nb: NotebookNode, failure: Failure | None, skipped: Asked | None, retry_on: Collection[str] | None) -> None:
    """Say in the output notebook how the run ended, after ``record.finish_record``: the outcome in
    ``metadata.airflow_notebook.outcome``; for a skip, a banner at the top; for a failure that will not be retried,
    why, in papermill's banner."""
    provenance = nb.metadata.setdefault(PROVENANCE_KEY, {})
    if skipped is not None:
        provenance[OUTCOME_KEY] = {"state": "skipped", "reason": skipped.reason, "cell": skipped.code_cell_number}
        where = f"cell {skipped.code_cell_number} (In [{skipped.execution_count or ' '}])"
        _insert_banner(nb, f"<span {_SKIP_STYLE}>The notebook skipped this task at {where}: "
                           f"{html.escape(skipped.reason)}. Later cells were not run.</span>")
        return
    if failure is None:
        return
    why = not_retried(failure.kind, retry_on, failure.retry)
    provenance[OUTCOME_KEY] = {"state": "failed", "kind": failure.kind, "reason": f"{failure.ename}: {failure.evalue}",
                               "cell": failure.code_cell_number, "retryable": why is None}
    notes = []
    if failure.ename == NotebookFail.__name__:
        notes.append(f"The notebook failed the task: {failure.evalue}")
    if why:
        notes.append(why[0].upper() + why[1:] + ".")
    if notes and nb.cells and is_banner(nb.cells[0]):
        top = nb.cells[0]
        top.source += "".join(f'\n\n<span style="font-size:1.5em;">{html.escape(n)}</span>' for n in notes)


def _insert_banner(nb: NotebookNode, source: str) -> None:
    cell: NotebookNode = nbformat.v4.new_markdown_cell(source)
    cell.metadata["tags"] = [ERROR_MARKER_TAG]  # a banner: dropped by re-runs, left out by every reader's numbering
    nb.cells.insert(0, cell)
