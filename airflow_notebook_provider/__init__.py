"""Run Jupyter notebooks as Airflow tasks: one immutable, parameterized output notebook per attempt."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "record"]


def __getattr__(name: str) -> Any:
    """``record`` is imported on first use, so ``import airflow_notebook_provider`` in a kernel stays light."""
    if name == "record":
        from airflow_notebook_provider.results import record

        return record
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
