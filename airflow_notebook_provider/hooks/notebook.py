"""Storage access for notebook tasks: local paths and object storage through an Airflow connection."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_notebook_provider import config
from airflow_notebook_provider.engine import storage
from airflow_notebook_provider.notebook.errors import NotebookInputError


class NotebookHook(BaseHook):
    """Reads input notebooks and writes output notebooks.

    Local paths are read and written directly (writes are atomic). Any other URL goes through
    ``airflow.sdk.ObjectStoragePath`` with ``conn_id``, e.g. ``s3://bucket/key`` with an ``aws`` connection; object
    stores make a PUT visible all at once, so no partial notebook is ever seen at the output key. Transient store
    errors are retried with backoff for ``[notebook] storage_retry_seconds``.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "aws_default"
    hook_name = "Notebook storage"

    def __init__(self, conn_id: str | None = None, retry_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or None
        if retry_seconds is None:
            retry_seconds = config.get_float("storage_retry_seconds")
        self.retry_seconds = retry_seconds

    def check_connection(self) -> None:
        """Fail early, with the fix, when ``conn_id`` names no connection."""
        if self.conn_id is None:
            return
        try:
            self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            raise NotebookInputError(
                f"Connection {self.conn_id!r} (conn_id) does not exist. Create it (Admin > Connections, "
                f"`airflow connections add`, or AIRFLOW_CONN_{self.conn_id.upper()}) or fix `conn_id`."
            ) from None

    def path(self, location: str) -> Any:
        """An ``ObjectStoragePath`` for a URL, a ``pathlib.Path`` for a local location.

        Callers tell the two apart by the location, not by ``isinstance(p, Path)``: before universal-pathlib 0.3
        (Airflow 3.1) an ``ObjectStoragePath`` is a ``pathlib.Path`` too.
        """
        if storage.is_url(location):
            from airflow.sdk import ObjectStoragePath

            path = ObjectStoragePath(location, conn_id=self.conn_id)
            _bound_client_retries(path.fs, self.retry_seconds)
            return path
        return storage.local_path(location)

    @property
    def storage(self) -> storage.Storage:
        """The one storage layer, reaching URLs through this hook's connection."""
        return storage.Storage(open_url=self.path, retry_seconds=self.retry_seconds, hint=self._hint())

    def read(self, location: str) -> bytes:
        """The notebook at ``location``; ``NotebookInputError`` saying how to fix ``notebook`` when it is missing."""
        if storage.is_url(location):
            fix = f"(connection {self.conn_id!r}) Fix `notebook` or upload the notebook."
        else:
            fix = ("Fix `notebook`: a relative path is read from the worker's working directory, so prefer an "
                   "absolute path or a URL.")
        return self.storage.read(location, fix=fix)

    def write(self, location: str, data: bytes) -> None:
        self.storage.write(location, data, fix="Make the folder writable by the worker or choose another "
                                               "`output_notebook` / [notebook] output_base.")

    def exists(self, location: str) -> bool:
        return self.storage.exists(location)

    def _hint(self) -> str:
        return (
            f"Check that the store behind connection {self.conn_id!r} is reachable from the worker and that its "
            f"credentials work; transient errors are retried for [notebook] storage_retry_seconds "
            f"({self.retry_seconds:g} s)."
        )


def _bound_client_retries(fs: Any, retry_seconds: float) -> None:
    """Keep one storage attempt short, so that ``storage_retry_seconds`` really bounds the time a task waits.

    botocore retries a refused or timed-out connection itself (5 attempts with backoff) inside every attempt of
    ours, multiplying the wait. For an s3fs filesystem whose connection sets no ``retries``/``connect_timeout`` in
    its ``config_kwargs`` extra, make one attempt one request (our loop retries) with a connect timeout within the
    retry budget; values in the connection win.
    """
    config = getattr(fs, "config_kwargs", None)
    if not isinstance(config, dict) or "retries" in config or not hasattr(fs, "connect"):
        return
    config["retries"] = {"max_attempts": 1, "mode": "standard"}
    config.setdefault("connect_timeout", max(1.0, min(5.0, retry_seconds / 4)))
    if getattr(fs, "_s3", None) is not None:
        fs.connect(refresh=True)
