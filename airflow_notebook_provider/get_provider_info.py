"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_notebook_provider import __version__


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
        "task-decorators": [
            {"name": "notebook", "class-name": "airflow_notebook_provider.decorators.notebook.notebook_task"}
        ],
        "plugins": [
            {"name": "notebook_viewer", "plugin-class": "airflow_notebook_provider.plugins.plugin.NotebookViewerPlugin"}
        ],
        "config": {
            "notebook": {
                "description": "Notebook tasks run by airflow-notebook-provider.",
                "options": {
                    "output_base": {
                        "description": "Folder or object-storage URL under which output notebooks are written when "
                        "a task sets no `output_notebook`: {output_base}/{dag_id}/{run_id}/{task_id}[/map-{i}]/"
                        "attempt-{try_number}.ipynb. Empty means $AIRFLOW_HOME/notebook_outputs.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/notebook-runs",
                        "default": "",
                    },
                    "checkpoint_interval": {
                        "description": "Default least number of seconds between two writes of a running notebook.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "30",
                        "default": "30",
                    },
                    "storage_retry_seconds": {
                        "description": "How long reads and writes of object storage are retried, with backoff, "
                        "before the task fails.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "60",
                    },
                    "kernel_env_denylist": {
                        "description": "Comma-separated fnmatch patterns of the worker's environment variables a "
                        "local kernel does not inherit (the notebook gets them only through `env` or parameters).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "AIRFLOW_CONN_*,AIRFLOW_VAR_*,AIRFLOW__*,AWS_SECRET_ACCESS_KEY",
                        "default": "AIRFLOW_CONN_*,AIRFLOW_VAR_*,AIRFLOW__*",
                    },
                    "viewer_allowed_locations": {
                        "description": "Comma-separated folders and object-storage prefixes, besides output_base, "
                        "from which the notebook viewer (and `airflow-notebook pull` of a viewer link) reads a "
                        "task's output notebook, reports and files. A recorded location elsewhere is not read, "
                        "whatever is there; local paths are checked after resolving symbolic links and must be "
                        "absolute; a URL names a bucket and optionally a key prefix (matched on '/' boundaries), "
                        "and may name the connection to read it with (s3://conn_id@bucket/prefix) when the task's "
                        "operator names none. Only regular files are served.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/data/reports,s3://analytics/notebooks",
                        "default": "",
                    },
                    "viewer_max_bytes": {
                        "description": "Largest output notebook the viewer renders, in bytes (checked before "
                        "reading it). A larger one gets a page that says so and offers the download, which "
                        "streams it.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "104857600",
                        "default": "104857600",
                    },
                    "viewer_read_timeout": {
                        "description": "Seconds the viewer waits for object storage to connect and for each read "
                        "(S3: botocore's connect_timeout and read_timeout, two attempts per request); the viewer "
                        "retries for a few seconds more, then answers with a 502 page.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "10",
                        "default": "10",
                    },
                    "viewer_cache_bytes": {
                        "description": "Memory the api-server keeps for rendered notebook pages (least recently "
                        "used first out); 0 keeps none.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "67108864",
                        "default": "67108864",
                    },
                    "viewer_base_url": {
                        "description": "Base URL of the Airflow UI for 'Output notebook' links; empty means "
                        "[api] base_url.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://airflow.example.com",
                        "default": "",
                    },
                },
            }
        },
    }
