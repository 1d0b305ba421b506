"""Errors of the notebook engine.

A small hierarchy, like nbclient's: callers catch ``NotebookError`` for anything the engine refuses or
fails on, ``NotebookInputError`` for bad input found before any cell runs, and ``NotebookExecutionError``
for a run that started and failed (the output notebook then holds the evidence).
"""

from __future__ import annotations


class NotebookError(Exception):
    """Base class of every error the engine raises on purpose."""


class NotebookInputError(NotebookError, ValueError):
    """Bad input, found before any cell runs: nothing was executed and nothing was overwritten."""


class ParameterError(NotebookInputError):
    """A parameter has an invalid name or a value that cannot be written as a literal."""


class NotebookStorageError(NotebookError, OSError):
    """Reading or writing a notebook location failed (after retries, where the store allows them)."""


class NotebookExecutionError(NotebookError):
    """A run started and stopped on a failure; the output notebook records it.

    ``kind`` is one of ``"error"`` (a cell raised), ``"timeout"`` (``cell_timeout`` exceeded),
    ``"dead_kernel"`` (the kernel died), ``"startup"`` (the kernel did not start) and ``"stopped"``
    (the run was stopped from outside, e.g. ``on_kill`` or a timeout of the task).
    """

    def __init__(
        self,
        *,
        kind: str,
        notebook: str,
        output: str | None,
        cell_index: int | None,
        code_cell_number: int | None,
        execution_count: int | None,
        ename: str,
        evalue: str,
        traceback: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.notebook = notebook
        self.output = output
        self.cell_index = cell_index
        self.code_cell_number = code_cell_number
        self.execution_count = execution_count
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or []
        super().__init__(self.describe())

    def describe(self) -> str:
        """One paragraph a person can act on: which notebook, which cell, what error, where the evidence is."""
        where = (
            f"at cell {self.cell_index + 1} (In [{self.execution_count or ' '}])"
            if self.cell_index is not None
            else "before the first cell"
        )
        what = {
            "error": "raised",
            "timeout": "timed out",
            "dead_kernel": "lost its kernel",
            "startup": "could not start its kernel",
            "stopped": "was stopped",
        }.get(self.kind, "failed")
        evalue = self.evalue.strip().rstrip(".")
        hint = _HINTS.get(self.ename)
        msg = f"Notebook {self.notebook} {what} {where}: {self.ename}: {evalue}" if evalue else (
            f"Notebook {self.notebook} {what} {where}: {self.ename}"
        )
        if hint:
            msg += f" ({hint})"
        if self.output:
            msg += f". Output notebook: {self.output}"
        return msg


_HINTS = {
    "StdinNotImplementedError": "a scheduled run has no one to answer input(); pass the value as a parameter",
    "ModuleNotFoundError": "install the package where the kernel runs, or pick another kernel with kernel_name",
}
