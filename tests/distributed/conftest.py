"""The distributed cluster for this package: started once (about 25 s), stopped by process group at the end.

The suite skips only when PostgreSQL, Redis or the Celery provider is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.distributed.dags import DAGS, wait_notebook
from tests.distributed.services import Cluster, Unavailable, start_cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("example_notebook_daily_report.py", "example_notebook_results.py", "example_notebook_retry.py",
            "example_notebook_s3.py", "example_notebook_trigger_form.py")


@pytest.fixture(scope="package")
def staging() -> Iterator[Path]:
    """The DAGs (a copy of the examples and ``dags.py``) and a work folder every host sees."""
    folder = Path(tempfile.mkdtemp(prefix="anp-dist-work-", dir="/var/tmp"))
    (folder / "dags").mkdir()
    (folder / "work").mkdir()
    for name in EXAMPLES:
        shutil.copy(REPO / "example_dags" / name, folder / "dags" / name)
    shutil.copytree(REPO / "example_dags" / "notebooks", folder / "dags" / "notebooks")
    (folder / "dags" / "dist_dags.py").write_text(DAGS.format(work=str(folder / "work")))
    nbformat.write(wait_notebook(), str(folder / "work" / "wait.ipynb"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="package")
def cluster(staging: Path) -> Iterator[Cluster]:
    for module in ("celery", "airflow.providers.celery", "psycopg2", "asyncpg", "redis"):
        pytest.importorskip(module, reason=f"{module} is a test dependency (pip install -e '.[test]')")
    try:
        cluster = start_cluster(staging / "dags")
    except Unavailable as exc:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI runs the distributed suite, but: {exc} (.ci/run installs postgresql and redis-server)")
        pytest.skip(f"distributed suite: {exc}")
    try:
        s3 = cluster.s3()
        s3.create_bucket(Bucket="analytics")
        s3.upload_file(str(REPO / "example_dags" / "notebooks" / "hello.ipynb"), "analytics", "templates/hello.ipynb")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
