"""One attempt of a notebook task on a worker: choose its output, run the notebook there under the supervisor's
watch, publish its reports and files, and push what it produced to XCom.

The operator gives it what is Airflow-operator-specific as values and callables (the link's ``persist`` among them):
this layer never imports the operators or the links.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import airflow

from airflow_notebook_provider.engine import Execution, ExecutionSettings, NotebookExecutionError, RunHooks, RunResult
from airflow_notebook_provider.engine.inputs import InputFiles, recorded
from airflow_notebook_provider.engine.writer import WriteKind
from airflow_notebook_provider.exceptions import NotebookTaskError
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.notebook.origin import ORIGIN_KEY, NotebookOrigin
from airflow_notebook_provider.results import (
    FILES_XCOM_KEY,
    REPORTS_XCOM_KEY,
    RESULTS_XCOM_KEY,
    ResultError,
    read_results,
)
from airflow_notebook_provider.task import outputs
from airflow_notebook_provider.task.lineage import LineageState
from airflow_notebook_provider.task.supervision import local_output_warning, watch_supervisor


class Attempt:
    """One attempt: built from the run's settings (the kernel may start at once), then ``run`` once.

    :param persist_output: Called with the output location after its first write, while the kernel boots and before
        it can run a cell: the link and downstream tasks see the location even if the attempt fails.
    :param lineage: What OpenLineage events describe; filled in as the attempt goes.
    :param input_files: Files of the notebook's folder copied into the kernel's working folder before any cell runs.
    """

    def __init__(
        self,
        notebook: str,
        *,
        task_id: str,
        parameters: Any,
        secrets: Mapping[str, Any],
        settings: ExecutionSettings,
        hooks: RunHooks,
        hook: NotebookHook,
        log: Any,
        output_notebook: str | None,
        early_kernel: bool,
        lineage: LineageState,
        persist_output: Callable[[str], None],
        input_files: InputFiles | None = None,
    ) -> None:
        self.task_id, self.hook, self.log, self.lineage = task_id, hook, log, lineage
        self.input_files = input_files
        self.output_notebook = output_notebook
        self.output = ""
        self._persist_output = persist_output
        self._also_on_write, self._also_on_finish = hooks.on_write, hooks.on_finish
        self._running: Execution | None = None
        hooks.on_write, hooks.on_finish = self._on_write, self._on_finish
        self.hooks = hooks
        self.execution = Execution(
            notebook, parameters=parameters, secrets=secrets, settings=settings, log=log, hooks=hooks,
            early_kernel=early_kernel,
        )

    def run(self, ti: Any, *, executor: Any, metadata: Mapping[str, Any]) -> RunResult:
        """Run the attempt into its output; ``NotebookExecutionError`` if a cell failed (reports still pushed)."""
        execution = self.execution
        watch = watch_supervisor(execution.stop, log=self.log)  # an orphan (its worker died) stops its run
        try:
            with execution:  # the kernel boots while the notebook is fetched and the output location chosen
                self._running = execution
                self.hook.check_connection()
                data = self.hook.read(execution.input_path)
                if self.input_files is not None:  # the notebook's folder, into the kernel's: before any cell runs
                    metadata = recorded(metadata, self.input_files.stage_for(
                        execution.input_path, execution.settings.cwd, self.hook.path, log=self.log,
                        retry_seconds=self.hook.retry_seconds))
                ti_id = outputs.TaskInstanceId.of(ti)
                execution.check_output(self.output_notebook or outputs.default_output(ti_id, ti.try_number))
                output = self.output = outputs.choose_output(self.hook, ti_id, ti.try_number, self.output_notebook)
                if warning := local_output_warning(output, executor, getattr(ti, "hostname", None) or "?"):
                    self.log.warning("%s", warning)
                self.lineage.output = output
                result = execution.run(
                    data, output, save=lambda b: self.hook.write(output, b), save_file=self.hook.write,
                    metadata=metadata,
                    provenance={"versions": {"airflow": airflow.__version__}},
                )
        except NotebookExecutionError as exc:
            self.lineage.failure = exc.failure
            self.push_published(ti)
            raise
        finally:
            self._running = None
            watch.close()
        if result.stopped_early:
            self.log.info("The notebook ended early with sys.exit(0); the task succeeds.")
        return result

    def stop(self, reason: str) -> None:
        """Kill the kernel of a running attempt; ``run`` then saves the notebook with a banner saying why."""
        if (execution := self._running) is not None:
            execution.stop(reason)

    def _on_write(self, kind: WriteKind, size: int) -> None:
        if kind == "first":
            self._persist_output(self.output)
            self.log.info("Output notebook: %s", self.output)
        if self._also_on_write is not None:
            self._also_on_write(kind, size)

    def _on_finish(self, nb: Any) -> None:
        """The run ended and its reports and files are made: keep what lineage events describe, then call the
        ``on_finish`` of the operator's ``run_hooks()``, if any."""
        state, publisher = self.lineage, self.execution.publisher
        state.nb = nb
        if publisher is not None:
            state.reports, state.files = dict(publisher.reports), list(publisher.files)
        if self._also_on_finish is not None:
            self._also_on_finish(nb)

    # -- XCom -------------------------------------------------------------------------------------------------

    def push_results(self, ti: Any, nb: Any) -> None:
        """Push each recorded value under its name, and all of them under ``results``."""
        try:
            records = read_results(nb)
        except ResultError as exc:
            raise NotebookTaskError(f"Task {self.task_id}: {exc} Output notebook: {self.output}") from None
        for name, value in records.items():
            ti.xcom_push(key=name, value=value)
        ti.xcom_push(key=RESULTS_XCOM_KEY, value=records)
        if records:
            self.log.info("Recorded values pushed to XCom: %s", ", ".join(records))

    def push_published(self, ti: Any) -> None:
        """The reports and collected files of this attempt, to XCom (``reports``: format -> location, ``files``)."""
        if (publisher := self.execution.publisher) is None:
            return
        if publisher.formats:
            ti.xcom_push(key=REPORTS_XCOM_KEY, value=dict(publisher.reports))
        if publisher.patterns:
            ti.xcom_push(key=FILES_XCOM_KEY, value=list(publisher.files))

    def describe_asset_events(self, ti: Any, nb: Any, outlets: Sequence[Any], events: Any) -> None:
        """Each asset the task updates (``outlets``) gets an event whose ``extra`` says where the notebook is, so that
        an asset-triggered DAG can find it: ``output_notebook``, ``results`` (the recorded names), ``reports``."""
        if not outlets or events is None:
            return
        try:
            names = sorted(read_results(nb))
        except ResultError:
            names = []
        extra: dict[str, Any] = {"output_notebook": self.output, "results": names, "dag_id": ti.dag_id,
                                 "run_id": ti.run_id, "try_number": ti.try_number}
        reports = nb.metadata.get("airflow", {}).get("reports")
        if reports:
            extra["reports"] = dict(reports)
        for outlet in outlets:
            try:
                events[outlet].extra.update(extra)
            except (KeyError, TypeError, AttributeError) as exc:  # not an asset (an old-style lineage entity)
                self.log.debug("No asset event for outlet %r: %s", outlet, exc)


def identity(ti: Any, logical_date: Any, origin: NotebookOrigin | None = None) -> dict[str, Any]:
    """``metadata.airflow`` of the output notebook: the attempt it belongs to (checked by every reader), and for a
    notebook read from the DAG's bundle, which version of it ran (``notebook``: bundle, version, path, sha256)."""
    meta = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
        "logical_date": logical_date.isoformat() if logical_date else None,
    }
    if origin is not None:
        meta[ORIGIN_KEY] = origin.to_json()
    return meta
