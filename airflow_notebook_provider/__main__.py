"""``python -m airflow_notebook_provider``: the ``airflow-notebook`` command."""

from __future__ import annotations

from airflow_notebook_provider.cli import main

raise SystemExit(main())
