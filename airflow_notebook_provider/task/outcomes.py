"""How a run's end becomes the task's state: skipped (``results.skip``), failed and retried, or failed for good
(``results.fail(retry=False)``, or a failure kind not in ``retry_on``). The engine decides nothing of Airflow's;
``notebook/outcomes.py`` says whether a failure may be retried, this module raises what Airflow acts on.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from airflow_notebook_provider.exceptions import NotebookTaskFailed, NotebookTaskNotRetried, NotebookTaskSkipped
from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookError, kind_of
from airflow_notebook_provider.notebook.outcomes import Asked, check_retry_on, not_retried


def retry_kinds(value: Any) -> frozenset[str] | None:
    """The operator's rendered ``retry_on``; None (every kind) if it is wrong, which ``_settings`` reports."""
    try:
        return check_retry_on(value)
    except NotebookConfigError:
        return None


def failed(message: str, kind: str | None, retry_on: Collection[str] | None, *, asked_retry: bool | None = None,
           output: str | None = None, url: str | None = None, log: Any = None) -> NotebookTaskFailed:
    """The exception of a failed attempt: ``NotebookTaskNotRetried`` (``AirflowFailException``) when the failure may
    not be retried, saying why in its message and in the log; else ``NotebookTaskFailed``, retried as Airflow does."""
    why = not_retried(kind, retry_on, asked_retry)
    if why is None:
        return NotebookTaskFailed(message, output=output, url=url, kind=kind)
    if log is not None:
        log.error("%s", why[0].upper() + why[1:])
    return NotebookTaskNotRetried(f"{message} ({why})", output=output, url=url, kind=kind)


def skipped(task_id: str, asked: Asked, output: str, url: str, log: Any) -> NotebookTaskSkipped:
    """The exception that marks the task skipped, as the notebook asked at cell ``asked.code_cell_number``."""
    message = (f"Task {task_id}: the notebook skipped the task at cell {asked.code_cell_number}: {asked.reason}. "
               f"Output notebook: {output}. View it: {url}")
    log.info("%s", message)
    return NotebookTaskSkipped(message, output=output)


def stopped(exc: BaseException, task_id: str, retry_on: Collection[str] | None, log: Any) -> NotebookTaskFailed | None:
    """For a run stopped from outside (``execution_timeout``): the exception that fails the task for good when
    ``stopped`` is not in ``retry_on``, else None (the original exception goes on, retried as Airflow does)."""
    if not_retried("stopped", retry_on) is None:
        return None
    return failed(f"Task {task_id}: the run was stopped ({type(exc).__name__}: {exc})", "stopped", retry_on, log=log)


def unless_retried(message: str, exc: NotebookError, retry_on: Collection[str] | None, log: Any) -> NotebookTaskFailed | None:
    """For an engine error outside the cells (storage, startup): the exception that fails the task for good when
    its kind is not in ``retry_on``, else None (the error table's exception applies)."""
    kind = kind_of(exc)
    return failed(message, kind, retry_on, log=log) if not_retried(kind, retry_on) else None
