"""``results.skip`` on a kernel that runs on a Jupyter Enterprise Gateway: the outcome travels as the cell's outputs,
so a remote kernel skips the task as a local one does (and leaves no kernel on the gateway)."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.gateway.server import WORKER_KERNEL, Gateway
from tests.helpers import code_cells, read_nb, run_dag


def test_skip_on_a_remote_kernel(airflow_db, gateway_conn: Gateway, make_notebook, tmp_path: Path) -> None:
    nb = make_notebook("from airflow_notebook_provider import results\nresults.skip('nothing on the gateway today')",
                       "print('later')",
                       kernelspec={"name": WORKER_KERNEL, "display_name": "Worker's Python", "language": "python"})
    out = tmp_path / "out.ipynb"
    with DAG(dag_id="t_gw_skip", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(out), kernel_conn_id="gw", retries=1)
    res = run_dag(dag)["nb"]
    assert (res.state, res.try_number) == ("skipped", 1)
    got = read_nb(out)
    assert "nothing on the gateway today" in "".join(got["cells"][0]["source"])
    assert code_cells(got)[1]["metadata"]["papermill"]["status"] == "pending"
