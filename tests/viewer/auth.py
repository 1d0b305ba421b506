"""An auth manager for the viewer's tests: Airflow's SimpleAuthManager plus per-DAG and per-entity read access.

SimpleAuthManager grants DAG access by role only. To check that the viewer asks the auth manager about the DAG
of the request and about the right permissions, users are named for what they may not do:

- ``only:<dag_id>`` may read that one DAG and no other;
- ``nologs:<anything>`` may read every DAG's task instances but no task logs (a role without "Task Logs" read).

As FAB's auth manager does, a question about a DAG's sub-entity (task instances, logs…) without a DAG id is
answered by the entity permission alone: that is how a check that lost the request's DAG lets a DAG-scoped user
through, and why the viewer must always name the DAG.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.username.startswith("only:"):
            dag_id = details.id if details is not None else None
            if dag_id is None and access_entity is None:  # the DAGs as a whole: a DAG-scoped user may not
                return False
            if dag_id is not None and dag_id != user.username[len("only:"):]:
                return False
        if user.username.startswith("nologs:") and access_entity == DagAccessEntity.TASK_LOGS:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
