"""Which tries a task instance had, with their states and times: Airflow's ``task_instance`` (the latest try) and
``task_instance_history`` (earlier tries) tables. Where each try's notebook is, is ``lookup``'s job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from airflow_notebook_provider.task.outputs import TaskInstanceId

# States in which the latest try's notebook is a checkpoint of a run that has not ended.
IN_PROGRESS_STATES = frozenset({"running", "queued", "scheduled", "deferred", "restarting", "up_for_reschedule"})


class ViewerError(Exception):
    """A reason to answer with an error page instead of a notebook: HTTP status, title, what to do."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Attempt:
    try_number: int
    state: str | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    latest: bool

    @property
    def in_progress(self) -> bool:
        return self.latest and (self.state or "") in IN_PROGRESS_STATES


def list_attempts(ti: TaskInstanceId) -> list[Attempt]:
    """Every try of the task instance, oldest first, from Airflow's task_instance and task_instance_history."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    tries: dict[int, Attempt] = {}
    with create_session() as session:
        for model in (TaskInstanceHistory, TaskInstance):  # the live row wins over a history row of the same try
            rows = session.execute(
                select(model.try_number, model.state, model.start_date, model.end_date, model.duration).where(
                    model.dag_id == ti.dag_id,
                    model.run_id == ti.run_id,
                    model.task_id == ti.task_id,
                    model.map_index == ti.map_index,
                )
            ).all()
            for try_number, state, start, end, duration in rows:
                if try_number and try_number > 0:
                    tries[try_number] = Attempt(try_number, str(state) if state else None, start, end, duration,
                                                latest=model is TaskInstance)
    return [tries[n] for n in sorted(tries)]


@dataclass(frozen=True)
class TaskTry:
    """One try of the task in any run: what the compare page offers to compare with."""

    run_id: str
    try_number: int
    state: str | None
    start_date: datetime | None
    end_date: datetime | None


def task_tries(dag_id: str, task_id: str, map_index: int, limit: int = 20) -> list[TaskTry]:
    """The latest ``limit`` tries of the task across the DAG's runs (newest first)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: dict[tuple[str, int], TaskTry] = {}
    with create_session() as session:
        for model in (TaskInstanceHistory, TaskInstance):  # the live row wins over a history row of the same try
            rows = session.execute(
                select(model.run_id, model.try_number, model.state, model.start_date, model.end_date)
                .where(model.dag_id == dag_id, model.task_id == task_id, model.map_index == map_index)
                .order_by(model.start_date.desc())
                .limit(limit * 2)
            ).all()
            for run_id, try_number, state, start, end in rows:
                if try_number and try_number > 0:
                    found[(run_id, try_number)] = TaskTry(run_id, try_number, str(state) if state else None, start, end)
    far_past = datetime.min.replace(tzinfo=None)

    def when(t: TaskTry) -> datetime:
        return (t.start_date or t.end_date or far_past).replace(tzinfo=None)

    return sorted(found.values(), key=when, reverse=True)[:limit]


def last_success(dag_id: str, task_id: str, map_index: int, *, other_than: tuple[str, int]) -> TaskTry | None:
    """The most recent successful try of the task, in any run, other than ``other_than`` (run id, try)."""
    for t in task_tries(dag_id, task_id, map_index, limit=200):
        if t.state == "success" and (t.run_id, t.try_number) != other_than:
            return t
    return None
