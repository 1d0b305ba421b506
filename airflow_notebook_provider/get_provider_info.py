"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider import __version__, config


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-notebook-provider",
        "name": "Notebook",
        "description": "Run Jupyter notebooks as Airflow tasks: one immutable, parameterized output notebook per "
        "attempt, linked from the Airflow UI.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Jupyter notebooks",
                "external-doc-url": "https://jupyter.org/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Jupyter notebooks",
                "python-modules": [
                    "airflow_notebook_provider.operators.notebook",
                    "airflow_notebook_provider.operators.papermill",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Jupyter notebooks",
                "python-modules": ["airflow_notebook_provider.hooks.notebook", "airflow_notebook_provider.hooks.kernel"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "jupyter_gateway",
                "hook-class-name": "airflow_notebook_provider.hooks.kernel.JupyterGatewayHook",
                "hook-name": "Jupyter Gateway",
                "conn-fields": {
                    "validate_cert": {
                        "label": "Validate certificate",
                        "description": "Check the gateway's TLS certificate (https only). Default: true.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "ca_bundle": {
                        "label": "CA bundle",
                        "description": "Path of a CA bundle on the worker, for a gateway certificate of a private CA.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a connection to the gateway. Default: 10.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "request_timeout": {
                        "label": "Request timeout (s)",
                        "description": "Seconds a request may take; creating a kernel in a new pod can take "
                        "minutes. Default: 120.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "headers": {
                        "label": "Headers",
                        "description": 'Extra HTTP headers as JSON, e.g. {"X-Proxy-Auth": "..."}.',
                        "schema": {"type": ["string", "null"]},
                    },
                    "env": {
                        "label": "Kernel environment",
                        "description": "Variables for every kernel as JSON; a gateway passes only KERNEL_* names, "
                        'e.g. {"KERNEL_NAMESPACE": "notebooks", "KERNEL_IMAGE": "org/image:tag"}.',
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Gateway URL", "password": "Auth token"},
                    "placeholders": {"host": "http://127.0.0.1:8888", "password": "EG_AUTH_TOKEN of the gateway"},
                },
            }
        ],
        "extra-links": ["airflow_notebook_provider.links.notebook.NotebookOutputLink"],
        "notifications": ["airflow_notebook_provider.notifications.notebook.NotebookNotifier"],
        "task-decorators": [
            {"name": "notebook", "class-name": "airflow_notebook_provider.decorators.notebook.notebook_task"}
        ],
        "plugins": [
            {"name": "notebook_viewer", "plugin-class": "airflow_notebook_provider.viewer.plugin.NotebookViewerPlugin"}
        ],
        "config": config.provider_config(),  # declared once, in config.OPTIONS
    }
