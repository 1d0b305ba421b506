"""The extension's REST routes (``ROUTE`` under the Jupyter server's base URL), all ``APIHandler``s behind
``@tornado.web.authenticated``: Jupyter's token or login, and its XSRF check on POST. Errors are JSON
``{"message", "fix"}`` with the HTTP status; an Airflow error keeps Airflow's status and ``detail``.

Routes: ``status``, ``runs?path=``, ``params?path=``, ``output?<attempt>``, ``compare?<attempt>&against=``,
``POST debug``, ``POST trigger``, ``POST schedule`` (docs/jupyterlab.md gives their JSON).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join

from airflow_notebook_provider.jupyter import attempts, schedule
from airflow_notebook_provider.jupyter.attempts import ROUTE, AttemptId
from airflow_notebook_provider.jupyter.client import AirflowClient, AirflowRefused, AirflowUnavailable, q
from airflow_notebook_provider.jupyter.config import AirflowNotebook
from airflow_notebook_provider.jupyter.locations import BadPath, local_file, relative, task_locations
from airflow_notebook_provider.notebook.compare import compare
from airflow_notebook_provider.notebook.debug import debug_copy
from airflow_notebook_provider.notebook.introspect import NotIntrospectable, declared_parameters
from airflow_notebook_provider.notebook.load import load
from airflow_notebook_provider.notebook.record import read_run


class Failed(Exception):
    """An answer other than 200: ``status`` and a JSON body."""

    def __init__(self, status: int, message: str, fix: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"message": message, "fix": fix, **extra}


def answers(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
    """Run the route and write its JSON; each known failure becomes its status and ``{"message", "fix"}``."""

    @functools.wraps(method)
    async def wrapper(self: Base, *args: Any) -> None:
        try:
            result = await method(self, *args)
        except Failed as exc:
            return self._fail(exc.status, exc.body)
        except AirflowUnavailable as exc:
            return self._fail(exc.status, {"message": exc.message, "fix": exc.fix})
        except AirflowRefused as exc:
            return self._fail(exc.status, {"message": _detail(exc.detail), "fix": None, "airflow_detail": exc.detail})
        except schedule.Refused as exc:
            return self._fail(exc.status, {"message": str(exc), "fix": None, **(exc.details or {})})
        except (BadPath, ValueError, LookupError) as exc:
            return self._fail(404 if isinstance(exc, LookupError) else 400, {"message": str(exc), "fix": None})
        self.finish(json.dumps(result, default=str))

    return wrapper


def _detail(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)


class Base(APIHandler):
    def initialize(self, settings: AirflowNotebook, client: AirflowClient) -> None:
        self.airflow_settings, self.client = settings, client

    def _fail(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(json.dumps(body, default=str))

    @property
    def root(self) -> str:
        return str(getattr(self.contents_manager, "root_dir", None) or self.settings["server_root_dir"])

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise Failed(400, "The request body is not JSON.") from None
        if not isinstance(data, dict):
            raise Failed(400, "The request body must be a JSON object.")
        return data

    def path_argument(self, value: Any) -> tuple[str, Path]:
        """(the path as JupyterLab names it, its absolute path), for a notebook that exists."""
        if not isinstance(value, str) or not value:
            raise Failed(400, "`path` (the notebook's path relative to the Jupyter root) is missing.")
        full = local_file(self.root, value)
        if not full.is_file():
            raise Failed(404, f"No file {value!r} under the Jupyter root.")
        return value, full

    async def notebook(self, path: str) -> Any:
        """The notebook at ``path``, read through Jupyter's contents manager (its access rules, hidden files)."""
        try:
            model = await ensure_async(self.contents_manager.get(path, content=True, type="file", format="text"))
        except tornado.web.HTTPError as exc:
            raise Failed(exc.status_code, f"Cannot read {path}: {exc.log_message or exc.reason}") from None
        return load(str(model["content"]).encode(), path)

    async def declared(self, path: str) -> tuple[set[str] | None, dict[str, Any]]:
        """The parameter names the notebook declares (None: no ``parameters`` cell), and ``params``' answer."""
        nb = await self.notebook(path)
        meta = nb.metadata
        language = (meta.get("kernelspec", {}).get("language") or meta.get("language_info", {}).get("name")
                    or "python")
        try:
            found = declared_parameters(nb, language)
        except NotIntrospectable as exc:
            raise Failed(422, f"{path}: {exc}.") from None
        answer = {"path": path, "language": language, "has_parameters_cell": found is not None,
                  "parameters": [p.to_json() for p in found or []]}
        return ({p.name for p in found} if found is not None else None), answer

    def notebook_location(self, full: Path) -> str:
        """How a task names the notebook: through ``path_map`` if a folder of it holds the notebook, else its path."""
        for folder, prefix in self.airflow_settings.path_map.items():
            base = (Path(folder) if Path(folder).is_absolute() else Path(self.root) / folder).resolve()
            if full.is_relative_to(base):
                return prefix.rstrip("/") + "/" + full.relative_to(base).as_posix()
        return str(full)


