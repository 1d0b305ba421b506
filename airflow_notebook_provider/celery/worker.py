"""What a Celery worker does once for all its notebook tasks: import the provider's engine, its storage clients,
and start a kernel launcher (``launcher/server.py``) that forks each task's kernel.

Every Celery task runs in a process forked from the worker, so what the worker imported before it started its
pool is there for free in every task, as Airflow's Celery worker already does for its standard operators. Without
this, each notebook task pays about 0.4 CPU-seconds of imports (jupyter_client, nbclient, nbformat's schema,
s3fs and botocore) and 0.35 for its kernel's own imports; on a busy worker that is half of what a short notebook
task costs. Turned on with one setting on the workers (README, "Deploying")::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=airflow_notebook_provider.celery.worker.CELERY_CONFIG

Nothing changes for the notebook: each run still gets a new kernel process of its own, with its own environment;
a kernelspec that the launcher cannot fork (another interpreter or language) starts as usual. The worker's processes
are made non-dumpable (``set_dumpable``), so that a kernel of the same user cannot read the worker's
secrets in their ``/proc/PID/environ`` or memory.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery import signals

from airflow_notebook_provider.launcher import server
from airflow_notebook_provider.launcher.child import set_dumpable

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)
"""Airflow's default Celery configuration; naming it in ``[celery] celery_config_options`` makes the workers
import this module, which does the rest when a worker starts. A deployment with its own Celery configuration
imports this module from it instead (e.g. ``import airflow_notebook_provider.celery.worker  # noqa: F401``)."""

PRELOAD = (
    "airflow_notebook_provider.operators.notebook",
    "airflow_notebook_provider.engine.runner",
    "airflow_notebook_provider.engine.storage",
    "airflow_notebook_provider.task.outputs",
    "nbclient.client",
    "jupyter_client.asynchronous.client",
    "jupyter_client.manager",
    "jupyter_client.kernelspec",
    "IPython",  # jupyter_client's kernelspec lookup imports it
    "jupyter_client.provisioning.local_provisioner",
    "zmq.asyncio",
    "nbformat",
    "nbformat.validator",
    "s3fs",
    "aiobotocore.session",
    "botocore.session",
    "airflow.providers.amazon.aws.fs.s3",
    "airflow.providers.amazon.aws.hooks.s3",
)
"""Modules every notebook task imports; each is imported if installed."""

_launcher: Any = None


def preload() -> None:
    """Import what notebook tasks need, once, so forked task processes share it."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # not installed here: its tasks import what they use, as without this module
        except Exception as exc:  # noqa: BLE001 - a preload is an optimisation: the worker starts regardless
            log.warning("Not preloaded: %s (%s)", name, exc)
    with contextlib.suppress(Exception):  # compiling nbformat's schema validator is a tenth of a second per task
        from nbformat.validator import get_validator

        get_validator(version=4, version_minor=5)
    with contextlib.suppress(Exception):  # jupyter_client scans every package's entry points for provisioners once
        from jupyter_client.provisioning import KernelProvisionerFactory

        KernelProvisionerFactory.instance()
    try:
        share_botocore_models()
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - each task then parses botocore's models itself, as without this
        log.warning("botocore's models not shared (%s)", exc)


def share_botocore_models() -> None:
    """One botocore data loader, warmed here, for every botocore session of the worker's task processes.

    Each task creates an S3 client for its notebook's writes, in a new botocore session, whose new data loader
    parses the same JSON again (endpoints, partitions, S3's service model and endpoint rules): 0.045 CPU-seconds
    per task, most of a client's creation. The models are read-only data, so one loader serves all sessions;
    a session with its own data path (``AWS_DATA_PATH``) still gets a loader of its own.
    """
    import botocore.session

    if getattr(botocore.session.create_loader, "_notebook_shared", False):
        return
    session = botocore.session.get_session()
    session.create_client("s3", region_name="us-east-1", aws_access_key_id="preload",  # no request is made
                          aws_secret_access_key="preload")
    shared = session.get_component("data_loader")
    original = botocore.session.create_loader

    def create_loader(search_path_string: str | None = None) -> Any:
        return shared if search_path_string is None else original(search_path_string)

    create_loader._notebook_shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = create_loader


def start_launcher() -> None:
    """Start this worker's kernel launcher and tell the task processes where it listens."""
    global _launcher
    if os.environ.get(server.ENV_VAR):
        return  # already set by whoever started this worker
    from airflow_notebook_provider.engine.kernels.kernel import InheritedEnv
    from airflow_notebook_provider.operators.notebook import env_denylist

    try:
        # What a kernel inherits by default (a forked kernel's /proc/self/environ shows the launcher's environment),
        # without Airflow's task-context variables, which each task process sets to its own values.
        env = InheritedEnv(denylist=(*env_denylist(), "AIRFLOW_CTX_*")).apply(os.environ)
        _launcher, path = server.start(env=env)
    except Exception as exc:  # noqa: BLE001 - kernels then start as new processes, as without this module
        log.warning("Kernel launcher not started (%s); notebook kernels start as new processes", exc)
        return
    os.environ[server.ENV_VAR] = path
    log.info("Kernel launcher pid %s listens on %s", _launcher.pid, path)


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    # The worker's environment holds its secrets (AIRFLOW_CONN_*...), which a kernel, running as this user, must not
    # read in /proc/PID/environ or memory: the pool processes, task supervisors and task processes forked from here
    # inherit the flag (README, "Security model").
    set_dumpable(False)
    preload()
    start_launcher()
    gc.freeze()  # the preloaded objects stay shared with the pool's processes (Airflow unfreezes when ready)
