"""Object-store faults with moto's S3 server over HTTP: unreachable at the start, gone mid-run then back, gone
for good. Writes retry with backoff for ``[notebook] storage_retry_seconds`` (small here); a store that stays
down fails the task with an error naming the location; no partial object is ever visible at the output key."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import MotoServer, free_port, run_dag, s3_client, start_moto
from tests.processes import wait_for

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def aws_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, endpoint: str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                    "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}),
    )


def one_task(dag_id: str, **kwargs: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", **kwargs)
    return dag


@pytest.fixture
def retry_seconds(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__STORAGE_RETRY_SECONDS", "4")
    return 4.0


def test_store_unreachable_at_the_start(airflow_db, make_notebook, own_kernels, retry_seconds, monkeypatch, tmp_path, capfd) -> None:
    aws_conn(monkeypatch, "s3_unreachable", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    marker = tmp_path / "ran"
    nb = make_notebook(f"open({str(marker)!r}, 'w').write('ran')")
    with DAG(dag_id="rel_s3_unreachable", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="output", notebook=str(nb), conn_id="s3_unreachable",
                         output_notebook="s3://reports/out/{{ ti.try_number }}.ipynb")
        NotebookOperator(task_id="input", notebook="s3://templates/report.ipynb", conn_id="s3_unreachable")
    t0 = time.monotonic()
    res = run_dag(dag)
    elapsed = time.monotonic() - t0
    assert res["output"].state == "failed" and res["input"].state == "failed"
    assert not marker.exists() and "output_notebook" not in res["output"].xcom  # no kernel was started
    text = "".join(capfd.readouterr())
    for location in ("s3://reports/out/1.ipynb", "s3://templates/report.ipynb"):
        line = next(x for x in text.splitlines() if "NotebookTaskError:" in x and location in x)
        assert "EndpointConnectionError" in line and "'s3_unreachable'" in line and "storage_retry_seconds" in line
    assert not own_kernels()
    print(f"STORE UNREACHABLE: two tasks failed after {elapsed:.1f} s with storage_retry_seconds={retry_seconds:g}")


@pytest.fixture
def flaky_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """A moto server of our own (the test stops and restarts it) and a connection ``s3_flaky_<port>`` to it.

    One connection id per server: Airflow caches a connection's filesystem (and its endpoint) per process.
    """
    port = free_port()
    state: dict[str, object] = {"server": start_moto(tmp_path, port), "port": port, "conn_id": f"s3_flaky_{port}"}
    aws_conn(monkeypatch, f"s3_flaky_{port}", f"http://127.0.0.1:{port}")
    s3_client(f"http://127.0.0.1:{port}").create_bucket(Bucket="runs")
    try:
        yield state
    finally:
        server = state["server"]
        assert isinstance(server, MotoServer)
        server.stop()


WAIT_CELLS = (
    "import pathlib, time\nfolder = pathlib.Path({folder!r})\n(folder / 'started').write_text('1')",
    "deadline = time.time() + 120\nwhile not (folder / 'go').exists() and time.time() < deadline:\n    time.sleep(0.1)",
    "print('finished while the store was away', flush=True)",
)


def _outage(state: dict[str, object], folder: Path, tmp_path: Path, come_back: bool, seen: list[str]) -> None:
    """Stop the store once the notebook runs, let the notebook finish, then (maybe) bring the store back."""
    wait_for(lambda: (folder / "started").exists(), 120, "the notebook to start")
    server = state["server"]
    assert isinstance(server, MotoServer)
    _watch_key(server.endpoint, seen, until=lambda: False, once=True)
    server.stop()
    time.sleep(1.5)  # checkpoints (every 0.5 s) fail meanwhile: the run goes on
    (folder / "go").write_text("1")
    if come_back:
        time.sleep(3)  # the final write fails and retries meanwhile
        port = state["port"]
        assert isinstance(port, int)
        state["server"] = start_moto(tmp_path, port)
        s3_client(f"http://127.0.0.1:{port}").create_bucket(Bucket="runs")  # moto keeps its state in memory


def _watch_key(endpoint: str, seen: list[str], until: object, once: bool = False) -> None:
    """Read the output key; record what a reader sees: absent, a whole notebook, or (never) anything else."""
    import boto3
    from botocore.config import Config

    client = boto3.client(  # one quick request per look: a reader must not sit in botocore's retries
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    while True:
        try:
            body = client.get_object(Bucket="runs", Key="out/1.ipynb")["Body"].read()
        except client.exceptions.NoSuchKey:
            seen.append("absent")
        except Exception:  # noqa: BLE001 - the store is down: nothing to see
            seen.append("down")
        else:
            try:
                seen.append("notebook" if "cells" in json.loads(body) else "not-a-notebook")
            except ValueError:
                seen.append("partial")
        if once or until():  # type: ignore[operator]
            return
        time.sleep(0.05)


@pytest.mark.parametrize("come_back", [True, False], ids=["back", "gone"])
def test_store_goes_away_mid_run(airflow_db, make_notebook, own_kernels, flaky_store, monkeypatch, tmp_path, come_back, capfd, caplog) -> None:
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__STORAGE_RETRY_SECONDS", "30" if come_back else "4")
    folder = tmp_path / "signals"
    folder.mkdir()
    nb = make_notebook(*(c.format(folder=str(folder)) for c in WAIT_CELLS))
    seen: list[str] = []
    stop = threading.Event()
    server = flaky_store["server"]
    assert isinstance(server, MotoServer)
    reader = threading.Thread(target=_watch_key, args=(server.endpoint, seen, stop.is_set), daemon=True)
    outage = threading.Thread(target=_outage, args=(flaky_store, folder, tmp_path, come_back, seen), daemon=True)
    reader.start()
    outage.start()
    dag = one_task(f"rel_s3_outage_{'back' if come_back else 'gone'}", notebook=str(nb), conn_id=str(flaky_store["conn_id"]),
                   output_notebook="s3://runs/out/{{ ti.try_number }}.ipynb", checkpoint_interval=0.5)
    t0 = time.monotonic()
    res = run_dag(dag)
    elapsed = time.monotonic() - t0
    outage.join(timeout=60)
    if come_back:  # watch the final object for a moment
        time.sleep(0.5)
    stop.set()
    reader.join(timeout=30)
    text = "".join(capfd.readouterr()) + caplog.text
    assert set(seen) <= {"absent", "down", "notebook"}, set(seen)  # never a partial object at the key
    assert not own_kernels()
    if come_back:
        assert res["nb"].state == "success"
        body = s3_client(server.endpoint).get_object(Bucket="runs", Key="out/1.ipynb")["Body"].read()
        out = json.loads(body)
        assert out["metadata"]["papermill"]["exception"] is None
        assert {c["metadata"]["papermill"]["status"] for c in out["cells"]} == {"completed"}
        assert "finished while the store was away" in body.decode()
    else:
        assert res["nb"].state == "failed"
        line = next(x for x in text.splitlines() if "NotebookTaskError:" in x and "s3://runs" in x)
        assert "Could not write the output notebook to s3://runs/out/1.ipynb" in line and f"'{flaky_store['conn_id']}'" in line
        rescue = Path(line.split("kept on this worker at ")[1].split()[0].rstrip("."))
        kept = json.loads(rescue.read_text())  # the evidence survives the outage
        assert "finished while the store was away" in json.dumps(kept["cells"])
        rescue.unlink()
    print(f"STORE OUTAGE ({'back after 3 s' if come_back else 'gone for good'}): task {res['nb'].state} in {elapsed:.1f} s; "
          f"reader saw {sorted(set(seen))}")
