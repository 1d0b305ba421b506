"""A cell on a gateway kernel records its duration; its memory and CPU are not measurable from the worker (the
kernel is not a process here), so they are recorded as ``null`` and the viewer says so."""

from __future__ import annotations

from pathlib import Path

import nbformat

from airflow_notebook_provider.engine import Execution, ExecutionSettings
from airflow_notebook_provider.engine.kernels.gateway import GatewayKernels, GatewaySettings
from airflow_notebook_provider.notebook.resources import cell_costs
from tests.gateway.server import Gateway, assert_nothing_left
from tests.helpers import read_nb


def test_a_gateway_kernels_cells_record_their_duration_only(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(0.3)")],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    settings = ExecutionSettings(kernels=GatewayKernels(GatewaySettings(gateway.url, token=gateway.token,
                                                                        label="test")), kernel_name="python3")
    with Execution(str(tmp_path / "in.ipynb"), settings=settings) as execution:
        execution.run(nbformat.writes(nb).encode(), str(out), save=out.write_bytes)
    (cost,) = cell_costs(read_nb(out))
    assert cost.duration_s is not None and cost.duration_s >= 0.3
    assert cost.peak_rss_bytes is None and cost.cpu_s is None
    assert_nothing_left(gateway)
