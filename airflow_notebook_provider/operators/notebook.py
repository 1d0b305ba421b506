"""``NotebookOperator``: run a parameterized notebook as an Airflow task, one output notebook per attempt."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowTaskTimeout, BaseOperator, redact

from airflow_notebook_provider.engine import (
    KernelProvider,
    NotebookConfigError,
    NotebookError,
    NotebookExecutionError,
    NotebookInputError,
    NotebookStorageError,
    OutputIsInputError,
    RunHooks,
    kernel_provider,
)
from airflow_notebook_provider.engine.inputs import DEFAULT_INPUT_MAX_BYTES, InputFiles
from airflow_notebook_provider.engine.kernels.kernel import InheritedEnv
from airflow_notebook_provider.engine.settings import DEFAULT_COLLECT_MAX_BYTES
from airflow_notebook_provider.exceptions import (
    NotebookTaskConfigError,
    NotebookTaskError,
    NotebookTaskFailed,
    NotebookTaskInputError,
)
from airflow_notebook_provider.hooks.kernel import kernels_for_connection
from airflow_notebook_provider.hooks.notebook import NotebookHook
from airflow_notebook_provider.links.notebook import NotebookOutputLink, viewer_url
from airflow_notebook_provider.notebook.redact import RedactingLog, Redactor, filtering
from airflow_notebook_provider.operators.arguments import check_arguments, execution_settings
from airflow_notebook_provider.task import outcomes, outputs
from airflow_notebook_provider.task.attempt import Attempt, identity
from airflow_notebook_provider.task.bundle import locate
from airflow_notebook_provider.task.lineage import LineageState, operator_lineage
from airflow_notebook_provider.task.process import DEFAULT_ENV_DENYLIST, env_denylist, frozen_heap
from airflow_notebook_provider.task.secrets import SECRET_PLACEHOLDER, hide_secrets, split_secrets

if TYPE_CHECKING:
    from airflow.sdk import Context


class NotebookOperator(BaseOperator):
    """Execute a Jupyter notebook with parameters rendered from the DAG context.

    Each attempt writes its own output notebook (code, parameters, outputs and, on failure, the error and
    papermill's banner) and pushes its location to XCom under ``output_notebook`` before the kernel starts;
    the "Output notebook" link opens it in the Airflow UI, for successful and failed attempts.

    :param notebook: Input notebook: a local path or an object-storage URL (``s3://...``). Templated. A relative path
        is read from the DAG's bundle at the DAG run's bundle version (``task.bundle``; docs: bundles.md).
    :param notebook_root: Folder inside the bundle that a relative ``notebook`` is relative to. Templated.
    :param output_notebook: Where to write this attempt's output. Templated. Default:
        ``{[notebook] output_base}/{dag_id}/{run_id}/{task_id}[/map-{map_index}]/attempt-{try_number}.ipynb``.
        If the location already holds a notebook (a retry of a template without ``{{ ti.try_number }}``), this
        attempt writes ``<name>.attempt-<try_number>.ipynb`` beside it instead: nothing is overwritten.
    :param parameters: Values injected after the cell tagged ``parameters``, as papermill does. Templated, nested.
    :param conn_id: Airflow connection for object-storage URLs (input and output); the viewer reads the output
        notebook with it too. Templated.
    :param kernel_name: Kernel to run; default: the notebook's kernelspec, then ``python3``. With ``python``, a
        kernelspec installed in that environment. Templated.
    :param language: Language the parameters are written in (``python``, ``r``, ``julia``, ``bash``, ...); default:
        the kernelspec's, then the notebook's ``language_info``. Templated.
    :param kernel_conn_id: Airflow connection of a kernel that runs elsewhere. Type ``jupyter_gateway``: a
        Jupyter Kernel or Enterprise Gateway, where each attempt creates its own ``kernel_name`` kernel and deletes
        it when the attempt ends. Type ``jupyter_kernel`` (the papermill provider's): an already running kernel,
        reached over ZMQ, attached to and never shut down. Templated. See README "Remote kernels".
    :param python: Interpreter of the notebook's own environment (e.g. ``/opt/envs/report/bin/python``, with
        ``ipykernel`` installed there): the kernel runs with it, no kernelspec needed, and the worker's Airflow
        environment is not on its path. Templated.
    :param unknown_parameters: A parameter the notebook's ``parameters`` cell does not declare (a typo would leave
        the default in place): ``"warn"`` (default) names it in the log with the closest declared name, ``"fail"``
        fails the task before any cell runs, without retries, ``"ignore"`` injects it silently.
    :param cell_timeout: Seconds one cell may run (None: no limit).
    :param startup_timeout: Seconds the kernel may take to start.
    :param env: Extra environment variables for the kernel. Templated.
    :param inherit_env: The local kernel inherits the worker's environment (default True, as before: notebooks rely
        on PATH, HOME, cloud credentials...), minus the variables matching ``[notebook] kernel_env_denylist`` (by
        default the worker's Airflow connections, variables and settings). False: only PATH, HOME, the locale and a
        few more, plus ``env``.
    :param cwd: Working directory of the kernel; default: the notebook's folder for a local notebook (as Jupyter
        does), else a temporary folder removed afterwards. Templated.
    :param log_output: Send the cells' stdout and stderr to the task log as they are produced.
    :param log_output_limit: Characters of one cell's output that reach the log (the notebook keeps it all).
    :param checkpoint_interval: Least seconds between two writes of the running notebook (default
        ``[notebook] checkpoint_interval``, 30).
    :param report_formats: Reports rendered beside each attempt's output notebook, successful or failed
        (``attempt-1.html``...): ``"html"``, ``"markdown"``, ``"pdf"`` (printed by a local Chromium). Templated.
        Their locations go to XCom under ``reports``.
    :param report_mode: papermill's ``report_mode``: cell sources are marked hidden, and reports leave out code
        inputs and the injected-parameters cell.
    :param collect_files: Globs relative to the kernel's working folder (``["out/*.csv", "figures/**/*.png"]``,
        templated): after the run, matching files are copied beside the output notebook (``attempt-1.files/...``),
        listed in ``metadata.airflow.files`` and in XCom under ``files``. Local kernels only.
    :param collect_files_max_bytes: Most bytes collected in all (default 100 MiB); files beyond it are left out and
        named in the log and the notebook.
    :param retry_on: The failure kinds that may be retried (default: all, as Airflow): ``error``, ``timeout``,
        ``dead_kernel``, ``out_of_memory``, ``startup``, ``storage``, ``stopped``. A failure of another kind fails the
        task without retries, saying so in the log and the banner. Templated. See docs/failures.md.
    :param input_files: Globs relative to the notebook's folder (``["helpers/*.py", "sql/*.sql"]``, templated), copied
        into the kernel's working folder before the first cell and listed in ``metadata.airflow.input_files``
        (``engine/inputs.py``); ``input_files_max_bytes`` (default 100 MiB) more fails the task before any cell runs.
    :param secret_parameters: Names of ``parameters`` (string values, e.g. ``"{{ conn.api.password }}"``) passed to
        the kernel as environment variables ``NOTEBOOK_SECRET_<name>`` and read by the injected cell: the value is
        never written into the output notebook, its metadata or the rendered template fields, and ``***`` replaces
        it in the task's log lines and in the exception the task fails with (its arguments and ``__cause__`` /
        ``__context__`` chain: what ``on_failure_callback`` notifiers and Airflow's log see).

    Values the notebook records (``airflow_notebook_provider.record`` or ``scrapbook.glue``) are pushed to XCom
    under their names, and all together as a dict under ``results``.
    """

    # ``conn_id`` is templated so that the DAG as serialized (and the value rendered for a try) names it: the viewer
    # reads output notebooks with the connection the operator names, never with one written in a record.
    template_fields: Sequence[str] = (
        "notebook", "notebook_root", "output_notebook", "parameters", "conn_id", "kernel_name", "language", "python",
        "kernel_conn_id", "env", "cwd", "report_formats", "collect_files", "input_files", "retry_on",
    )
    template_fields_renderers = {"parameters": "json", "env": "json"}
    operator_extra_links = (NotebookOutputLink(),)
    ui_color = "#f3e9dc"
    start_kernel_early: bool = True
    """Start the kernel (``kernel_name``, else ``python3``) while the notebook is fetched; a notebook on another
    kernel then pays one wasted kernel start. A subclass may turn it off."""
    untyped_kernel_conn_type: str | None = None
    """The type a ``kernel_conn_id`` connection without one is taken as; None refuses it (the papermill drop-in
    sets ``jupyter_kernel``)."""

    def __init__(
        self,
        *,
        notebook: str,
        notebook_root: str | None = None,
        output_notebook: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        kernel_name: str | None = None,
        language: str | None = None,
        python: str | None = None,
        kernel_conn_id: str | None = None,
        unknown_parameters: str = "warn",
        cell_timeout: float | None = None,
        startup_timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: str | None = None,
        log_output: bool = True,
        log_output_limit: int = 100_000,
        checkpoint_interval: float | None = None,
        secret_parameters: Sequence[str] | None = None,
        report_formats: Sequence[str] | None = None,
        report_mode: bool = False,
        collect_files: Sequence[str] | None = None,
        collect_files_max_bytes: int = DEFAULT_COLLECT_MAX_BYTES,
        input_files: Sequence[str] | None = None,
        input_files_max_bytes: int = DEFAULT_INPUT_MAX_BYTES,
        retry_on: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.notebook = notebook
        self.notebook_root = notebook_root
        self.output_notebook = output_notebook
        self.parameters = parameters if parameters is not None else {}
        self.conn_id = conn_id
        self.kernel_name = kernel_name
        self.language = language
        self.python = python
        self.kernel_conn_id = kernel_conn_id
        self.unknown_parameters = unknown_parameters
        self.cell_timeout = cell_timeout
        self.startup_timeout = startup_timeout
        self.env = env if env is not None else {}
        self.inherit_env = inherit_env
        self.cwd = cwd
        self.log_output = log_output
        self.log_output_limit = log_output_limit
        self.checkpoint_interval = checkpoint_interval
        if isinstance(secret_parameters, str):  # list("token") would be five one-letter names
            raise NotebookConfigError(f"`secret_parameters` must be a list of parameter names, got {secret_parameters!r}")
        self.secret_parameters = list(secret_parameters or [])
        self.report_formats = report_formats
        self.report_mode = report_mode
        self.collect_files = collect_files
        self.collect_files_max_bytes = collect_files_max_bytes
        self.input_files = input_files
        self.input_files_max_bytes = input_files_max_bytes
        self.retry_on = retry_on
        self._attempt: Attempt | None = None
        self._lineage: LineageState | None = None
        self._secret_values: dict[str, Any] = {}
        self._redactor: Redactor | None = None
        check_arguments(self)

    @cached_property
    def hook(self) -> NotebookHook:
        return NotebookHook(conn_id=self.conn_id)

    @property
    def log(self) -> Any:
        """The task's logger; once secret parameters are known, each line shows ``***`` for their values."""
        log = super().log
        redactor = self.__dict__.get("_redactor")
        return RedactingLog(log, redactor, redact) if redactor else log

    # -- execute --------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        self._mask_secrets()
        if not self._redactor:
            with frozen_heap():
                return self._execute(context)
        failed: BaseException | None = None
        # Log records of the libraries the run uses (nbclient logs kernel messages at DEBUG) pass the root handlers.
        with frozen_heap(), filtering(logging.getLogger().handlers, self._redactor):
            try:
                return self._execute(context)
            except BaseException as exc:
                clean = self._redactor.exception(exc)  # in place: args, attributes, the __cause__/__context__ chain
                if clean is exc:
                    raise
                failed = NotebookTaskError(f"Task {self.task_id}: {clean}")
                failed.__cause__ = clean
        raise failed  # out of the except block: the uncleaned exception is not attached as its __context__

    def _execute(self, context: Context) -> str:
        hooks = self.run_hooks(context)
        try:
            attempt = self._attempt_of(context, hooks)
        except NotebookError as exc:
            raise self._task_error(exc) from None
        if (ti := context.get("ti")) is None:
            raise NotebookTaskConfigError(
                f"Task {self.task_id}: execute() was called without a task instance in its context (`ti`), which "
                "names the output and receives the results; run the task through Airflow (dag.test(), a worker)."
            )
        self._attempt = attempt
        meta = identity(ti, context.get("logical_date"), origin=attempt.lineage.origin)  # origin: the bundle's version
        try:
            result = attempt.run(ti, executor=self.executor, metadata={"airflow": meta})
        except NotebookExecutionError as exc:  # retried unless retry_on or results.fail(retry=False) says otherwise
            url = self._url(context)
            raise outcomes.failed(f"{exc}. View it: {url}", exc.kind, outcomes.retry_kinds(self.retry_on),
                                  asked_retry=exc.failure.retry, output=exc.output, url=url, log=self.log) from None
        except AirflowTaskTimeout as exc:  # execution_timeout stopped the run: retried unless retry_on says otherwise
            if (for_good := outcomes.stopped(exc, self.task_id, outcomes.retry_kinds(self.retry_on), self.log)) is None:
                raise
            raise for_good from exc
        except (NotebookConfigError, NotebookInputError, NotebookStorageError) as exc:  # config: input_files's cap
            raise self._task_error(exc) from None
        finally:
            self._attempt = None
        attempt.push_results(ti, result.nb)
        attempt.push_published(ti)
        if result.skipped is not None:  # results.skip(): the task is skipped, downstream tasks follow their rules
            raise outcomes.skipped(self.task_id, result.skipped, attempt.output, self._url(context), self.log)
        attempt.describe_asset_events(ti, result.nb, self.outlets, context.get("outlet_events"))
        self.log.info("Notebook done: %d writes to %s. View it: %s", result.writes, attempt.output, self._url(context))
        return attempt.output

    def _attempt_of(self, context: Context, hooks: RunHooks) -> Attempt:
        """The attempt with this try's settings (the kernel may start now); ``NotebookError`` for a wrong argument."""
        parameters, secrets = self._split_secrets()
        settings = execution_settings(self, self._kernels())  # checks `notebook` before the bundle is searched
        located = locate(self.notebook, self.notebook_root, context)  # a relative path: in the DAG's bundle version
        self._lineage = LineageState(notebook=located.location, origin=located.origin,
                                     parameters=dict(parameters) if isinstance(parameters, Mapping) else {})
        return Attempt(
            located.location, task_id=self.task_id, parameters=parameters, secrets=secrets, settings=settings,
            hooks=hooks, hook=self.hook, log=self.log, output_notebook=self.output_notebook,
            early_kernel=self.start_kernel_early,
            lineage=self._lineage,
            persist_output=lambda location: NotebookOutputLink.persist(context, hook=self.hook, location=location,
                                                                       origin=located.origin),
            input_files=InputFiles.of(self.input_files, self.input_files_max_bytes,
                                      local_kernel=settings.kernels.local_files),
        )

    def _task_error(self, exc: NotebookError) -> NotebookTaskError:
        """The Airflow exception for an engine error that stopped the task before or outside its cells: the one
        place that decides which are retried (``_TASK_ERRORS``)."""
        for kind, task_error, fix in _TASK_ERRORS:
            if isinstance(exc, kind):
                message = f"Task {self.task_id}: {exc}{fix}"  # retried, unless its kind is not in retry_on
                return outcomes.unless_retried(message, exc, outcomes.retry_kinds(self.retry_on), self.log) or task_error(message)
        return NotebookTaskError(f"Task {self.task_id}: {exc}")

    def run_hooks(self, context: Context) -> RunHooks:
        """Callbacks into the run (kernel ready, cell start and end, writes): none by default; a subclass may return
        its own, e.g. for metrics. The operator adds its own step to ``on_write`` (publishing the location)."""
        return RunHooks()

    def on_kill(self) -> None:
        """Kill the kernel; the running ``execute`` then saves the notebook with a banner saying it was stopped."""
        attempt = self._attempt
        if attempt is not None:
            attempt.stop("the task was killed: on_kill, after SIGTERM or a task timeout")

    # -- OpenLineage (apache-airflow-providers-openlineage calls these when it is installed) --------------------

    def get_openlineage_facets_on_start(self) -> Any:
        return operator_lineage(self._lineage, notebook=str(self.notebook), finished=False)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self._lineage, notebook=str(self.notebook), finished=True)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return operator_lineage(self._lineage, notebook=str(self.notebook), finished=True)

    # -- secrets ----------------------------------------------------------------------------------------------

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any, jinja_env: Any, seen_oids: Any) -> None:
        # Mask secret values as soon as they exist: the rendered fields Airflow stores next are redacted with them.
        # (Overridden here rather than in render_template_fields, which a mapped task does not call.)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is self:
            self._mask_secrets()

    def _mask_secrets(self) -> None:
        """Register each secret value with the masker, keep it privately, and leave ``***`` in ``parameters``:
        whatever reads the operator's attributes later (Airflow's OpenLineage ``airflow`` run facet copies
        ``parameters``; rendered-field views) never sees the value. A value of the wrong type (a dict holding the
        secret) is hidden the same way; the run refuses it later, with an error that names only its type."""
        if isinstance(self.secret_parameters, str) or not isinstance(self.parameters, Mapping):
            return
        self.parameters = hide_secrets(self.parameters, self.secret_parameters, self._secret_values)
        self._redactor = Redactor.of(self._secret_values.values()) or None

    def _split_secrets(self) -> tuple[Any, dict[str, Any]]:
        """``parameters`` without the secret ones, and the secret ones (``Execution`` passes them as env vars)."""
        if not self.secret_parameters or not isinstance(self.parameters, Mapping):
            return self.parameters, {}  # a parameters value that is not a dict is refused by Execution
        self._mask_secrets()
        return split_secrets(self.parameters, self.secret_parameters, self._secret_values)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _kernels(self) -> KernelProvider:
        """Where the kernel runs: a connection's gateway or running kernel, a Python environment, or here."""
        if not self.kernel_conn_id:
            return kernel_provider(self.python, InheritedEnv(inherit=bool(self.inherit_env), denylist=env_denylist()))
        if self.python:
            raise NotebookConfigError(
                f"`python` ({self.python!r}) and `kernel_conn_id` ({self.kernel_conn_id!r}) both say where the kernel "
                "runs; keep one (a gateway's kernels run in the gateway's environments)."
            )
        return kernels_for_connection(self.kernel_conn_id, untyped=self.untyped_kernel_conn_type, log=self.log)

    def _url(self, context: Context) -> str:
        ti = context["ti"]
        return viewer_url(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=outputs.TaskInstanceId.of(ti).map_index,
            try_number=ti.try_number
        )


_TASK_ERRORS: tuple[tuple[type[NotebookError], type[NotebookTaskError], str], ...] = (
    (OutputIsInputError, NotebookTaskConfigError,
     " Set `output_notebook` to another location (or leave it unset for the default)."),
    (NotebookConfigError, NotebookTaskConfigError, ""),  # wrong arguments: a retry cannot help, not retried
    (NotebookInputError, NotebookTaskInputError, ""),  # notebook or kernel missing or invalid: retried
    (NotebookStorageError, NotebookTaskError, ""),  # storage unreachable after its own retries: retried
)
"""Engine errors raised before or outside the cells -> the task's exception (first match wins). A cell's failure is
``NotebookTaskFailed``; any other exception (a bug) propagates as it is and is retried as Airflow does."""


# ``env_denylist`` and the placeholder are part of the operator's surface: deployments read the denylist from here.
__all__ = [
    "DEFAULT_ENV_DENYLIST", "SECRET_PLACEHOLDER", "NotebookOperator", "NotebookTaskError", "NotebookTaskFailed",
    "env_denylist",
]
