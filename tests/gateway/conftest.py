"""The Jupyter Enterprise Gateway of the remote-kernel tests (``server.py``), shared by the session, and the check
run after every test (``assert_nothing_left``, in ``server.py``): no kernel left on the gateway (``GET /api/kernels``),
no kernel process left on the gateway's side (their command lines carry the gateway's runtime folder) and none on the
worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.server import Gateway, assert_nothing_left, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield gw
    gw.stop()


@pytest.fixture
def gateway_conn(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """The session's gateway as connection ``gw`` (AIRFLOW_CONN_GW, JSON); after the test, nothing is left on it."""
    monkeypatch.setenv("AIRFLOW_CONN_GW", gateway.connection_json(connect_timeout=5))
    yield gateway
    assert_nothing_left(gateway)
