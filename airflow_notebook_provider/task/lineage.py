"""OpenLineage for notebook tasks: what the operator's ``get_openlineage_facets_on_*`` methods return.

Used only when ``apache-airflow-providers-openlineage`` is installed (``pip install
airflow-notebook-provider[openlineage]``) and configured (e.g. ``AIRFLOW__OPENLINEAGE__TRANSPORT``). Inputs: the
input notebook, then the datasets the notebook declared with ``record_lineage(inputs=...)``. Outputs: the output
notebook, its reports and collected files, then the declared outputs. A run facet ``airflow_notebook`` describes the
run (parameters without the secret ones, input sha256, kernel, language, cells, duration, and for a failure the
failing cell and error; for a notebook read from the DAG's bundle, ``bundle``: its name, version, path and sha256); a
failure adds OpenLineage's standard ``errorMessage`` facet. Dataset names follow
OpenLineage's naming conventions: ``s3://bucket`` + key for object storage, ``file`` + absolute path for a local file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_notebook_provider.notebook.errors import Failure
from airflow_notebook_provider.notebook.origin import NotebookOrigin
from airflow_notebook_provider.notebook.record import PROVENANCE_KEY
from airflow_notebook_provider.results import read_lineage

FACET_NAME = "airflow_notebook"
FACET_SCHEMA = "https://github.com/airflow-notebook-provider/airflow-notebook-provider/blob/main/docs/NotebookRunFacet.json"


def dataset_name(location: str) -> tuple[str, str]:
    """(namespace, name) of a location, after OpenLineage's naming conventions."""
    if "://" not in location:
        return "file", os.path.abspath(os.path.expanduser(location))
    parts = urlsplit(location)
    if parts.scheme == "file":
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"


@dataclass
class LineageState:
    """What the operator learnt about one attempt, for the lineage events sent when it starts and ends."""

    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    nb: Any = None
    reports: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    failure: Failure | None = None
    origin: NotebookOrigin | None = None
    """The bundle version of a notebook given by a relative path (``task.bundle``)."""


def operator_lineage(state: LineageState | None, *, notebook: str, finished: bool) -> Any:
    """An ``OperatorLineage`` for the attempt (``finished``: with outputs and the run's outcome)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    state = state or LineageState(notebook=notebook)
    inputs = [dataset_name(state.notebook)] if state.notebook else []
    outputs: list[tuple[str, str]] = []
    declared_in: list[Any] = []
    declared_out: list[Any] = []
    if finished:
        locations = ([state.output] if state.output else []) + list(state.reports.values()) + list(state.files)
        outputs = [dataset_name(loc) for loc in locations]
        if state.nb is not None:
            declared_in, declared_out = read_lineage(state.nb)
    run_facets: dict[str, Any] = {FACET_NAME: _run_facet(state, finished)}
    if finished and state.failure is not None:
        from openlineage.client.facet_v2 import error_message_run

        f = state.failure
        language = ((state.nb.metadata.get("kernelspec") or {}).get("language") if state.nb is not None else None)
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=f"{f.ename}: {f.evalue}", programmingLanguage=language or "python",
            stackTrace="\n".join(f.traceback) or None,
        )
    return OperatorLineage(
        inputs=[Dataset(namespace=ns, name=name) for ns, name in _unique(inputs + _named(declared_in))],
        outputs=[Dataset(namespace=ns, name=name) for ns, name in _unique(outputs + _named(declared_out))],
        run_facets=run_facets,
    )


def _named(declared: list[Any]) -> list[tuple[str, str]]:
    return [dataset_name(d) if isinstance(d, str) else (d["namespace"], d["name"]) for d in declared]


def _unique(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(items))


def _run_facet(state: LineageState, finished: bool) -> Any:
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class NotebookRunFacet(RunFacet):
        """This provider's run facet: how the notebook ran."""

        parameters: dict[str, Any]
        notebook: str
        outputNotebook: str | None = None
        inputSha256: str | None = None
        kernel: str | None = None
        language: str | None = None
        cells: int | None = None
        durationSeconds: float | None = None
        failure: dict[str, Any] | None = None
        bundle: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA

    values: dict[str, Any] = {"parameters": dict(state.parameters), "notebook": state.notebook,
                              "outputNotebook": state.output}
    if state.origin is not None:
        values["bundle"] = state.origin.to_json()
    nb = state.nb
    if finished and nb is not None:
        meta = nb.metadata
        spec = meta.get("kernelspec") or {}
        values.update(
            inputSha256=(meta.get(PROVENANCE_KEY) or {}).get("input_sha256"),
            kernel=spec.get("name"), language=spec.get("language") or (meta.get("language_info") or {}).get("name"),
            cells=sum(1 for c in nb.cells if c.get("cell_type") == "code"),
            durationSeconds=(meta.get("papermill") or {}).get("duration"),
        )
    if finished and state.failure is not None:
        f = state.failure
        values["failure"] = {"kind": f.kind, "cell": f.code_cell_number, "ename": f.ename, "evalue": f.evalue}
    return NotebookRunFacet(**values)
