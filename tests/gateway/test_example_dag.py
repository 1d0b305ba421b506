"""``example_notebook_gateway`` as shipped, against the test gateway as ``jupyter_gateway_default``."""

from __future__ import annotations

from tests.gateway.server import Gateway, assert_nothing_left
from tests.helpers import code_cells, load_example, read_nb, run_dag, stream_text


def test_the_gateway_example_dag_runs_on_the_gateway(airflow_db, gateway: Gateway, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_JUPYTER_GATEWAY_DEFAULT", gateway.connection_json())
    posts_before = gateway.log.read_text().count("POST /api/kernels ")
    res = run_dag(load_example("example_notebook_gateway").dag)["hello_on_gateway"]
    assert res.state == "success"
    out = read_nb(res.xcom["return_value"])
    ds = out["metadata"]["airflow"]["logical_date"][:10]
    assert stream_text(code_cells(out)[2]) == f"hello gateway run of {ds}\n" * 2
    assert gateway.log.read_text().count("POST /api/kernels ") > posts_before  # the kernel ran on the gateway
    assert_nothing_left(gateway)
