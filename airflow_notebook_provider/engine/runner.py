"""One run of a prepared notebook: pick the kernel, inject the parameters, run the cells, record how it ended.

``NotebookRun`` reads top-down: ``prepare`` (everything that can fail before a kernel starts, with the check of the
declared parameters in ``declared.py``), then ``run``: start the kernel (``kernels/``), run the cells one by one,
turn whatever ends the run into one ``Failure``, and record it (``record.py``) in the output notebook, which
``writer.py`` writes at the start, at most every ``checkpoint_interval`` and at the end. It knows nothing of
Airflow; ``execute.py`` is the entry point callers use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from airflow_notebook_provider.engine import _compat
from airflow_notebook_provider.engine import resources as cell_resources
from airflow_notebook_provider.engine.celllog import QUIET_CELL_SECONDS, CellLog
from airflow_notebook_provider.engine.declared import check_declared
from airflow_notebook_provider.engine.kernels.kernel import (
    DEFAULT_KERNEL,
    EarlyKernel,
    Kernel,
    KernelStartError,
    KernelStopped,
)
from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.engine.oom import OomWatch, death
from airflow_notebook_provider.engine.publish import mark_report_mode
from airflow_notebook_provider.engine.settings import ExecutionSettings, KernelReady, RunHooks, RunResult
from airflow_notebook_provider.engine.writer import OutputWriter
from airflow_notebook_provider.notebook import outcomes, record
from airflow_notebook_provider.notebook.errors import (
    Failure,
    FailureKind,
    NotebookExecutionError,
    NotebookInputError,
    NotebookStorageError,
)
from airflow_notebook_provider.notebook.parameters import inject
from airflow_notebook_provider.notebook.redact import Redactor

# ``sys.exit(0)``, ``sys.exit()`` and ``raise SystemExit`` end a notebook early without failing it (papermill).
_CLEAN_EXIT_VALUES = {"", "0", "None"}
_MEMORY_ERROR = (
    "the kernel ran out of memory (its memory limit, e.g. RLIMIT_AS or the container's, was reached); "
    "process less data at once or give the task more memory"
)
# Longest wait, after a cell's reply, for the output the kernel sent before it (nbclient's ``iopub_timeout``, 4 s
# by default: a burst of messages read on a busy worker lost its tail). Drain it; the kernel is alive.
_IOPUB_DRAIN_SECONDS = 120
_INTERRUPT_SECONDS = 5.0
# After a KeyboardInterrupt nobody in the run asked for, how long to watch for the kernel's end (a shutdown from
# outside interrupts the kernel first); a kernel still alive by then was only interrupted.
_SHUTDOWN_GRACE_SECONDS = 2.0


class NotebookRun:
    """One execution of one notebook, from parameter injection to the last write of its output."""

    def __init__(
        self,
        nb: NotebookNode,
        *,
        input_path: str,
        output_path: str,
        save: Callable[[bytes], None],
        parameters: Mapping[str, Any] | None = None,
        settings: ExecutionSettings | None = None,
        metadata: Mapping[str, Any] | None = None,
        log: Log | None = None,
        hooks: RunHooks | None = None,
    ) -> None:
        self.nb = nb
        self.input_path = input_path
        self.output_path = output_path
        self.parameters = dict(parameters or {})
        self.settings = settings or ExecutionSettings()
        self.metadata = dict(metadata or {})
        self.log: Log = log or logging.getLogger(__name__)
        self.hooks = hooks or RunHooks()
        self.secrets = Redactor(self.settings.env[var] for var in self.settings.secret_env.values()
                                if var in self.settings.env)
        self.writer = OutputWriter(nb, output_path, save, self.log, self.hooks.on_write,
                                   redact=self.secrets.bytes if self.secrets else None)
        self.cell_log = CellLog(self.log, enabled=self.settings.log_output, limit=self.settings.log_output_limit)
        self.kernel_name: str | None = None
        self.language: str | None = None
        self._kernel: Kernel | None = None
        self._stop_reason: str | None = None
        self._oom: OomWatch | None = None  # the kernel's memory cgroups, to tell an out-of-memory kill
        self.skipped: outcomes.Asked | None = None  # by results.skip()
        self._current: int | None = None
        self._finished = False
        self._prepared = False

    @property
    def writes(self) -> int:
        return self.writer.writes

    def prepare(self) -> None:
        """Resolve the kernel and inject the parameters; raise ``NotebookInputError`` before anything runs."""
        if self._prepared:
            return
        kernels = self.settings.kernels
        name = self.settings.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name")
        if not name:
            lang = self.nb.metadata.get("language_info", {}).get("name")
            if lang and lang.lower() != "python":
                raise NotebookInputError(
                    f"{self.input_path} has no kernelspec and its language is {lang!r}; set `kernel_name` to a "
                    f"kernel for {lang} (installed kernels: {', '.join(kernels.names())})."
                )
            self.log.warning(
                "%s names no kernel (no metadata.kernelspec); running it with %r. Set `kernel_name` to choose.",
                self.input_path, DEFAULT_KERNEL,
            )
            name = DEFAULT_KERNEL
        spec = kernels.resolve(name, explicit=bool(self.settings.kernel_name))
        self.kernel_name = spec.name
        self.language = (self.settings.language or spec.language
                         or self.nb.metadata.get("language_info", {}).get("name") or "python").lower()
        # The kernel that really runs, as Jupyter records it (also completes a partial or missing kernelspec).
        self.nb.metadata["kernelspec"] = {"name": spec.name, "display_name": spec.display_name, "language": spec.language}
        check_declared(self.nb, [*self.parameters, *self.settings.secret_env], language=self.language,
                       input_path=self.input_path, mode=self.settings.unknown_parameters, log=self.log)
        inject(self.nb, self.parameters, self.language, self.settings.secret_env)
        if self.settings.report_mode:
            mark_report_mode(self.nb)
        record.init_record(self.nb, parameters=self.parameters, input_path=self.input_path,
                           output_path=self.output_path, metadata=self.metadata)
        self._prepared = True

    def run(self, early: EarlyKernel | None = None) -> RunResult:
        """Run every cell; return the result, or raise ``NotebookExecutionError`` with the notebook saved.

        The first write (``hooks.on_write("first", ...)``, where the operator publishes the output location)
        happens while the kernel process boots, before it can run anything; the last write overlaps the kernel's
        shutdown. An exception from outside the notebook (a task timeout, a signal) is re-raised as it is, after
        the partial notebook is saved with a banner saying how the run was stopped. ``early`` is a kernel started
        while the notebook was fetched: used if the notebook runs on that kernel, else killed.
        """
        try:
            self.prepare()
            try:
                failure, stopped_early = asyncio.run(self._main(early))
            except NotebookStorageError:
                raise  # the first or the last write failed for good: nothing more can be written
            except BaseException as exc:  # stopped from outside: save what we have, then let it propagate
                self._kill_kernel()
                reason = self._stop_reason or f"{type(exc).__name__}: {exc}".rstrip(": ")
                self._finish(self._failure("stopped", "RunStopped", f"The run was stopped ({reason})."), fatal=False)
                raise
        finally:
            if early is not None:
                early.discard()  # a no-op once the run took it
        if failure is not None:
            self._finish(failure, fatal=False)
            raise NotebookExecutionError(failure, notebook=self.input_path, output=self.output_path)
        if not self._finished:
            self._finish(None, fatal=True)
        return RunResult(nb=self.nb, output_path=self.output_path, writes=self.writes, stopped_early=stopped_early,
                         skipped=self.skipped)

    def stop(self, reason: str) -> None:
        """Stop the run from outside (``on_kill``, a signal handler): kill the kernel; ``run`` then records it."""
        self._stop_reason = reason
        self._kill_kernel()

    def _kill_kernel(self) -> None:
        if self._kernel is not None:
            self._kernel.kill(self._stop_reason)

    # -- inside the event loop ----------------------------------------------------------------------------------

    async def _main(self, early: EarlyKernel | None) -> tuple[Failure | None, bool]:
        s = self.settings
        assert self.kernel_name is not None
        kernel: Kernel | None = None
        if early is not None and early.kernel is not None:
            kernel = early.take(self.kernel_name, env=s.env, cwd=s.cwd)
            if kernel is None:
                self.log.info("The notebook runs on kernel %s; the %s kernel started early is stopped",
                              self.kernel_name, early.kernel_name)
            else:
                self.log.info("Kernel %s was started early, while the notebook was fetched", self.kernel_name)
        self._kernel = kernel or s.kernels.create(self.kernel_name, env=s.env, cwd=s.cwd)
        if self._stop_reason:  # stopped while the notebook was prepared
            self._kill_kernel()
        checkpointer: asyncio.Task[None] | None = None
        final: asyncio.Future[None] | None = None
        failure: Failure | None = None
        try:
            failure = await self._start_kernel(self._kernel, early=kernel is not None)
            if failure is not None:
                return failure, False
            self._oom = OomWatch.of(getattr(self._kernel, "pid", None))
            checkpointer = asyncio.create_task(self.writer.checkpoints(s.checkpoint_interval))
            failure, stopped_early = await self._execute_cells(self._client(self._kernel), self._kernel)
            if failure is None:
                # Every output is in and nothing changes the notebook any more: write it while the kernel shuts down.
                checkpointer.cancel()
                final = asyncio.ensure_future(asyncio.to_thread(self._finish, None, fatal=True))
            return failure, stopped_early
        finally:
            if checkpointer is not None:
                checkpointer.cancel()
            # A kernel that failed, timed out or was stopped gets no grace period.
            shutdown = asyncio.ensure_future(self._kernel.shutdown(now=final is None))
            try:
                if final is not None:
                    await final
            finally:
                await shutdown

    async def _start_kernel(self, kernel: Kernel, *, early: bool) -> Failure | None:
        """Start the kernel (the first write happens while it boots); the failure to record if it never answers."""
        try:
            info = await kernel.start(timeout=self.settings.startup_timeout, log=self.log, on_spawned=self.writer.first)
        except KernelStopped:
            return self._failure("stopped", "RunStopped", f"The run was stopped ({self._stop_reason}).")
        except KernelStartError as exc:
            return self._failure(
                "startup", type(exc.__cause__ or exc).__name__,
                f"{exc}. {self.settings.kernels.start_hint}, or raise "
                f"`startup_timeout` ({self.settings.startup_timeout:g} s) if it is only slow",
            )
        if "language_info" in info:
            self.nb.metadata["language_info"] = info["language_info"]
        if self.hooks.on_kernel_ready is not None:
            self.hooks.on_kernel_ready(KernelReady(kernel.name, info.get("language_info") or {}, early))
        return None

    def _client(self, kernel: Kernel) -> _compat.StreamingNotebookClient:
        """nbclient's client on the run's kernel, with stream output going to the log as it arrives."""
        s = self.settings
        client = _compat.StreamingNotebookClient(
            self.nb, self.cell_log.stream, kernel_name=self.kernel_name, timeout=s.cell_timeout,
            startup_timeout=int(s.startup_timeout), iopub_timeout=_IOPUB_DRAIN_SECONDS, allow_errors=False,
            resources={"metadata": {"path": s.cwd}} if s.cwd else {},
        )
        _compat.set_client_kernel(client, kernel.km, kernel.kc)
        return client

    async def _execute_cells(self, client: _compat.StreamingNotebookClient, kernel: Kernel) -> tuple[Failure | None, bool]:
        """Run the cells in order; stop at the first failure, or early at a clean ``sys.exit()``."""
        cells = self.nb.cells
        total = len(cells)
        loop = asyncio.get_running_loop()
        began, ran = time.monotonic(), 0
        sampler = cell_resources.CellSampler(kernel, cells, enabled=self.settings.cell_resources)  # time, memory, CPU
        for index, cell in enumerate(cells):
            runnable = cell.cell_type == "code" and bool(cell.source.strip())
            record.cell_started(cell)
            self._current = index
            announce: asyncio.TimerHandle | None = None
            if runnable:
                ran += 1
                self.cell_log.begin(index + 1, total)
                announce = loop.call_later(QUIET_CELL_SECONDS, self.cell_log.announce)
                if self.hooks.on_cell_start is not None:
                    self.hooks.on_cell_start(index + 1, total, cell)
                sampler.start()
            t0 = time.monotonic()
            failure: Failure | None = None
            clean_exit = False
            try:
                await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellExecutionError as exc:
                clean_exit = exc.ename == "SystemExit" and exc.evalue.strip() in _CLEAN_EXIT_VALUES
                asked = outcomes.asked(self.nb, index, exc.ename)  # results.skip() or results.fail()
                if asked is not None and asked.outcome == "skip":
                    self.skipped, clean_exit = asked, outcomes.clear_error(cell)
                if self._stop_reason:  # a remote kernel is interrupted as it is deleted: the stop is the cause
                    failure = self._failure("stopped", "RunStopped", f"The run was stopped ({self._stop_reason}).", index)
                elif exc.ename == "KeyboardInterrupt" and await _ended_after(kernel):
                    # Interrupted as its kernel was shut down from outside (a gateway's culler or admin, a restart).
                    failure = self._failure("dead_kernel", "DeadKernelError", "the kernel was interrupted and shut "
                                            f"down from outside the task while running this cell ({kernel.exit_reason()})",
                                            index)
                elif not clean_exit:
                    evalue = _MEMORY_ERROR if exc.ename == "MemoryError" and not exc.evalue.strip() else exc.evalue
                    # Some kernels (bash_kernel) name no error: the exit status is all they report.
                    failure = self._failure("error", exc.ename or "Error", evalue, index, _error_traceback(cell),
                                            retry=asked.retry if asked else None)
            except CellTimeoutError:
                failure = self._failure("timeout", "CellTimeoutError", "the cell ran longer than "
                                        f"cell_timeout={self.settings.cell_timeout:g} s and was stopped", index)
                await self._interrupt(kernel)
            except DeadKernelError:
                if not self._stop_reason and await _cancelled_not_dead(kernel):
                    # nbclient reports any cancellation as a dead kernel; this one is an exception from outside
                    # (the task's execution_timeout, a signal) unwinding asyncio.run: run() records the stop.
                    raise asyncio.CancelledError from None
                if self._stop_reason:
                    failure = self._failure("stopped", "RunStopped", f"The run was stopped ({self._stop_reason}).", index)
                else:
                    kind, died = death(kernel, self._oom)  # out_of_memory where Linux says so, else dead_kernel
                    failure = self._failure(kind, "DeadKernelError", f"the kernel died while running this cell ({died})", index)
            finally:
                if announce is not None:
                    announce.cancel()
                self.cell_log.flush()
                record.cell_finished(cell, failed=failure is not None)
                if runnable:
                    cell_resources.record(cell, sampler.stop())
            if runnable:
                if self.cell_log.announced or failure is not None:
                    self.log.info("cell %d/%d %s in %.2f s", index + 1, total, "failed" if failure else "finished",
                                  time.monotonic() - t0)
                if self.hooks.on_cell_end is not None:
                    self.hooks.on_cell_end(index + 1, cell, failure)
            if failure is not None:
                return failure, False
            if clean_exit:
                self.log.info("cell %d/%d ended the notebook early with %s", index + 1, total, outcomes.how_ended(self.skipped))
                return None, True
        self._current = None
        self.log.info("%d code cells ran in %.2f s", ran, time.monotonic() - began)
        return None, False

    async def _interrupt(self, kernel: Kernel) -> None:
        """Interrupt a timed-out cell before the kernel is shut down: a remote kernel may outlive its deletion
        request by a while, and should not keep computing meanwhile."""
        try:
            await asyncio.wait_for(kernel.interrupt(), _INTERRUPT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the shutdown that follows stops the kernel anyway
            self.log.debug("Interrupting kernel %s failed: %s", kernel.name, exc)

    # -- how a run ends -----------------------------------------------------------------------------------------

    def _failure(
        self, kind: FailureKind, ename: str, evalue: str, index: int | None = None, traceback: list[str] | None = None,
        retry: bool | None = None) -> Failure:
        """The one place a ``Failure`` is built: a stop without a cell is charged to the cell that was running."""
        if index is None and kind == "stopped":
            index = self._current
        cell = self.nb.cells[index] if index is not None else None
        return Failure(
            kind=kind, ename=ename, evalue=evalue, cell_index=index,
            code_cell_number=record.code_cell_number(self.nb, index) if index is not None else None,
            execution_count=cell.get("execution_count") if cell is not None else None,
            traceback=tuple(traceback or ()), retry=retry,
        )

    def _finish(self, failure: Failure | None, *, fatal: bool) -> None:
        """Close the record (marking the failure, if any) and write the notebook a last time."""
        record.finish_record(self.nb, failure)
        outcomes.mark(self.nb, failure, self.skipped, self.settings.retry_on)  # a skip's banner, "not retried"
        if self.secrets:
            self.secrets.notebook(self.nb)  # what reports, XCom records and the last write see
        self._finished = True
        if self.hooks.on_finish is not None:
            try:
                self.hooks.on_finish(self.nb)
            except Exception as exc:  # noqa: BLE001 - whatever a hook does, the notebook's last write happens
                self.log.error("The run's on_finish hook failed: %s", exc)
        self.writer.final(fatal=fatal)


async def _ended_after(kernel: Kernel, seconds: float = _SHUTDOWN_GRACE_SECONDS) -> bool:
    """True when the kernel stops being alive within ``seconds`` (an interrupt that announced a shutdown)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if not await kernel.is_alive():
                return True
        except Exception:  # noqa: BLE001 - cannot tell: keep the error the kernel reported
            return False
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.25)


async def _cancelled_not_dead(kernel: Kernel) -> bool:
    """True when a "dead kernel" is really this task being cancelled while the kernel is still alive."""
    task = asyncio.current_task()
    if task is not None and getattr(task, "cancelling", lambda: 0)():
        return True
    try:
        return await kernel.is_alive()
    except Exception:  # noqa: BLE001 - cannot tell: treat it as the dead kernel nbclient reported
        return False


def _error_traceback(cell: NotebookNode) -> list[str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return list(out.get("traceback", []))
    return []
