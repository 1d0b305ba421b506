"""Which tries a task instance had, with their states and times: Airflow's ``task_instance`` (the latest try) and
``task_instance_history`` (earlier tries) tables. Where each try's notebook is, is ``outputs``' job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from airflow_notebook_provider.outputs import TaskInstanceId

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
