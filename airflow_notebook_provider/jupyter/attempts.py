"""The attempts of a notebook's tasks, read from the Airflow REST API with the configured user's rights, and one
attempt's output notebook, read through the viewer's ``/download`` (so Airflow's access rules apply and JupyterLab
needs no storage credentials).

One panel load costs one paginated listing of the notebook operators' task instances (all DAGs the user may read:
``~``), one ``/tries`` call per task instance that was retried, and one DAG call per matched DAG (its schedule).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from airflow_notebook_provider.jupyter.client import AirflowClient, AirflowRefused, q
from airflow_notebook_provider.jupyter.locations import matches, rendered_notebook

PAGE = 100  # Airflow's default [api] maximum_page_limit
VIEWER_PREFIX = "/notebook"  # links/notebook.py's: the viewer plugin's mount point under the api-server's URL
ROUTE = "airflow-notebook/api"


@dataclass(frozen=True)
class AttemptId:
    """One try of one task instance: what the debug, output and compare routes take."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AttemptId:
        """From a JSON body or a query string; ``ValueError`` names the field that is missing or wrong."""
        values: dict[str, Any] = {}
        for name in ("dag_id", "run_id", "task_id"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` must be a non-empty string.")
            values[name] = value
        for name, low in (("map_index", -1), ("try_number", 1)):
            raw = data.get(name, -1 if name == "map_index" else None)
            try:
                number = int(raw)
            except (TypeError, ValueError):
                raise ValueError(f"`{name}` must be an integer.") from None
            if number < low or isinstance(raw, bool):
                raise ValueError(f"`{name}` must be an integer of at least {low}.")
            values[name] = number
        return cls(**values)

    def query(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task_id": self.task_id, "map_index": self.map_index,
                "try_number": self.try_number}

    def viewer(self, route: str = "view", **extra: Any) -> str:
        """The viewer's route for this attempt, relative to the api-server's URL."""
        return f"{VIEWER_PREFIX}/dags/{q(self.dag_id)}/{route}?{urlencode({**self.query(), **extra})}"

    def describe(self) -> str:
        mapped = f" [map index {self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id} / {self.run_id} / {self.task_id}{mapped}, attempt {self.try_number}"


def _ti_path(ti: Mapping[str, Any]) -> str:
    path = f"/api/v2/dags/{q(ti['dag_id'])}/dagRuns/{q(ti['dag_run_id'])}/taskInstances/{q(ti['task_id'])}"
    return path + (f"/{ti['map_index']}" if ti.get("map_index", -1) >= 0 else "")


async def notebook_task_instances(client: AirflowClient, wanted: set[str], operators: list[str], limit: int,
                                  max_scan: int) -> list[dict[str, Any]]:
    """The notebook operators' task instances that ran (or will run) this notebook, newest run first.

    A task instance that has not rendered its fields yet (scheduled, queued) belongs to it when another instance of
    the same task rendered this notebook."""
    scanned: list[dict[str, Any]] = []
    params: list[tuple[str, Any]] = [("operator", op) for op in operators] + [("order_by", "-run_after"),
                                                                            ("limit", PAGE)]
    found = 0
    for offset in range(0, max_scan, PAGE):
        page = await client.json("GET", "/api/v2/dags/~/dagRuns/~/taskInstances", params=[*params, ("offset", offset)])
        batch = page.get("task_instances") or []
        scanned += batch
        found += sum(1 for ti in batch if matches(rendered_notebook(ti.get("rendered_fields")), wanted))
        if len(batch) < PAGE or found >= limit:
            break
    tasks = {(ti["dag_id"], ti["task_id"]) for ti in scanned
             if matches(rendered_notebook(ti.get("rendered_fields")), wanted)}
    return [ti for ti in scanned if (ti["dag_id"], ti["task_id"]) in tasks and (
        matches(rendered_notebook(ti.get("rendered_fields")), wanted)
        or rendered_notebook(ti.get("rendered_fields")) is None)]


async def _tries(client: AirflowClient, ti: dict[str, Any]) -> list[dict[str, Any]]:
    """Every try of a task instance (its history and the current one); only asked for a retried one."""
    if int(ti.get("try_number") or 0) <= 1:
        return [ti]
    try:
        found = (await client.json("GET", _ti_path(ti) + "/tries")).get("task_instances") or []
    except AirflowRefused:
        return [ti]
    tries = {int(t["try_number"]): t for t in found if isinstance(t.get("try_number"), int)}
    tries[int(ti["try_number"])] = ti
    return [tries[n] for n in sorted(tries)]


async def _schedule(client: AirflowClient, dag_id: str) -> str | None:
    try:
        dag = await client.json("GET", f"/api/v2/dags/{q(dag_id)}")
    except AirflowRefused:
        return None
    summary = dag.get("timetable_summary") or dag.get("timetable_description")
    return str(summary) if summary else None


def _newest_first(attempt: Mapping[str, Any]) -> tuple[int, str, str, int]:
    start = attempt.get("start_date")
    return (0 if start else 1, start or "", attempt.get("run_after") or "", attempt["try_number"])


async def runs(client: AirflowClient, wanted: set[str], operators: list[str], limit: int, max_scan: int
               ) -> dict[str, Any]:
    """The ``runs`` route's answer: the tasks that run the notebook, and their attempts, newest first."""
    tis = await notebook_task_instances(client, wanted, operators, limit, max_scan)
    dag_ids = sorted({ti["dag_id"] for ti in tis})
    schedules, tries = await asyncio.gather(asyncio.gather(*(_schedule(client, d) for d in dag_ids)),
                                            asyncio.gather(*(_tries(client, ti) for ti in tis)))
    schedule_of = dict(zip(dag_ids, schedules, strict=True))
    tasks = sorted({(ti["dag_id"], ti["task_id"]) for ti in tis})
    attempts = []
    for ti, ti_tries in zip(tis, tries, strict=True):
        rendered = ti.get("rendered_fields") or {}
        for t in ti_tries:
            attempt = AttemptId(ti["dag_id"], ti["dag_run_id"], ti["task_id"], int(ti.get("map_index", -1)),
                                int(t.get("try_number") or 0) or 1)
            started = bool(t.get("start_date"))
            attempts.append({
                "dag_id": attempt.dag_id, "run_id": attempt.run_id, "task_id": attempt.task_id,
                "map_index": attempt.map_index, "try_number": attempt.try_number, "state": t.get("state"),
                "start_date": t.get("start_date"), "end_date": t.get("end_date"), "duration": t.get("duration"),
                "run_after": ti.get("run_after"),
                "parameters": rendered.get("parameters") if isinstance(rendered, Mapping) else None,
                "notebook": rendered_notebook(rendered),
                # This server's route that returns the output notebook (relative to its base URL); None before
                # the attempt started, when it has none.
                "output": f"{ROUTE}/output?{urlencode({'dag_id': attempt.dag_id, **attempt.query()})}"
                if started else None,
                "viewer_url": client.url + attempt.viewer() if started else None,
            })
    attempts.sort(key=_newest_first, reverse=True)
    return {"tasks": [{"dag_id": d, "task_id": t, "schedule": schedule_of.get(d)} for d, t in tasks],
            "attempts": attempts[:limit]}


async def output_notebook(client: AirflowClient, attempt: AttemptId) -> bytes:
    """The attempt's output notebook as the task wrote it, from the viewer's ``/download`` (with the user's rights:
    403 for a DAG they may not read)."""
    resp = await client.request("GET", attempt.viewer("download"))
    if resp.status_code != 200:
        what = {403: f"The Airflow user may not read the notebooks of DAG {attempt.dag_id}.",
                404: f"Airflow has no output notebook for {attempt.describe()} (not started, removed, or the "
                     "notebook viewer plugin is not installed in the api-server)."}.get(resp.status_code)
        raise AirflowRefused(resp.status_code, what or f"The viewer answered HTTP {resp.status_code} for "
                             f"{attempt.describe()}: {_text(resp.text)}")
    return resp.content


def _text(body: str) -> str:
    """The start of an error page, as text."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", body)).strip()[:300]


async def previous_attempt(client: AirflowClient, attempt: AttemptId, against: str) -> AttemptId:
    """The try to compare ``attempt`` with: ``previous`` (the try before it) or ``last_success`` (the task's
    newest successful try other than it). ``LookupError`` says when there is none."""
    if against == "previous":
        if attempt.try_number <= 1:
            raise LookupError(f"Attempt {attempt.try_number} is the first attempt of its task instance.")
        return AttemptId(attempt.dag_id, attempt.run_id, attempt.task_id, attempt.map_index, attempt.try_number - 1)
    if against != "last_success":
        raise ValueError("`against` must be previous or last_success (or give against_run_id and against_try).")
    found = await client.json("GET", f"/api/v2/dags/{q(attempt.dag_id)}/dagRuns/~/taskInstances", params={
        "task_id": attempt.task_id, "state": "success", "map_index": attempt.map_index, "order_by": "-end_date",
        "limit": 2})
    for ti in found.get("task_instances") or []:
        other = AttemptId(attempt.dag_id, ti["dag_run_id"], attempt.task_id, attempt.map_index, int(ti["try_number"]))
        if other != attempt:
            return other
    raise LookupError(f"Task {attempt.task_id} of {attempt.dag_id} has no successful attempt other than this one.")
