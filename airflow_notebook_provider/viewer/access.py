"""Who may read a DAG's notebooks, and which task instance a request names: what every viewer route depends on.

Airflow does not authenticate plugin apps: every route depends on ``may_read_notebooks``, which takes the user as
Airflow's own routes do (the UI's token, from the ``Authorization`` header or the UI's cookie) and asks the auth
manager about the DAG named in the path: reading its task instances and its task logs (what Airflow's log route
requires; the notebook is the task's output). No user: 401; not allowed: 403. The check does not rely on
``requires_access_dag``, which reads a ``dag_id`` from the query string only in releases with apache/airflow#60935.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Annotated

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, HTTPException, Query
from fastapi import Path as PathParam

from airflow_notebook_provider.task.outputs import TaskInstanceId
from airflow_notebook_provider.viewer.attempts import ViewerError

# What Airflow requires to read a task instance and its log (the log route): both, as the notebook is its output.
NEEDED = (DagAccessEntity.TASK_INSTANCE, DagAccessEntity.TASK_LOGS)
DAG_ROUTE = "/dags/{dag_id}"
# The UI substitutes {MAP_INDEX} only on a mapped task instance's page; elsewhere the placeholder stays as is.
_MAP_INDEX = re.compile(r"-?\d{1,9}")


def _dag_details(dag_id: str) -> DagDetails:
    """The DAG as the auth manager wants it: with its team on releases that have teams (3.1+), as
    ``requires_access_dag`` builds it; only the id on 3.0."""
    if "team_name" in inspect.signature(DagDetails).parameters:
        from airflow.models.dag import DagModel

        team_of = getattr(DagModel, "get_team_name", None)
        return DagDetails(id=dag_id, team_name=team_of(dag_id) if team_of else None)
    return DagDetails(id=dag_id)


def may_read_notebooks(dag_id: Annotated[str, PathParam()], user: Annotated[BaseUser, Depends(get_user)]) -> None:
    """Every route's access check: the user (``get_user``: 401 without one) may read the task instances and the task
    logs of the DAG in the path; else 403. The path's DAG is the one served: the query string names none."""
    manager = get_auth_manager()
    details = _dag_details(dag_id)
    for entity in NEEDED:
        if not manager.is_authorized_dag(method="GET", access_entity=entity, details=details, user=user):
            raise HTTPException(403, f"Forbidden: reading the notebooks of DAG {dag_id!r} needs read access to its "
                                     "task instances and task logs; ask an admin for them.")


can_read = Depends(may_read_notebooks)


def task_instance(dag_id: str, run_id: str, task_id: str, map_index: str) -> TaskInstanceId:
    """The task instance a request names; the viewer takes nothing else (no path, no URL)."""
    if not (dag_id and run_id and task_id):
        raise ViewerError(404, "No such task instance",
                          "The viewer shows a task attempt's notebook: give dag_id, run_id, task_id (and map_index, "
                          "try_number); follow the task's \"Output notebook\" link.")
    if map_index in ("", "{MAP_INDEX}"):
        return TaskInstanceId(dag_id, run_id, task_id, -1)
    if not _MAP_INDEX.fullmatch(map_index):
        raise ViewerError(404, "No such task instance", f"map_index must be an integer, got {map_index!r}.")
    return TaskInstanceId(dag_id, run_id, task_id, int(map_index))


@dataclass
class TaskQuery:
    """What every route takes: a task-instance identity (never a path or URL): the DAG from the path (the one
    ``may_read_notebooks`` checked), the rest from the query string."""

    dag_id: str = PathParam()
    run_id: str = Query("")
    task_id: str = Query("")
    map_index: str = Query("-1")

    def identity(self) -> TaskInstanceId:
        return task_instance(self.dag_id, self.run_id, self.task_id, self.map_index)


Named = Annotated[TaskQuery, Depends()]
