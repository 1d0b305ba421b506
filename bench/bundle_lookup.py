"""What finding a relative notebook in the DAG's bundle adds to a task (``task.bundle.locate``), in milliseconds.

A real ``GitDagBundle`` on a local repository, checked out at a commit as the task runner does before the task starts
(not counted: Airflow pays it for the DAG file anyway), then ``locate`` as the operator calls it, with the bundle on
the task instance: at the run's version (a fixed commit), on the latest version (the commit read from the checkout),
and under ``dag.test()`` (the DAG file's folder). Median of ``--runs`` calls after one warm-up.

    .venv/bin/python -m bench.bundle_lookup [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.ab import median_ms


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
        os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"] = str(home / "bundles")
        import nbformat
        from airflow.providers.git.bundles.git import GitDagBundle

        from airflow_notebook_provider.task.bundle import locate

        repo = home / "repo"
        (repo / "notebooks").mkdir(parents=True)
        _git(repo, "init", "-q", "-b", "main")
        cells = [nbformat.v4.new_code_cell(f"x{i} = {i}") for i in range(20)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), str(repo / "notebooks" / "report.ipynb"))
        (repo / "dag.py").write_text("# the DAG file\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "v1")
        sha = _git(repo, "rev-parse", "HEAD")

        def context(version: str | None) -> dict[str, Any]:
            bundle = GitDagBundle(name="bench", tracking_ref="main", repo_url=str(repo), version=version)
            bundle.initialize()
            return {"ti": SimpleNamespace(bundle_instance=bundle)}

        at_version, latest = context(sha), context(None)
        dag_test = {"ti": SimpleNamespace(), "dag": SimpleNamespace(fileloc=str(repo / "dag.py"))}
        assert locate("notebooks/report.ipynb", None, at_version).origin.version == sha  # type: ignore[union-attr]
        assert locate("notebooks/report.ipynb", None, latest).origin.version == sha  # type: ignore[union-attr]
        figures = {
            "run's version (GitDagBundle at a commit)": median_ms(
                lambda: locate("notebooks/report.ipynb", None, at_version), args.runs),
            "latest version (GitDagBundle, commit read from the checkout)": median_ms(
                lambda: locate("notebooks/report.ipynb", None, latest), args.runs),
            "dag.test() (the DAG file's folder)": median_ms(
                lambda: locate("notebooks/report.ipynb", None, dag_test), args.runs),
            "absolute path (unchanged: no lookup)": median_ms(
                lambda: locate(str(repo / "notebooks" / "report.ipynb"), None, at_version), args.runs),
        }
    print(json.dumps({"runs": args.runs, "median_ms": {k: round(v, 3) for k, v in figures.items()}}, indent=2))


if __name__ == "__main__":
    main()
