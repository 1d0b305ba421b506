"""The viewer's Airflow plugin, kept light: every task process loads every plugin (Airflow integrates plugins'
macros when it builds a task's template context), so this module imports nothing of the viewer itself.

Importing the viewer (``viewer.app``: FastAPI routes, Airflow's auth manager and api-server app, nbconvert,
the comparison) costs a fresh process 1.5-2 s of CPU; done here, every task of every DAG on a worker with this
provider installed paid it (found with the soak's profile, bench/README.md). ``ViewerApp`` is a small ASGI app that
the api-server mounts under ``/notebook`` and that imports the viewer on its first request.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from airflow.plugins_manager import AirflowPlugin

from airflow_notebook_provider.links.notebook import VIEWER_PREFIX, viewer_base_url

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ViewerApp:
    """An ASGI app that stands for ``viewer.app.app`` and imports it when the first request comes."""

    def __init__(self, target: str = "airflow_notebook_provider.viewer.app:app") -> None:
        self.target = target
        self._app: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    module, _, name = self.target.partition(":")
                    self._app = getattr(importlib.import_module(module), name)
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load()(scope, receive, send)


def base_path() -> str:
    """The path of ``[notebook] viewer_base_url`` / ``[api] base_url`` (e.g. ``/airflow``), or empty."""
    return urlsplit(viewer_base_url()).path.rstrip("/")


class NotebookViewerPlugin(AirflowPlugin):
    """Registered by the provider (``get_provider_info``) and the ``airflow.plugins`` entry point.

    Serves the viewer under ``/notebook`` and adds a "Notebook" tab to every task instance page (the page says
    so when the task recorded no notebook).
    """

    name = "notebook_viewer"
    fastapi_apps = [{"app": ViewerApp(), "url_prefix": VIEWER_PREFIX, "name": "Notebook viewer"}]
    external_views = [
        {
            "name": "Notebook",
            # The UI loads external views in an iframe of its own origin: a root-relative href, under [api]
            # base_url's path. It replaces {DAG_ID}, {RUN_ID}, {TASK_ID} (URI-encoded) and {MAP_INDEX} (on mapped
            # instances).
            "href": f"{base_path()}{VIEWER_PREFIX}/dags/{{DAG_ID}}/view?run_id={{RUN_ID}}&task_id={{TASK_ID}}"
            "&map_index={MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "notebook",
        }
    ]