class StatusHandler(Base):
    @tornado.web.authenticated
    @answers
    async def get(self) -> dict[str, Any]:
        answer: dict[str, Any] = {**self.airflow_settings.public(), "connected": False, "user": self.client.user,
                                  "airflow_version": None, "error": None, "fix": None}
        try:
            answer["airflow_version"] = await self.client.version()
            await self.client.json("GET", "/api/v2/dags", params={"limit": 1})
            answer["connected"] = True
        except AirflowUnavailable as exc:
            answer.update(error=exc.message, fix=exc.fix)
        except AirflowRefused as exc:
            answer.update(connected=True, error=f"Airflow refused to list DAGs to user {self.client.user!r} "
                                                f"(HTTP {exc.status}): {_detail(exc.detail)}",
                          fix="Give the user read access to the DAGs of your notebooks in Airflow.")
        return answer


class RunsHandler(Base):
    @tornado.web.authenticated
    @answers
    async def get(self) -> dict[str, Any]:
        _, full = self.path_argument(self.get_query_argument("path", ""))
        try:
            limit = max(1, min(500, int(self.get_query_argument("limit", "50"))))
        except ValueError:
            raise Failed(400, "`limit` must be a number.") from None
        s = self.airflow_settings
        wanted = task_locations(self.root, full, s.path_map, s.dag_folder)
        return await attempts.runs(self.client, wanted, list(s.operators), limit, s.max_task_instances)


class ParamsHandler(Base):
    @tornado.web.authenticated
    @answers
    async def get(self) -> dict[str, Any]:
        path, _ = self.path_argument(self.get_query_argument("path", ""))
        return (await self.declared(path))[1]


def _attempt_from_query(handler: Base, prefix: str = "") -> AttemptId:
    names = ("dag_id", "run_id", "task_id", "map_index", "try_number")
    return AttemptId.parse({n: handler.get_query_argument(prefix + n, None) for n in names
                            if handler.get_query_argument(prefix + n, None) is not None})


class OutputHandler(Base):
    """The attempt's output notebook (through the viewer), for JupyterLab to show read-only:
    ``{"name", "content"}``."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> dict[str, Any]:
        attempt = _attempt_from_query(self)
        data = await attempts.output_notebook(self.client, attempt)
        return {"name": _name(attempt) + ".ipynb", "content": json.loads(data), "viewer_url":
                self.client.url + attempt.viewer()}


def _name(attempt: AttemptId) -> str:
    """``<dag>__<task>[__map-i]__attempt-<n>``, one plain file name (what ``airflow-notebook pull`` names it)."""
    parts = [attempt.dag_id, attempt.task_id] + ([f"map-{attempt.map_index}"] if attempt.map_index >= 0 else [])
    stem = "__".join([*parts, f"attempt-{attempt.try_number}"])
    stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in stem).lstrip(".-")[:200]
    return stem or "notebook"


class CompareHandler(Base):
    """This attempt (B) against ``against`` (``previous``, ``last_success``) or ``against_run_id`` +
    ``against_try`` (A): ``{"a", "b", "viewer_url", "comparison"}`` (``Comparison.to_json``, as ``diff --json``)."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> dict[str, Any]:
        b = _attempt_from_query(self)
        against_try = self.get_query_argument("against_try", None)
        if against_try is not None:
            a = AttemptId.parse({**b.__dict__, "run_id": self.get_query_argument("against_run_id", b.run_id),
                                 "try_number": against_try})
            extra = {"against_run_id": a.run_id, "against_try": a.try_number}
        else:
            against = self.get_query_argument("against", "previous")
            a = await attempts.previous_attempt(self.client, b, against)
            extra = {"against": against}
        data_a, data_b = await asyncio.gather(attempts.output_notebook(self.client, a),
                                              attempts.output_notebook(self.client, b))
        nb_a, nb_b = load(data_a, a.describe()), load(data_b, b.describe())
        result = compare(nb_a, nb_b, label_a=a.describe(), label_b=b.describe())
        return {"a": a.__dict__, "b": b.__dict__, "viewer_url": self.client.url + b.viewer("compare", **extra),
                "comparison": result.to_json()}


