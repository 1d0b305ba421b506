"""Viewer URLs as the viewer builds them; used by tests/viewer's API and compare tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode


def route(name: str, dag_id: str, run_id: str, task_id: str = "nb", **extra: Any) -> str:
    """A viewer URL as the viewer builds them: ``/notebook/dags/<dag_id>/<name>?run_id=…&task_id=…``."""
    return f"/notebook/dags/{quote(dag_id, safe='')}/{name}?" + urlencode({"run_id": run_id, "task_id": task_id,
                                                                           **extra})
