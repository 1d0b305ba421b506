"""JupyterLab's side of the provider: a Jupyter Server extension whose REST routes (``airflow-notebook/api/...``
under the server's base URL, behind Jupyter's authentication and XSRF rules) let the panel list a notebook's Airflow
attempts, open, debug and compare them, run the notebook now and schedule it, through the Airflow api-server's REST
API with the configured user's rights. Runs in the **Jupyter server**; needs no Airflow running beside it.

Enabled on install (``jupyter_server_config.d/airflow_notebook_provider.json``), or with
``jupyter server --ServerApp.jpserver_extensions='{"airflow_notebook_provider.jupyter": true}'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "airflow_notebook_provider.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the routes; the settings come from the server's config (``c.AirflowNotebook.*``) and env vars."""
    from airflow_notebook_provider.jupyter.handlers import setup

    setup(serverapp)


load_jupyter_server_extension = _load_jupyter_server_extension  # the name older Jupyter servers look for
