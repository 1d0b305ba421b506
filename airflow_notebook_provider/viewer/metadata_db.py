"""What the metadata DB says about a task instance, for the viewer and the CLI: the record its latest attempt
pushed to XCom, its operator's ``conn_id`` and ``output_notebook``, and the host an attempt ran on.

Everything is read as plain values (never through Airflow's XCom deserialization) and nothing here touches a
store: ``lookup`` decides from these facts where an attempt's notebook may be and reads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from airflow_notebook_provider.results import RECORD_XCOM_KEY
from airflow_notebook_provider.task.outputs import LocationRecord, TaskInstanceId

log = logging.getLogger(__name__)


def xcom_record(ti: TaskInstanceId) -> LocationRecord | None:
    """The record the latest attempt pushed to XCom, read from the metadata DB as plain JSON, or None.

    Never through Airflow's XCom deserialization: the api-server does not instantiate classes named in data a
    task (or a user allowed to write XComs) wrote. The column holds JSON text or an already decoded value,
    depending on the database and Airflow version; anything but a plain record object is no record.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == ti.dag_id,
                XComModel.run_id == ti.run_id,
                XComModel.task_id == ti.task_id,
                XComModel.map_index == ti.map_index,
                XComModel.key == RECORD_XCOM_KEY,
            )
        )
    return LocationRecord.parse(plain_json(row))


def plain_json(value: Any) -> Any:
    """A DB value as plain JSON: text and bytes are parsed (twice at most: some versions stored JSON text in a JSON
    column), anything else is taken as already decoded; None when it is not JSON."""
    for _ in range(2):
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "replace")
        if not isinstance(value, str):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


@dataclass(frozen=True)
class TaskFacts:
    """What the task's operator says (the DAG as the dag-processor serialized it, and the fields rendered for the
    latest try): the connection its storage uses and where it writes its notebook."""

    conn_id: str | None = None
    output_notebook: tuple[str, ...] = ()
    """The configured output: the rendered value, and the serialized one (a template: see ``_could_have_written``)."""


def task_facts(ti: TaskInstanceId) -> TaskFacts:
    """The task's ``conn_id`` and ``output_notebook`` from the metadata DB (never from a record).

    ``conn_id`` and ``output_notebook`` are template fields: the value rendered for the task instance's latest try
    (``rendered_task_instance_fields``) wins over the serialized one. An unknown task gives no connection (the
    allowed location's own, if any) and only the default layout.
    """
    try:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            serialized = None
            version = session.scalar(select(TaskInstance.dag_version_id).where(
                TaskInstance.dag_id == ti.dag_id, TaskInstance.run_id == ti.run_id,
                TaskInstance.task_id == ti.task_id, TaskInstance.map_index == ti.map_index))
            if version is not None:
                serialized = session.scalar(select(SerializedDagModel).where(
                    SerializedDagModel.dag_version_id == version).limit(1))
            if serialized is None:
                serialized = SerializedDagModel.get(ti.dag_id, session=session)
            fields = _serialized_task(serialized.data if serialized is not None else None, ti.task_id)
            rendered = plain_json(session.scalar(select(Rtif.rendered_fields).where(
                Rtif.dag_id == ti.dag_id, Rtif.run_id == ti.run_id, Rtif.task_id == ti.task_id,
                Rtif.map_index == ti.map_index)))
    except Exception as exc:  # noqa: BLE001 - no such DAG or an older schema: the strictest answer
        log.debug("No operator fields for %s: %s", ti.describe(), exc)
        return TaskFacts()
    rendered = rendered if isinstance(rendered, dict) else {}

    def text(source: dict[str, Any], *names: str) -> str | None:
        for name in names:
            value = source.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    conn_id = text(rendered, "conn_id") or text(fields, "conn_id")
    outputs = tuple(dict.fromkeys(v for v in (text(rendered, "output_notebook", "output_nb"),
                                              text(fields, "output_notebook", "output_nb")) if v))
    return TaskFacts(conn_id, outputs)


def _serialized_task(data: Any, task_id: str) -> dict[str, Any]:
    """The serialized operator's fields (``{"__type": "operator", "__var": {...}}`` or the bare dict)."""
    dag = (data or {}).get("dag") if isinstance(data, dict) else None
    for task in (dag or {}).get("tasks") or []:
        fields = task.get("__var", task) if isinstance(task, dict) else None
        if isinstance(fields, dict) and fields.get("task_id") == task_id:
            return fields
    return {}

def attempt_hostname(ti: TaskInstanceId, try_number: int | None) -> str | None:
    """The host an attempt ran on, as Airflow recorded it (``task_instance`` or ``task_instance_history``)."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            for model in (TaskInstance, TaskInstanceHistory):
                query = select(model.hostname).where(
                    model.dag_id == ti.dag_id, model.run_id == ti.run_id, model.task_id == ti.task_id,
                    model.map_index == ti.map_index,
                )
                if try_number is not None:
                    query = query.where(model.try_number == try_number)
                host = session.scalar(query.limit(1))
                if host:
                    return str(host)
    except Exception:  # noqa: BLE001 - without the host, the page still names the path
        return None
    return None
