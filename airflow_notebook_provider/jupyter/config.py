"""The extension's settings: traits of ``AirflowNotebook`` (``c.AirflowNotebook.api_url = ...`` in
``jupyter_server_config.py``), each defaulting to an environment variable, so an image sets them once.

Credentials are read here, on the server side of Jupyter, and never sent to the browser.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Dict, Float, Int, List, Unicode, default
from traitlets.config import Configurable

ENV_URL = "AIRFLOW_NOTEBOOK_API_URL"
ENV_TOKEN = "AIRFLOW_NOTEBOOK_API_TOKEN"
ENV_USERNAME = "AIRFLOW_NOTEBOOK_API_USERNAME"
ENV_PASSWORD = "AIRFLOW_NOTEBOOK_API_PASSWORD"
ENV_DAG_FOLDER = "AIRFLOW_NOTEBOOK_DAG_FOLDER"

# The operator classes (``TaskInstance.operator``) whose task instances run a notebook: this provider's operator,
# its ``@task.notebook`` and its ``PapermillOperator`` (apache-airflow-providers-papermill's has the same name).
NOTEBOOK_OPERATORS = ("NotebookOperator", "_NotebookDecoratedOperator", "PapermillOperator")


class AirflowNotebook(Configurable):
    """How this Jupyter server reaches Airflow's api-server, and where it may write DAG files."""

    api_url = Unicode(help=f"The Airflow api-server's URL, e.g. http://airflow:8080 (env {ENV_URL}).").tag(config=True)
    token = Unicode(help=f"An Airflow API token (JWT); else username and password (env {ENV_TOKEN}).").tag(config=True)
    username = Unicode(help=f"The Airflow user whose rights the panel has (env {ENV_USERNAME}).").tag(config=True)
    password = Unicode(help=f"That user's password (env {ENV_PASSWORD}).").tag(config=True)
    path_map = Dict(
        value_trait=Unicode(), key_trait=Unicode(),
        help="Local folder -> the remote prefix tasks read it from, e.g. {'/home/jovyan/templates': "
             "'s3://bucket/templates/'}: a notebook under the folder is matched to tasks whose `notebook` is under the "
             "prefix. A relative folder is relative to the Jupyter root.",
    ).tag(config=True)
    dag_folder = Unicode(
        help=f"The DAGs folder this server may write DAG files into (Schedule), as seen from here (env {ENV_DAG_FOLDER})."
    ).tag(config=True)
    operators = List(Unicode(), default_value=list(NOTEBOOK_OPERATORS),
                     help="Operator class names whose task instances run a notebook (add your subclasses).").tag(config=True)
    timeout = Float(30.0, help="Seconds for one request to the api-server.").tag(config=True)
    parse_timeout = Float(120.0, help="Seconds Airflow may take to parse a DAG file before Schedule saves it.").tag(
        config=True)
    max_task_instances = Int(1000, help="Task instances of notebook operators read at most per panel load (newest "
                                        "first), to find the open notebook's.").tag(config=True)

    @default("api_url")
    def _api_url(self) -> str:
        return os.environ.get(ENV_URL, "")

    @default("token")
    def _token(self) -> str:
        return os.environ.get(ENV_TOKEN, "")

    @default("username")
    def _username(self) -> str:
        return os.environ.get(ENV_USERNAME, "")

    @default("password")
    def _password(self) -> str:
        return os.environ.get(ENV_PASSWORD, "")

    @default("dag_folder")
    def _dag_folder(self) -> str:
        return os.environ.get(ENV_DAG_FOLDER, "")

    def public(self) -> dict[str, Any]:
        """What the browser may see of the settings (no token, no password)."""
        return {"url": self.api_url.rstrip("/"), "dag_folder": self.dag_folder or None, "path_map": dict(self.path_map)}
