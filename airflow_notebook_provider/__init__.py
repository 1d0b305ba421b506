"""Run Jupyter notebooks as Airflow tasks: one immutable, parameterized output notebook per attempt."""

from __future__ import annotations

__version__ = "0.1.0"
