"""The task process around one attempt: the worker's environment a local kernel leaves out, and its heap."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from airflow_notebook_provider import config

DEFAULT_ENV_DENYLIST = str(config.option("kernel_env_denylist").default)
"""The worker's variables a local kernel never inherits (``[notebook] kernel_env_denylist``): connection URIs,
variables and Airflow settings (the metadata DB's URL, the Fernet key and the JWT secret among them)."""


def env_denylist() -> tuple[str, ...]:
    """``[notebook] kernel_env_denylist`` as patterns."""
    return config.get_list("kernel_env_denylist")


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the task process's existing heap out of the garbage collector's full passes while the task runs.

    A task process holds all of Airflow (hundreds of thousands of objects) and is not frozen any more (Celery's
    worker unfreezes once ready); the S3 client's endpoint tables, nbformat's schema and the kernel client each
    create many small objects, and every full collection they trigger walks that whole heap. Measured: 0.4 s of CPU
    per task, most of the engine's own time (bench/README.md). ``gc.freeze()`` (as Celery's preload does) moves the
    existing objects to the permanent generation; they go back when the task ends, so a long-lived process (a
    ``dag.test()`` session) collects them as before. Left alone if something else froze the heap already.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
