"""Exceptions a notebook task fails with; all are ``AirflowException`` subclasses."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class NotebookTaskError(AirflowException):
    """Base class: a notebook task failed."""


class NotebookTaskFailed(NotebookTaskError):
    """A cell raised, timed out or lost its kernel; the output notebook holds the evidence.

    ``output`` is the output location and ``url`` the viewer link, also named in the message.
    """

    def __init__(self, message: str, *, output: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.output = output
        self.url = url


class NotebookTaskInputError(NotebookTaskError):
    """The task's input is wrong (notebook missing or invalid, kernel unknown, ...); no cell ran."""


class NotebookTaskConfigError(NotebookTaskError, AirflowFailException):
    """The task's arguments are wrong in a way a retry cannot fix (bad parameter, output equal to input).

    Fails the task without retries.
    """
