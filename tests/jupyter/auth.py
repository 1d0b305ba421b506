"""An auth manager for the Jupyter extension's tests: Airflow's SimpleAuthManager, where a user named
``only-<dag_id>`` may read that one DAG and no other (``[core] simple_auth_manager_users`` names hold no ``:``, so
the viewer tests' ``only:<dag_id>`` cannot be configured for a real api-server)."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

PREFIX = "only-"


class OneDagAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.username.startswith(PREFIX):
            dag_id = details.id if details is not None else None
            if dag_id is None and access_entity is None:  # the DAGs as a whole
                return False
            if dag_id is not None and dag_id != user.username[len(PREFIX):]:
                return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
