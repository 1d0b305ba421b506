"""An auth manager for the viewer's tests: Airflow's SimpleAuthManager plus per-DAG read access.

SimpleAuthManager grants DAG access by role only. To check that the viewer asks the auth manager about the DAG
of the request, a user named ``only:<dag_id>`` may read that one DAG and no other.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.username.startswith("only:"):
            if details is None or details.id != user.username[len("only:"):]:
                return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
