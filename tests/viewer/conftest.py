"""The real api-server app (Airflow's auth manager, metadata DB and this provider's plugin) in a test client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Api:
    client: Any
    token: Callable[..., str]

    def get(self, url: str, user: str | None = "admin", role: str = "viewer", **kwargs: Any) -> Any:
        """GET as ``user`` (None: no credentials) with the UI's token; ``url`` may be a full link."""
        parts = urlsplit(url)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
        headers = {"Authorization": f"Bearer {self.token(user, role)}"} if user else {}
        return self.client.get(path, headers=headers, **kwargs)


@pytest.fixture(scope="package")
def api(airflow_db: Any) -> Iterator[Api]:
    from airflow.api_fastapi import app as app_module
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    previous = os.environ.get("AIRFLOW__CORE__AUTH_MANAGER")
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.viewer.auth.DagScopedAuthManager"
    app_module._AuthManagerState.instance = None
    try:
        client = TestClient(create_app("core"))
        manager = get_auth_manager()

        def token(user: str, role: str = "viewer") -> str:
            return manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))

        yield Api(client, token)
    finally:
        app_module._AuthManagerState.instance = None
        if previous is None:
            os.environ.pop("AIRFLOW__CORE__AUTH_MANAGER", None)
        else:
            os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = previous
