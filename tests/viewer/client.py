"""The real api-server app (Airflow's auth manager, metadata DB and this provider's plugin) in a test client
(``Api``, the ``api`` fixture that tests/viewer's and tests/notebooks' conftest.py offer), and ``write_notebook``."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest

from tests.helpers import forget_auth_manager, python_notebook


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

    def frame(self, page: Any, user: str | None = "admin", role: str = "viewer") -> Any:
        """The notebook of a viewer page, as the browser loads it: its sandboxed frame's document (``/render``)."""
        found = re.search(r"<iframe id='anp-notebook' [^>]*src='([^']*)'", page.text)
        assert found, f"no notebook frame on the page (HTTP {page.status_code}): {page.text[:300]}"
        return self.get(html.unescape(found.group(1)), user, role)


@pytest.fixture(scope="package")
def api(airflow_db: Any) -> Iterator[Api]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    previous = os.environ.get("AIRFLOW__CORE__AUTH_MANAGER")
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = "tests.viewer.auth.DagScopedAuthManager"
    forget_auth_manager()
    try:
        client = TestClient(create_app("core"))
        manager = get_auth_manager()

        def token(user: str, role: str = "viewer") -> str:
            return manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))

        yield Api(client, token)
    finally:
        forget_auth_manager()
        if previous is None:
            os.environ.pop("AIRFLOW__CORE__AUTH_MANAGER", None)
        else:
            os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = previous


def write_notebook(path: Path, *sources: str) -> None:
    """A Python notebook from cell sources; a source starting with ``#parameters`` is tagged ``parameters``."""
    nbformat.write(python_notebook(*sources), str(path))