class DebugHandler(Base):
    """Writes the attempt's debug copy beside the notebook (``path`` in the body, else the attempt's input if it
    is under the Jupyter root, else the root): ``{"path", "failed_cell"}``."""

    @tornado.web.authenticated
    @answers
    async def post(self) -> dict[str, Any]:
        body = self.body()
        attempt = AttemptId.parse(body)
        data = await attempts.output_notebook(self.client, attempt)
        nb = load(data, attempt.describe())
        folder = self._folder(body.get("path"), read_run(nb).input_path)
        copy = debug_copy(nb, self.client.url + attempt.viewer())
        for cell in copy.cells:  # the task wrote these: Jupyter's trust is decided by their outputs, never by them
            cell.metadata.pop("trusted", None)
        target = f"{folder}/{_name(attempt)}.debug.ipynb".lstrip("/")
        model = {"type": "notebook", "format": "json", "content": copy}
        await ensure_async(self.contents_manager.save(model, target))
        failed = read_run(copy).failed_cell
        return {"path": target, "failed_cell": None if failed is None else {
            "index": failed.index, "position": failed.position, "execution_count": failed.execution_count,
            "ename": failed.ename, "evalue": failed.evalue, "traceback": list(failed.traceback)},
            "parameters": read_run(copy).parameters}

    def _folder(self, path: Any, input_path: str | None) -> str:
        """The folder of ``path`` (the open notebook), else of the run's input when it is under the root."""
        if isinstance(path, str) and path:
            local_file(self.root, path)  # under the root
            return PurePosixPath(path).parent.as_posix().strip(".")
        if input_path and Path(input_path).is_absolute():
            try:
                return PurePosixPath(relative(self.root, Path(input_path))).parent.as_posix().strip(".")
            except ValueError:
                pass
        return ""


class TriggerHandler(Base):
    """A DAG run with the parameters as its conf, checked against the notebook's parameters first."""

    @tornado.web.authenticated
    @answers
    async def post(self) -> dict[str, Any]:
        body = self.body()
        path, _ = self.path_argument(body.get("path"))
        dag_id, parameters = body.get("dag_id"), body.get("parameters") or {}
        if not isinstance(dag_id, str) or not dag_id:
            raise Failed(400, "`dag_id` is missing.")
        if not isinstance(parameters, dict):
            raise Failed(400, "`parameters` must be an object of parameter name -> value.")
        declared, _ = await self.declared(path)
        schedule.check_parameters(parameters, declared)
        run = await self.client.json("POST", f"/api/v2/dags/{q(dag_id)}/dagRuns",
                                     json={"logical_date": None, "conf": parameters})
        return {"dag_id": dag_id, "run_id": run["dag_run_id"], "state": run.get("state")}


class ScheduleHandler(Base):
    """A DAG file for the notebook in the DAGs folder, parsed by Airflow first: ``{"dag_file"}`` or 400 with
    Airflow's parse error (nothing written)."""

    @tornado.web.authenticated
    @answers
    async def post(self) -> dict[str, Any]:
        body = self.body()
        path, full = self.path_argument(body.get("path"))
        declared, _ = await self.declared(path)
        s = self.airflow_settings
        return await schedule.schedule(body, self.notebook_location(full), declared, s.dag_folder, s.parse_timeout)


ROUTES: dict[str, type[Base]] = {
    "status": StatusHandler, "runs": RunsHandler, "params": ParamsHandler, "output": OutputHandler,
    "compare": CompareHandler, "debug": DebugHandler, "trigger": TriggerHandler, "schedule": ScheduleHandler,
}


def setup(serverapp: Any) -> None:
    """Add the routes to the server's web app, with one settings object and one Airflow client."""
    settings = AirflowNotebook(parent=serverapp)
    client = AirflowClient(settings)
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, ROUTE, name), handler,
                                            {"settings": settings, "client": client})
                                           for name, handler in ROUTES.items()])
    where = settings.api_url or "nowhere yet (set AIRFLOW_NOTEBOOK_API_URL)"
    serverapp.log.info("airflow_notebook_provider.jupyter: routes under %s, Airflow at %s",
                       url_path_join(base, ROUTE), where)
