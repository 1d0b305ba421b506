"""The nbclient corpus (../shared/corpus/nbclient) on a gateway kernel, checked against EXPECTED.json as locally.

Left out, and why: ``Inline Image`` reads ``python.png`` from the notebook's folder, which is on the worker, not
where a remote kernel runs (README "Remote kernels": inputs travel by URL or a mounted volume); ``Check History in
Memory`` tests how the kernel process is launched (history in memory), which is the gateway's kernelspec's business
(a local kernel gets it from this provider); the two ``Parallel Execute`` notebooks need a folder shared by two
kernels. The kernelspec is the gateway's ``worker-python``, whose environment has ipywidgets for ``JupyterWidgets``.
"""

from __future__ import annotations

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.corpus import CASES, CORPUS, check_outcome, task_id_for
from tests.gateway.server import WORKER_KERNEL, Gateway, assert_nothing_left
from tests.helpers import run_dag

LOCAL_ONLY = {"Inline Image.ipynb", "Check History in Memory.ipynb"}
REMOTE_CASES = {k: v for k, v in CASES.items() if k not in LOCAL_ONLY}


@pytest.fixture(scope="module")
def gateway_corpus_run(airflow_db, gateway: Gateway):
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_GWC", gateway.connection_json())
    try:
        with DAG(dag_id="corpus_gateway", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
            for name, exp in REMOTE_CASES.items():
                NotebookOperator(
                    task_id=task_id_for(name), notebook=str(CORPUS / name), kernel_conn_id="gwc",
                    kernel_name=WORKER_KERNEL, cell_timeout=exp.get("settings", {}).get("cell_timeout_seconds", 60),
                )
        yield run_dag(dag)
    finally:
        mp.undo()
    assert_nothing_left(gateway)


@pytest.mark.parametrize("name", sorted(REMOTE_CASES))
def test_corpus_notebook_on_the_gateway(gateway_corpus_run, name: str) -> None:
    check_outcome(gateway_corpus_run[task_id_for(name)], REMOTE_CASES[name])
