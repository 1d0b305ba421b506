"""Exceptions a notebook task fails with; all are ``AirflowException`` subclasses."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException


class NotebookTaskError(AirflowException):
    """Base class: a notebook task failed."""


class NotebookTaskFailed(NotebookTaskError):
    """A cell raised, timed out or lost its kernel; the output notebook holds the evidence.

    ``output`` is the output location and ``url`` the viewer link, also named in the message; ``kind`` the failure
    kind (``error``, ``timeout``, ``dead_kernel``, ``out_of_memory``, ``startup``, ``storage``, ``stopped``).
    """

    def __init__(self, message: str, *, output: str | None = None, url: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.url = url
        self.kind = kind


class NotebookTaskNotRetried(NotebookTaskFailed, AirflowFailException):
    """A failure that fails the task without further retries: its kind is not in the operator's ``retry_on``, or
    the notebook called ``results.fail(reason, retry=False)``."""


class NotebookTaskSkipped(AirflowSkipException):
    """The notebook called ``results.skip(reason)``: the task is skipped; ``output`` is its output notebook."""

    def __init__(self, message: str, *, output: str | None = None) -> None:
        super().__init__(message)
        self.output = output


class NotebookTaskInputError(NotebookTaskError):
    """The task's input is wrong (notebook missing or invalid, kernel unknown, ...); no cell ran."""


class NotebookTaskConfigError(NotebookTaskError, AirflowFailException):
    """The task's arguments are wrong in a way a retry cannot fix (bad parameter, output equal to input).

    Fails the task without retries.
    """
