"""Errors of the notebook engine, and ``Failure``: how a run that started ended badly, as one typed value.

A small hierarchy, like nbclient's: callers catch ``NotebookError`` for anything the engine refuses or
fails on, ``NotebookInputError`` for bad input found before any cell runs, and ``NotebookExecutionError``
for a run that started and failed (the output notebook then holds the evidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

FailureKind = Literal["error", "timeout", "dead_kernel", "out_of_memory", "startup", "storage", "stopped"]
"""``error``: a cell raised (or the notebook called ``results.fail``); ``timeout``: ``cell_timeout`` exceeded;
``dead_kernel``: the kernel died; ``out_of_memory``: the kernel was killed for memory (the OOM killer or its cgroup's
limit, as Linux reports it); ``startup``: the run could not start (the kernel did not start; the notebook or kernel
not found); ``storage``: the notebook could not be read or written; ``stopped``: the run was stopped from outside
(``on_kill``, a task timeout). Also the names ``retry_on`` takes."""
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)

_VERBS: dict[str, str] = {
    "error": "raised",
    "timeout": "timed out",
    "dead_kernel": "lost its kernel",
    "out_of_memory": "ran out of memory",
    "startup": "could not start its kernel",
    "storage": "could not be read or written",
    "stopped": "was stopped",
}
_HINTS = {
    "StdinNotImplementedError": "a scheduled run has no one to answer input(); pass the value as a parameter",
    "ModuleNotFoundError": "install the package where the kernel runs, or pick another kernel with kernel_name",
}


@dataclass(frozen=True)
class Failure:
    """Why a run ended badly and where: the failing cell (None before the first cell), the error's name and value."""

    kind: FailureKind
    ename: str
    evalue: str
    cell_index: int | None = None
    code_cell_number: int | None = None
    execution_count: int | None = None
    traceback: tuple[str, ...] = ()
    retry: bool | None = None
    """What the notebook asked with ``results.fail(..., retry=...)``; None: ``retry_on`` decides."""

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"Failure kind {self.kind!r} is not one of {', '.join(FAILURE_KINDS)}")

    @property
    def reported_by_kernel(self) -> bool:
        """True when the kernel itself put the error on the cell (a raised exception, not a timeout or a stop)."""
        return self.kind == "error"


class NotebookError(Exception):
    """Base class of every error the engine raises on purpose."""


class NotebookInputError(NotebookError, ValueError):
    """Bad input, found before any cell runs: nothing was executed and nothing was overwritten."""


class NotebookConfigError(NotebookInputError):
    """A setting is wrong in a way that running again cannot fix (a task should fail without retries)."""


class ParameterError(NotebookConfigError):
    """A parameter has an invalid name or a value that cannot be written as a literal."""


class OutputIsInputError(NotebookConfigError):
    """The output location is the input notebook, which the run would overwrite; callers add their own fix."""


class NotebookStorageError(NotebookError, OSError):
    """Reading or writing a notebook location failed (after retries, where the store allows them)."""


class NotebookExecutionError(NotebookError):
    """A run started and stopped on a ``Failure``; the output notebook records it."""

    def __init__(self, failure: Failure, *, notebook: str, output: str | None) -> None:
        self.failure = failure
        self.notebook = notebook
        self.output = output
        super().__init__(self.describe())

    @property
    def kind(self) -> FailureKind:
        return self.failure.kind

    @property
    def ename(self) -> str:
        return self.failure.ename

    @property
    def evalue(self) -> str:
        return self.failure.evalue

    @property
    def cell_index(self) -> int | None:
        return self.failure.cell_index

    def describe(self) -> str:
        """One paragraph a person can act on: which notebook, which cell, what error, where the evidence is."""
        f = self.failure
        where = f"at cell {f.cell_index + 1} (In [{f.execution_count or ' '}])" if f.cell_index is not None else (
            "before the first cell"
        )
        evalue = f.evalue.strip().rstrip(".")
        msg = f"Notebook {self.notebook} {_VERBS[f.kind]} {where}: {f.ename}" + (f": {evalue}" if evalue else "")
        hint = _HINTS.get(f.ename)
        if hint:
            msg += f" ({hint})"
        if self.output:
            msg += f". Output notebook: {self.output}"
        return msg


def kind_of(exc: BaseException) -> FailureKind | None:
    """The failure kind of an engine error (what ``retry_on`` names); None for a wrong setting, never retried."""
    if isinstance(exc, NotebookExecutionError):
        return exc.kind
    if isinstance(exc, NotebookStorageError):
        return "storage"
    if isinstance(exc, NotebookConfigError):
        return None
    if isinstance(exc, NotebookInputError):  # notebook or kernel not found, invalid: the run could not start
        return "startup"
    return None
