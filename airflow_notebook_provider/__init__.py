"""Run Jupyter notebooks as Airflow tasks: one immutable, parameterized output notebook per attempt."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "notebook_params", "record", "record_lineage"]


def __getattr__(name: str) -> Any:
    """``record``, ``record_lineage`` and ``notebook_params`` are imported on first use, so ``import airflow_notebook_provider`` in a
    kernel stays light (and needs no Airflow)."""
    if name == "record":
        from airflow_notebook_provider.results import record

        return record
    if name == "record_lineage":
        from airflow_notebook_provider.results import record_lineage

        return record_lineage
    if name == "notebook_params":  # imports Airflow: only where a DAG is defined
        from airflow_notebook_provider.params import notebook_params

        return notebook_params
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
