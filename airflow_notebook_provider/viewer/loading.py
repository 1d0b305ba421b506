"""Which attempt a request means and its notebook, as the routes need them: chosen among the task instance's
attempts, loaded (``lookup.read_output``) within ``[notebook] viewer_max_bytes``, and every reason it cannot be shown
turned into a ``ViewerError`` the page can say (removed by retention, too large, missing, unreachable).
"""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider.maintenance.retention import removal_note
from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer import lookup, safe_read
from airflow_notebook_provider.viewer.attempts import Attempt, ViewerError, list_attempts
from airflow_notebook_provider.viewer.lookup import Loaded, OutputNotFound
from airflow_notebook_provider.viewer.metadata_db import task_facts


def choose(ti: TaskInstanceId, try_number: int | None) -> tuple[Attempt, list[Attempt]]:
    """The attempt asked for (None: the latest) and all the task instance's attempts."""
    attempts = list_attempts(ti)
    if not attempts:
        raise ViewerError(404, "No such task instance",
                          f"{ti.describe()} has no attempt: check the DAG, run and task, or wait until it starts.")
    if try_number is None:
        return attempts[-1], attempts
    for attempt in attempts:
        if attempt.try_number == try_number:
            return attempt, attempts
    raise ViewerError(404, "No such attempt", f"{ti.describe()} has attempts "
                      f"{', '.join(str(a.try_number) for a in attempts)}, not {try_number}.")


class Removed(ViewerError):
    """The attempt's notebook was removed by retention (``airflow-notebook clean``): a fact to show, not a fault."""

    def __init__(self, ti: TaskInstanceId, try_number: int, note: dict[str, Any]) -> None:
        self.when = str(note.get("at") or "an unknown date")
        super().__init__(410, f"Removed by retention on {self.when[:10]}",
                         f"The output notebook of attempt {try_number} of {ti.describe()} was removed by retention on "
                         f"{self.when} ({note.get('by') or 'airflow-notebook clean'}; {note.get('bytes', '?')} bytes). "
                         "Its record is kept; the task log still holds what the run printed.")


def removed_by_retention(ti: TaskInstanceId, try_number: int) -> dict[str, Any] | None:
    """The tombstone ``retention.clean`` left in the attempt's record file, or None: read as any recorded location
    (an allowed, regular, small file), with the connection of the task's operator."""
    try:
        return removal_note(lookup.read_record_file(ti, try_number, task_facts(ti).conn_id))
    except Exception:  # noqa: BLE001 - no record, unreadable store: no tombstone, the original error stands
        return None


class TooLargeToShow(ViewerError):
    """The notebook is larger than ``[notebook] viewer_max_bytes``: a fact with a way out (the download)."""

    def __init__(self, exc: lookup.OutputTooLarge) -> None:
        super().__init__(200, exc.title, exc.detail)
        self.size, self.limit, self.try_number = exc.size, exc.limit, exc.try_number


def viewer_error(ti: TaskInstanceId, try_number: int, exc: OutputNotFound) -> ViewerError:
    """What the page says when ``lookup`` found no notebook to show."""
    if isinstance(exc, lookup.OutputTooLarge):
        return TooLargeToShow(exc)
    if exc.reason == "missing" and (note := removed_by_retention(ti, try_number)) is not None:
        return Removed(ti, try_number, note)
    return ViewerError(502 if exc.reason == "unreachable" else 404, exc.title, exc.detail)


def load_attempt(ti: TaskInstanceId, try_number: int) -> Loaded:
    """The attempt's notebook, checked to be that attempt's own (``lookup.read_output``), if it is at most
    ``[notebook] viewer_max_bytes`` (checked before reading it); else an error page's reason."""
    try:
        return lookup.read_output(ti, try_number, max_bytes=safe_read.max_bytes())[1]
    except OutputNotFound as exc:
        raise viewer_error(ti, try_number, exc) from None


def notebook_of(ti: TaskInstanceId, attempt: Attempt) -> Loaded:
    """The attempt's notebook (``load_attempt``); a running attempt without one yet is said so."""
    try:
        return load_attempt(ti, attempt.try_number)
    except ViewerError as exc:
        if attempt.in_progress and exc.status == 404:
            raise ViewerError(404, "Notebook not written yet",
                              f"Attempt {attempt.try_number} of {ti.describe()} is {attempt.state}; its notebook "
                              "appears when the kernel starts. Reload in a few seconds.") from None
        raise
