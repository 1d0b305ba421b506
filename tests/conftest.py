"""Shared fixtures: a real Airflow (SQLite metadata DB in a temporary AIRFLOW_HOME), notebooks, moto's S3 server.

AIRFLOW_HOME must be set before Airflow is imported, so it is set here at import time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="anp-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ.pop("AIRFLOW__NOTEBOOK__OUTPUT_BASE", None)
# The viewer reads recorded locations only under output_base and [notebook] viewer_allowed_locations: tests write
# outputs under the temporary folder (tmp_path) and to these moto buckets, as a deployment lists its shared folders.
os.environ["AIRFLOW__NOTEBOOK__VIEWER_ALLOWED_LOCATIONS"] = ",".join(
    [tempfile.gettempdir(), "s3://viewer", "s3://soon-gone", "s3://cli-runs", "s3://analytics"])
os.environ["ANP_TEST_SESSION"] = f"{os.getpid()}-{_HOME.name}"  # marks the kernels this session starts
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import json  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import nbformat  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import MotoServer, start_moto  # noqa: E402


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """A real, initialised SQLite metadata DB with the dags-folder bundle registered."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils import db

    db.initdb()
    DagBundlesManager().sync_bundles_to_db()
    return airflow_home


@pytest.fixture
def output_base(airflow_db: Path) -> Path:
    return airflow_db / "notebook_outputs"


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    """Write a notebook from cell sources; a source starting with '#parameters' is tagged ``parameters``."""

    def make(*sources: str, name: str = "nb.ipynb", kernelspec: dict[str, Any] | None = None, folder: Path | None = None) -> Path:
        cells = []
        for src in sources:
            if src.startswith("#md "):
                cells.append(nbformat.v4.new_markdown_cell(src[4:]))
                continue
            cell = nbformat.v4.new_code_cell(src)
            if src.startswith("#parameters"):
                cell.metadata["tags"] = ["parameters"]
            cells.append(cell)
        ks = kernelspec if kernelspec is not None else {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ks} if ks else {})
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    return make


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server on 127.0.0.1, and an Airflow ``aws`` connection ``moto_s3`` pointing at it."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    os.environ["AIRFLOW_CONN_MOTO_S3"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"},
        }
    )
    try:
        yield server
    finally:
        os.environ.pop("AIRFLOW_CONN_MOTO_S3", None)
        server.stop()


def pytest_report_header() -> str:
    """The Airflow this run tests, in the log's header: `make test` runs the suite on two releases (see Makefile)."""
    from importlib.metadata import version

    packages = ("apache-airflow", "apache-airflow-task-sdk", "apache-airflow-providers-common-compat")
    return "airflow: " + ", ".join(f"{name} {version(name)}" for name in packages)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once per session as `make docs` builds it (tests/docs_site.py)."""
    from tests.docs_site import build_site

    return build_site(tmp_path_factory.mktemp("site"))
