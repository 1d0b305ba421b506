"""Execute a parameterized notebook with nbclient and keep its record, whatever happens.

``NotebookRun`` owns one run: it resolves the kernel, injects the parameters, writes the output notebook when
the run starts, at most every ``checkpoint_interval`` seconds while it runs, and at the end (success, failure
or stop), and always shuts the kernel down. It knows nothing of Airflow: the caller hands it a ``save``
callable that writes bytes to the output location.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_hook
from nbformat import NotebookNode

from airflow_notebook_provider.engine import notebook as nbrec
from airflow_notebook_provider.engine.errors import (
    NotebookExecutionError,
    NotebookInputError,
    NotebookStorageError,
)
from airflow_notebook_provider.engine.parameters import inject
from airflow_notebook_provider.engine.storage import write_atomic

DEFAULT_KERNEL = "python3"
# ``sys.exit(0)``, ``sys.exit()`` and ``raise SystemExit`` end a notebook early without failing it (papermill).
_CLEAN_EXIT_VALUES = {"", "0", "None"}
_MEMORY_ERROR = (
    "the kernel ran out of memory (its memory limit, e.g. RLIMIT_AS or the container's, was reached); "
    "process less data at once or give the task more memory"
)


@dataclass
class ExecutionSettings:
    """How to run a notebook; every field has the default a scheduled task wants."""

    kernel_name: str | None = None
    """Kernel to start; default: the notebook's kernelspec, then ``python3``."""
    cell_timeout: float | None = None
    """Seconds one cell may run; None means no limit."""
    startup_timeout: float = 60.0
    """Seconds the kernel may take to start and answer."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the kernel, on top of this process's environment."""
    cwd: str | None = None
    """Working directory of the kernel; None means this process's."""
    checkpoint_interval: float = 30.0
    """Least number of seconds between two checkpoint writes while the notebook runs."""
    log_output: bool = True
    """Send the cells' stdout and stderr to the log as they are produced."""
    log_output_limit: int = 100_000
    """Characters of one cell's output that reach the log; the notebook always keeps everything."""
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Secret parameter name -> environment variable holding its value (put the value in ``env``); the injected
    cell reads the variable, so the value is never written into the notebook or its metadata."""


@dataclass
class RunResult:
    nb: NotebookNode
    output_path: str
    writes: int
    stopped_early: bool = False


def _client_options(s: ExecutionSettings) -> dict[str, Any]:
    return {
        "timeout": s.cell_timeout,
        "startup_timeout": int(s.startup_timeout),
        # After a cell's reply, nbclient waits this long for the rest of its output, then drops it (4 s by
        # default): a burst of messages read on a busy worker lost its tail. Drain it; the kernel is alive.
        "iopub_timeout": _IOPUB_DRAIN_SECONDS,
        "resources": {"metadata": {"path": s.cwd}} if s.cwd else {},
        # A scheduled run never asks a person for input: input() fails with StdinNotImplementedError.
        "allow_errors": False,
    }


def _launch(kernel_name: str, s: ExecutionSettings) -> tuple[Any, ...]:
    """What a kernel process is started with."""
    return kernel_name, sorted(s.env.items()), s.cwd


class EarlyKernel:
    """A kernel process started before its notebook is at hand, so that it boots while the caller fetches the
    notebook from storage, parses it and picks the output location (a kernel takes about half a second to
    answer; an S3 read in a fresh task process, with its client set-up, takes as long or longer).

    It is the kernel of ``settings.kernel_name``, else ``python3``, with the settings' environment and working
    directory. ``NotebookRun.run(early=...)`` adopts it when the notebook runs on that kernel; otherwise, and
    whenever the caller gives up before, ``discard`` kills it. Nothing fails here: a kernel that cannot be
    started early is simply started later, where its failure is recorded in the notebook.
    """

    def __init__(self, settings: ExecutionSettings, log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.kernel_name = settings.kernel_name or DEFAULT_KERNEL
        self._launched_with = _launch(self.kernel_name, settings)
        self.km: Any = None
        self.pid: int | None = None
        log = log or logging.getLogger(__name__)
        client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=self.kernel_name, **_client_options(settings))
        try:
            KernelSpecManager().get_kernel_spec(self.kernel_name)
            client.km = client.create_kernel_manager()
            asyncio.run(client.async_start_new_kernel(env={**os.environ, **settings.env}))
        except Exception as exc:  # noqa: BLE001 - not fatal: the run starts its kernel itself
            log.debug("Kernel %s not started early (%s); it starts when the notebook is ready", self.kernel_name, exc)
            self._kill(client.km)
            return
        self.km, self.pid = client.km, _kernel_pid(client)

    def take(self, kernel_name: str, settings: ExecutionSettings) -> Any:
        """The kernel manager, for a run on the same kernel, environment and working directory; else None, and
        the kernel is killed."""
        if self.km is not None and _launch(kernel_name, settings) == self._launched_with:
            km, self.km = self.km, None
            return km
        self.discard()
        return None

    def discard(self) -> None:
        """Kill the kernel unless a run took it; safe to call more than once."""
        km, self.km = self.km, None
        if km is not None:
            self._kill(km)

    @staticmethod
    def _kill(km: Any) -> None:
        """SIGKILL the kernel's process group, reap it and remove its connection file (callable in or out of an
        event loop: ``NotebookRun`` discards a kernel it cannot use from inside its own)."""
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        if proc is not None:
            _kill_group(proc.pid)
            try:
                proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - not ours to reap after all: the SIGKILL is what matters
                pass
        try:
            km.cleanup_connection_file()
        except Exception:  # noqa: BLE001 - a leftover connection file is harmless
            pass


class _Client(NotebookClient):
    """nbclient's client with one addition: stream output goes to the log as it arrives."""

    def __init__(self, nb: NotebookNode, run: NotebookRun, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self._run = run

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        out = super().output(outs, msg, display_id, cell_index)
        if msg["msg_type"] == "stream":
            self._run._log_stream(msg["content"].get("name", "stdout"), msg["content"].get("text", ""))
        return out


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
        extra_metadata: Mapping[str, Any] | None = None,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.nb = nb
        self.input_path = input_path
        self.output_path = output_path
        self._save = save
        self.parameters = dict(parameters or {})
        self.settings = settings or ExecutionSettings()
        self.extra_metadata = dict(extra_metadata or {})
        self.log = log or logging.getLogger(__name__)
        self.writes = 0
        self.kernel_name: str | None = None
        self.language: str | None = None
        self._client: _Client | None = None
        self._kernel_pid: int | None = None
        self._stop_reason: str | None = None
        self._current: int | None = None
        self._stream_buf: dict[str, str] = {}
        self._logged_chars = 0
        self._truncated = False
        self._cell_position = (0, 0)
        self._announced = True
        self._write_lock = threading.Lock()
        # Every serialization takes a number; a write older than the last one written is dropped, so a checkpoint
        # still in flight can never overwrite the final notebook.
        self._seq = itertools.count(1)
        self._written_seq = 0
        self._finished = False
        self._prepared = False
        self._early: EarlyKernel | None = None

    # -- preparation: everything that can fail before the kernel starts --------------------------------------

    def prepare(self) -> None:
        """Resolve the kernel and inject the parameters; raise ``NotebookInputError`` before anything runs."""
        if self._prepared:
            return
        name = self.settings.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name")
        if not name:
            lang = self.nb.metadata.get("language_info", {}).get("name")
            if lang and lang.lower() != "python":
                raise NotebookInputError(
                    f"{self.input_path} has no kernelspec and its language is {lang!r}; set `kernel_name` to a "
                    f"kernel for {lang} (installed kernels: {', '.join(sorted(_kernel_names()))})."
                )
            self.log.warning(
                "%s names no kernel (no metadata.kernelspec); running it with %r. Set `kernel_name` to choose.",
                self.input_path, DEFAULT_KERNEL,
            )
            name = DEFAULT_KERNEL
        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            raise NotebookInputError(
                f"Kernel {name!r} (asked for by {'`kernel_name`' if self.settings.kernel_name else 'the notebook'}) "
                f"is not installed where the task runs. Installed kernels: {', '.join(sorted(_kernel_names()))}. "
                "Install it (e.g. `python -m ipykernel install --name NAME`) or set `kernel_name`."
            ) from None
        self.kernel_name = name
        self.language = (spec.language or "python").lower()
        inject(self.nb, self.parameters, self.language, self.settings.secret_env)
        nbrec.init_record(
            self.nb,
            parameters=self.parameters,
            input_path=self.input_path,
            output_path=self.output_path,
            extra=self.extra_metadata,
        )
        self._prepared = True

    # -- the run ----------------------------------------------------------------------------------------------

    def run(self, on_started: Callable[[], None] | None = None, early: EarlyKernel | None = None) -> RunResult:
        """Run every cell; return the result, or raise ``NotebookExecutionError`` with the notebook saved.

        The first write, then ``on_started`` (where the operator publishes the output location), happen while the
        kernel process boots and before it can run anything, so they cost no time of their own; the last write
        likewise overlaps the kernel's shutdown. An exception from outside the notebook (a task timeout, a signal)
        is re-raised as it is, after the partial notebook is saved with a banner saying how the run was stopped.
        ``early`` is a kernel started while the notebook was fetched (``EarlyKernel``); it is used if the notebook
        runs on that kernel, else killed.
        """
        self._early = early
        try:
            return self._run(on_started)
        finally:
            if early is not None:
                early.discard()  # a no-op once the run took it

    def _run(self, on_started: Callable[[], None] | None) -> RunResult:
        self.prepare()
        failure: dict[str, Any] | None = None
        stopped_early = False
        try:
            failure, stopped_early = asyncio.run(self._main(on_started))
        except NotebookStorageError:
            raise  # the first or the last write failed for good: nothing more can be written
        except BaseException as exc:  # stopped from outside: save what we have, then let it propagate
            self._kill_kernel()
            reason = self._stop_reason or f"{type(exc).__name__}: {exc}".rstrip(": ")
            self._finish(self._failure("stopped", "RunStopped", f"The run was stopped ({reason})."), fatal=False)
            raise
        if failure is not None:
            self._finish(failure, fatal=False)
            raise NotebookExecutionError(notebook=self.input_path, output=self.output_path, **failure)
        if not self._finished:
            self._finish(None, fatal=True)
        return RunResult(nb=self.nb, output_path=self.output_path, writes=self.writes, stopped_early=stopped_early)

    def stop(self, reason: str) -> None:
        """Stop the run from outside (``on_kill``, a signal handler): kill the kernel; ``run`` then records it."""
        self._stop_reason = reason
        self._kill_kernel()

    async def _main(self, on_started: Callable[[], None] | None = None) -> tuple[dict[str, Any] | None, bool]:
        client = _Client(self.nb, self, kernel_name=self.kernel_name, **_client_options(self.settings))
        self._client = client
        client.km = client.create_kernel_manager()
        checkpointer: asyncio.Task[None] | None = None
        final: asyncio.Future[None] | None = None
        try:
            failure = await self._start_kernel(client, on_started)
            if failure is not None:
                return failure, False
            checkpointer = asyncio.create_task(self._checkpoint_loop())
            failure, early = await self._execute_cells(client)
            if failure is not None:
                client.shutdown_kernel = "immediate"  # a timed-out or failed kernel gets no grace period
            else:
                # Every output is in and nothing changes the notebook any more: write it while the kernel shuts down.
                checkpointer.cancel()
                final = asyncio.ensure_future(asyncio.to_thread(self._finish, None, fatal=True))
            return failure, early
        finally:
            if checkpointer is not None:
                checkpointer.cancel()
            if final is None:
                await self._shutdown(client)
            else:
                shutdown = asyncio.ensure_future(self._shutdown(client))
                try:
                    await final
                finally:
                    await shutdown

    async def _start_kernel(self, client: _Client, on_started: Callable[[], None] | None) -> dict[str, Any] | None:
        """Start the kernel and wait for its answer; return the failure to record if it never answers.

        The first write, then ``on_started``, happen while the first kernel process boots. A kernel process that
        exits before answering is started again on fresh ports, up to ``_START_ATTEMPTS`` times: jupyter_client
        picks free TCP ports by binding and releasing them, so a process starting beside it (another task's
        kernel on the same worker) can take one first, and the kernel dies with "Address already in use". A
        kernel that cannot be spawned at all, or is alive but silent past ``startup_timeout``, is not retried.
        """
        s = self.settings
        for attempt in range(1, _START_ATTEMPTS + 1):
            started = time.monotonic()
            spawn_error: Exception | None = None
            early, self._early = self._early, None
            km = None
            if early is not None and early.km is not None:
                km = early.take(self.kernel_name or "", s)
                if km is None:
                    self.log.info("The notebook runs on kernel %s; the %s kernel started early is stopped",
                                  self.kernel_name, early.kernel_name)
            if km is not None:
                client.km, self._kernel_pid = km, early.pid
                self.log.info("Kernel %s was started early, while the notebook was fetched", self.kernel_name)
            else:
                try:
                    await client.async_start_new_kernel(env={**os.environ, **s.env})
                    self._kernel_pid = _kernel_pid(client)
                except Exception as exc:  # noqa: BLE001 - recorded below, once the notebook has been written
                    spawn_error = exc
            if attempt == 1:
                self.write(fatal=True)
                if on_started is not None:
                    on_started()
            try:
                if spawn_error is not None:
                    raise spawn_error
                if self._stop_reason:
                    raise RuntimeError(self._stop_reason)
                await self._connect(client)
            except Exception as exc:  # noqa: BLE001 - any start-up failure is recorded in the notebook
                if self._stop_reason:
                    return self._failure("stopped", "RunStopped", f"The run was stopped ({self._stop_reason}).")
                if spawn_error is None and attempt < _START_ATTEMPTS and not await _alive(client):
                    self.log.warning(
                        "Kernel %s exited while starting (%s; %s); starting it again on fresh ports (attempt %d of %d)",
                        self.kernel_name, str(exc).rstrip("."), _kernel_exit(client), attempt + 1, _START_ATTEMPTS,
                    )
                    await self._shutdown(client)
                    client.km = client.create_kernel_manager()
                    continue
                tries = f" ({attempt} attempts)" if attempt > 1 else ""
                return self._failure(
                    "startup", type(exc).__name__,
                    f"kernel {self.kernel_name!r} did not start{tries}: {str(exc).rstrip('.')}. Check its kernel "
                    f"spec (`jupyter kernelspec list`) where the task runs, or raise `startup_timeout` "
                    f"({self.settings.startup_timeout:g} s) if it is only slow",
                )
            self.log.info("Kernel %s started in %.2f s", self.kernel_name, time.monotonic() - started)
            return None
        raise AssertionError("unreachable: the last attempt returns")

    async def _connect(self, client: _Client) -> None:
        """Connect to the kernel and wait until it answers on the shell and IOPub channels.

        This is nbclient's ``async_start_new_kernel_client`` with two differences. It does not clean up on failure,
        which would hide whether the kernel died (retry) or stayed silent (fail); ``_shutdown`` cleans up either
        way. And it does not use jupyter_client's ``wait_for_ready``, which ends by waiting for 0.2 s of silence
        on IOPub: a fixed fifth of a second per task. A status message for our own request on IOPub proves the
        subscription is live (ZMQ drops what is published before a subscriber has joined), and nbclient skips
        any earlier message, as it belongs to another request.
        """
        assert client.km is not None
        kc = client.kc = client.km.client()
        await ensure_async(kc.start_channels())
        _bound_polls(client)
        deadline = time.monotonic() + float(client.startup_timeout)
        replies = 0
        while True:
            msg_id = kc.kernel_info()
            reply = await _reply_to(kc.shell_channel, msg_id, 1.0)
            replies += reply is not None
            if replies > _STATUSLESS_REPLIES:  # a kernel that answers but publishes no status: take its word
                break
            # The kernel's status for this request is on IOPub before its reply is sent, unless the subscription
            # was not live yet (the first request is queued while the kernel boots): then ask again at once.
            if reply is not None and await _reply_to(kc.iopub_channel, msg_id, 0.1) is not None:
                break
            if not await _alive(client):
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {client.startup_timeout:g} seconds")
        assert reply is not None
        kc._handle_kernel_info_reply(reply)  # protocol version adaptation, as wait_for_ready does
        if "language_info" in reply["content"]:
            self.nb.metadata["language_info"] = reply["content"]["language_info"]
        kc.allow_stdin = False
        await run_hook(client.on_notebook_start, notebook=client.nb)

    async def _execute_cells(self, client: _Client) -> tuple[dict[str, Any] | None, bool]:
        cells = self.nb.cells
        total = len(cells)
        loop = asyncio.get_running_loop()
        began, ran = time.monotonic(), 0
        for index, cell in enumerate(cells):
            runnable = cell.cell_type == "code" and cell.source.strip()
            nbrec.cell_started(cell)
            self._current = index
            announce: asyncio.TimerHandle | None = None
            if runnable:
                ran += 1
                self._cell_position, self._announced = (index + 1, total), False
                announce = loop.call_later(_QUIET_CELL_SECONDS, self._announce_cell)
                self._logged_chars, self._truncated = 0, False
            t0 = time.monotonic()
            failure: dict[str, Any] | None = None
            clean_exit = False
            try:
                await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellExecutionError as exc:
                if exc.ename == "SystemExit" and exc.evalue.strip() in _CLEAN_EXIT_VALUES:
                    clean_exit = True
                else:
                    evalue = exc.evalue
                    if exc.ename == "MemoryError" and not evalue.strip():
                        evalue = _MEMORY_ERROR
                    failure = self._failure("error", exc.ename, evalue, index, _error_traceback(cell))
            except CellTimeoutError:
                failure = self._failure(
                    "timeout", "CellTimeoutError",
                    f"the cell ran longer than cell_timeout={self.settings.cell_timeout:g} s and was stopped",
                    index, add_output=True,
                )
            except DeadKernelError:
                if not self._stop_reason and await _interrupted_not_dead(client):
                    # nbclient reports any cancellation as a dead kernel; this one is an exception from outside
                    # (the task's execution_timeout, a signal) unwinding asyncio.run: run() records the stop.
                    raise asyncio.CancelledError from None
                if self._stop_reason:
                    failure = self._failure(
                        "stopped", "RunStopped", f"The run was stopped ({self._stop_reason}).", index, add_output=True
                    )
                else:
                    failure = self._failure(
                        "dead_kernel", "DeadKernelError",
                        f"the kernel died while running this cell ({_kernel_exit(client)})",
                        index, add_output=True,
                    )
            finally:
                if announce is not None:
                    announce.cancel()
                self._flush_streams()
                nbrec.cell_finished(cell, failed=failure is not None)
            if runnable and (self._announced or failure is not None):
                self.log.info("cell %d/%d %s in %.2f s", index + 1, total, "failed" if failure else "finished",
                              time.monotonic() - t0)
            if failure is not None:
                return failure, False
            if clean_exit:
                self.log.info("cell %d/%d ended the notebook early with SystemExit (not a failure)", index + 1, total)
                return None, True
        self._current = None
        self.log.info("%d code cells ran in %.2f s", ran, time.monotonic() - began)
        return None, False

    def _announce_cell(self) -> None:
        """Log that the current cell started, once: when it has run ``_QUIET_CELL_SECONDS`` or prints something."""
        if not self._announced:
            self._announced = True
            self.log.info("cell %d/%d started", *self._cell_position)  # the CLI's live line reads these arguments

    async def _checkpoint_loop(self) -> None:
        interval = max(float(self.settings.checkpoint_interval), 0.1)
        while True:
            await asyncio.sleep(interval)
            data, seq = nbrec.dumps(self.nb), next(self._seq)
            await asyncio.to_thread(self._write_bytes, data, False, seq)

    async def _shutdown(self, client: _Client) -> None:
        try:
            if client.km is not None:
                await client._async_cleanup_kernel()
        except Exception as exc:  # noqa: BLE001 - the kernel must not outlive the task whatever went wrong
            self.log.warning("Kernel shutdown failed (%s); killing it", exc)
        finally:
            self._kill_kernel()

    # -- failures ---------------------------------------------------------------------------------------------

    def _failure(
        self,
        kind: str,
        ename: str,
        evalue: str,
        index: int | None = None,
        traceback: list[str] | None = None,
        add_output: bool = False,
    ) -> dict[str, Any]:
        if index is None and kind == "stopped":
            index = self._current
        cell = self.nb.cells[index] if index is not None else None
        if cell is not None and add_output and cell.cell_type == "code":
            cell.outputs.append(nbrec.error_output(ename, evalue))
        return {
            "kind": kind,
            "cell_index": index,
            "code_cell_number": nbrec.code_cell_number(self.nb, index) if index is not None else None,
            "execution_count": cell.get("execution_count") if cell is not None else None,
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback,
        }

    def _finish(self, failure: dict[str, Any] | None, *, fatal: bool) -> None:
        """Final record and write; on failure mark the cell and insert papermill's banner."""
        if failure is not None:
            index = failure["cell_index"]
            if index is not None:
                cell = self.nb.cells[index]
                nbrec.cell_finished(cell, failed=True)
                if failure["kind"] == "stopped" and cell.cell_type == "code" and not any(
                    o.get("output_type") == "error" for o in cell.get("outputs", [])
                ):
                    cell.outputs.append(nbrec.error_output(failure["ename"], failure["evalue"]))
            note = None if failure["kind"] == "error" and failure["ename"] != "MemoryError" else html.escape(
                f"{failure['ename']}: {failure['evalue']}"
            )
            nbrec.add_error_banner(self.nb, index, failure["execution_count"], note)
        nbrec.finish_record(self.nb, failed=failure is not None)
        self._finished = True
        self._write_final(fatal=fatal)

    def _write_final(self, *, fatal: bool) -> None:
        """The last write. If the store refuses it (after its retries), the executed notebook is the only evidence
        of the run: keep it in a local rescue copy on the worker and say where, rather than lose it."""
        data, seq = nbrec.dumps(self.nb), next(self._seq)
        with self._write_lock:
            try:
                self._save(data)
                self.writes += 1
                self._written_seq = seq
                return
            except Exception as exc:  # noqa: BLE001 - any failure of the store: keep a copy, then report it
                error = exc
        rescue = _rescue_copy(self.output_path, data)
        msg = f"Could not write the output notebook to {self.output_path}: {str(error).rstrip('.')}."
        if rescue:
            msg += f" A copy of the executed notebook was kept on this worker at {rescue}."
        if fatal:
            raise NotebookStorageError(msg) from error
        self.log.error("%s", msg)

    # -- writes -------------------------------------------------------------------------------------------------

    def write(self, *, fatal: bool) -> None:
        self._write_bytes(nbrec.dumps(self.nb), fatal, next(self._seq))

    def _write_bytes(self, data: bytes, fatal: bool, seq: int) -> None:
        with self._write_lock:
            if seq < self._written_seq:
                return  # a newer state of the notebook is already written
            try:
                self._save(data)
                self.writes += 1
                self._written_seq = seq
            except Exception as exc:
                if fatal:
                    if isinstance(exc, NotebookStorageError):
                        raise
                    raise NotebookStorageError(f"Could not write the output notebook to {self.output_path}: {exc}") from exc
                self.log.warning("Checkpoint of %s failed (%s); the run goes on", self.output_path, exc)

    # -- log ------------------------------------------------------------------------------------------------------

    def _log_stream(self, name: str, text: str) -> None:
        if not self.settings.log_output or not text or self._truncated:
            return  # once the log is truncated, a flood of output costs nothing more here
        buf = self._stream_buf.get(name, "") + text
        *lines, rest = buf.split("\n")
        if len(rest) > self.settings.log_output_limit:  # one endless line: log it now rather than buffer it all
            lines.append(rest)
            rest = ""
        self._stream_buf[name] = rest
        for line in lines:
            self._log_line(name, line)

    def _flush_streams(self) -> None:
        for name, rest in self._stream_buf.items():
            if rest:
                self._log_line(name, rest)
        self._stream_buf.clear()

    def _log_line(self, name: str, line: str) -> None:
        limit = self.settings.log_output_limit
        if self._truncated:
            return
        if self._logged_chars + len(line) > limit:
            self._truncated = True
            self.log.warning(
                "[%s] ... output of this cell truncated in the log after %d characters; "
                "the output notebook keeps all of it", name, self._logged_chars,
            )
            return
        self._logged_chars += len(line) + 1
        self._announce_cell()
        self.log.info("[%s] %s", name, line)

    # -- kernel process ---------------------------------------------------------------------------------------

    def _kill_kernel(self) -> None:
        """SIGKILL the kernel's process group (the kernel is a session leader); safe from a signal handler."""
        if self._kernel_pid is not None:
            _kill_group(self._kernel_pid)


# kernel_info replies after which a kernel that publishes no status on IOPub (against the protocol) is taken as ready.
_STATUSLESS_REPLIES = 20
# Kernel starts tried when the kernel process exits before answering (see ``NotebookRun._start_kernel``).
_START_ATTEMPTS = 3
# A cell's progress lines ("cell 3/12 started", "... finished in") reach the log once it has run this long or
# printed something. A line through Airflow's task log costs about a millisecond: a notebook of 200 quick cells paid
# 400 of them (a quarter of a second) for lines that say nothing the output notebook does not.
_QUIET_CELL_SECONDS = 1.0
# Longest wait, after a cell's reply, for the output the kernel sent before it (nbclient's ``iopub_timeout``).
_IOPUB_DRAIN_SECONDS = 120
# Longest time a message can sit unseen on a kernel channel (see ``_bound_polls``).
_POLL_SLICE = 0.2


def _bound_polls(client: NotebookClient) -> None:
    """Make the shell and IOPub channels wait for messages in slices of ``_POLL_SLICE`` seconds.

    pyzmq's asyncio poll can miss a socket's wake-up when something else sends on that socket meanwhile (ZMQ's
    file descriptor is edge-triggered): nbclient's Output-widget support sends ``comm_msg`` updates on the shell
    channel while a cell's reply is awaited there. The reply then waits until the poll times out, i.e. the
    whole ``cell_timeout`` (a cell "took exactly cell_timeout, then succeeded"), or forever without one. A poll
    that ends always does a last non-blocking check, so short slices bound that stall to ``_POLL_SLICE``.
    """
    kc = client.kc
    assert kc is not None
    for channel in (kc.shell_channel, kc.iopub_channel):
        channel.get_msg = _sliced_get_msg(channel.get_msg)  # type: ignore[method-assign]


def _sliced_get_msg(get_msg: Callable[..., Any]) -> Callable[..., Any]:
    async def get_msg_in_slices(timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _POLL_SLICE if deadline is None else max(0.0, min(_POLL_SLICE, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


async def _reply_to(channel: Any, msg_id: str, timeout: float) -> dict[str, Any] | None:
    """The message on ``channel`` answering ``msg_id``, or None after ``timeout`` seconds; others are skipped."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await channel.get_msg(timeout=left)
        except Empty:
            return None
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            return msg
    return None


def _kill_group(pid: int) -> None:
    """SIGKILL a kernel's process group (a kernel is a session leader); safe from a signal handler."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _alive(client: NotebookClient) -> bool:
    return client.km is not None and bool(await ensure_async(client.km.is_alive()))


async def _interrupted_not_dead(client: NotebookClient) -> bool:
    """True when a "dead kernel" is really this task being cancelled while the kernel is still alive."""
    task = asyncio.current_task()
    if task is not None and getattr(task, "cancelling", lambda: 0)():
        return True
    try:
        return await _alive(client)
    except Exception:  # noqa: BLE001 - cannot tell: treat it as the dead kernel nbclient reported
        return False


def _kernel_exit(client: NotebookClient) -> str:
    """How the kernel process ended, in words: a SIGKILL is most often the out-of-memory killer."""
    prov = getattr(client.km, "provisioner", None)
    proc = getattr(prov, "process", None)
    code = None
    if proc is not None:
        try:
            code = proc.wait(timeout=2)
        except Exception:  # noqa: BLE001 - still running or not ours to wait for: say what we know
            code = None
    if code is None:
        return "killed, out of memory, or crashed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGKILL:
            return f"killed by {name}: the out-of-memory killer, a memory limit, or `kill -9`"
        return f"killed by {name}"
    return f"the kernel process exited with code {code}; a crash in native code or os._exit()"


def _kernel_pid(client: NotebookClient) -> int | None:
    km = client.km
    prov = getattr(km, "provisioner", None)
    proc = getattr(prov, "process", None)
    return getattr(proc, "pid", None)


def _rescue_copy(output_path: str, data: bytes) -> str | None:
    """Write ``data`` under ``<tmp>/notebook-rescue/`` (named after ``output_path``); None if that fails too."""
    name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in output_path)[-180:]
    path = Path(tempfile.gettempdir()) / "notebook-rescue" / name
    try:
        write_atomic(path, data)
    except OSError:
        return None
    return str(path)


def _kernel_names() -> list[str]:
    return list(KernelSpecManager().find_kernel_specs())


def _error_traceback(cell: NotebookNode) -> list[str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return list(out.get("traceback", []))
    return []
