"""A debug copy of an output notebook: what ``airflow-notebook pull`` and JupyterLab's "Debug" write beside it.

The copy keeps everything the run left (its injected parameters, outputs and kernelspec: the kernel the run used) and
drops papermill's error banners, so "Run all" replays the run where it failed. Pure data: no Airflow, no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_notebook_provider.notebook.record import PROVENANCE_KEY, is_banner


def debug_copy(nb: Any, source: str) -> Any:
    """The notebook with outputs and injected parameters kept, the error banner removed, ready to run all cells;
    ``metadata.airflow_notebook.debug_copy_of`` names where it came from."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if not is_banner(c)]
    out.metadata.setdefault(PROVENANCE_KEY, {})["debug_copy_of"] = source
    return out
