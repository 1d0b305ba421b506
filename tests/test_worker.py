"""``airflow_notebook_provider.celery.worker``: what a Celery worker does once for its notebook tasks. The worker itself
runs in ``tests/distributed`` (two real Celery workers); here, the parts one can check in a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from airflow_notebook_provider.celery import worker
from tests.helpers import MotoServer

REPO = Path(__file__).resolve().parents[1]


def test_botocore_sessions_share_one_warmed_loader_and_still_reach_s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the preload, a new botocore session (one per task's S3 client) uses the worker's parsed models, and a
    client made from it writes and reads a real object; a session with its own data path keeps its own loader."""
    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)  # undone after the test
    worker.share_botocore_models()
    worker.share_botocore_models()  # a second call changes nothing
    first, second = botocore.session.get_session(), botocore.session.get_session()
    assert first.get_component("data_loader") is second.get_component("data_loader")
    assert botocore.session.create_loader("/somewhere/else") is not first.get_component("data_loader")
    client = second.create_client("s3", region_name="us-east-1", endpoint_url=moto.endpoint,
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="worker-preload")
    client.put_object(Bucket="worker-preload", Key="k", Body=b"notebook")
    assert client.get_object(Bucket="worker-preload", Key="k")["Body"].read() == b"notebook"


def test_preload_imports_what_a_notebook_task_needs() -> None:
    """In a fresh process (a worker before its pool forks), the engine's heavy parts are not there until preload."""
    probe = ("import sys; from airflow_notebook_provider.celery import worker\n"
             "names = ['nbclient.client', 'jupyter_client.manager', 'IPython', 's3fs',"
             " 'airflow_notebook_provider.operators.notebook']\n"
             "before = [n for n in names if n in sys.modules]; worker.preload()\n"
             "print(before, [n for n in names if n not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] []"
