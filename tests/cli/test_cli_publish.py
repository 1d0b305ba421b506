"""Publishing is a setting of a run: ``airflow-notebook run --report ... --collect ...`` writes the reports and the
collected files a task with ``report_formats`` and ``collect_files`` writes, with the same names and record."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import cli, read_nb, run_dag

CELLS = (
    "#parameters\nfail = False",
    "import pathlib\npathlib.Path('out').mkdir(exist_ok=True)\npathlib.Path('out/rows.csv').write_text('a,b\\n1,2\\n')",
    "print('total', 3)",
    "if fail:\n    raise ValueError('bad rows')",
)


def published(output: Path) -> tuple[list[str], list[str]]:
    """What a user finds beside an output: the report file names and the collected files (relative to it)."""
    stem = output.name[: -len(".ipynb")]
    reports = sorted(p.name for p in output.parent.iterdir() if p.name.startswith(stem) and p.suffix in (".html", ".md"))
    files_dir = output.parent / f"{stem}.files"
    files = sorted(str(p.relative_to(files_dir)) for p in files_dir.rglob("*") if p.is_file()) if files_dir.exists() else []
    return reports, files


def test_run_writes_reports_and_collected_files_like_a_task(airflow_db, make_notebook, tmp_path: Path) -> None:
    nb = make_notebook(*CELLS)
    out = tmp_path / "cli" / "attempt.ipynb"
    proc = cli("run", str(nb), "-o", str(out), "--report", "html", "--report", "markdown", "--collect", "out/*.csv")
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.split()
    assert printed[0] == str(out)
    assert set(printed[1:]) == {str(out.with_suffix(".html")), str(out.with_suffix(".md")),
                                str(tmp_path / "cli" / "attempt.files" / "out" / "rows.csv")}
    assert published(out) == (["attempt.html", "attempt.md"], ["out/rows.csv"])
    assert (tmp_path / "cli" / "attempt.files" / "out" / "rows.csv").read_text() == "a,b\n1,2\n"
    assert "total 3" in out.with_suffix(".html").read_text()
    meta = read_nb(out)["metadata"]["airflow"]
    assert set(meta["reports"]) == {"html", "markdown"}
    assert [f["path"] for f in meta["files"]] == ["out/rows.csv"]

    # The operator with the same settings writes the same set beside its own output.
    task_out = tmp_path / "task" / "attempt.ipynb"
    with DAG("cli_publish_parity", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), output_notebook=str(task_out),
                         report_formats=["html", "markdown"], collect_files=["out/*.csv"])
    assert run_dag(dag)["nb"].state == "success"
    assert published(task_out) == published(out)
    assert set(read_nb(task_out)["metadata"]["airflow"]["reports"]) == set(meta["reports"])


def test_a_failed_run_still_publishes_and_says_where(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook(*CELLS)
    out = tmp_path / "failed.ipynb"
    proc = cli("run", str(nb), "-o", str(out), "-p", "fail", "true", "--report", "html", "--collect", "out/*.csv")
    assert proc.returncode == 1
    assert "bad rows" in proc.stderr
    assert str(out.with_suffix(".html")) in proc.stderr
    assert published(out) == (["failed.html"], ["out/rows.csv"])
    assert "bad rows" in out.with_suffix(".html").read_text()


def test_a_wrong_report_format_or_pattern_is_refused_before_the_run(make_notebook, tmp_path: Path) -> None:
    nb = make_notebook(*CELLS)
    proc = cli("run", str(nb), "-o", str(tmp_path / "o.ipynb"), "--report", "docx")
    assert proc.returncode == 2 and "html" in proc.stderr and "docx" in proc.stderr
    proc = cli("run", str(nb), "-o", str(tmp_path / "o.ipynb"), "--collect", "../secrets/*")
    assert proc.returncode == 2
    assert "reaches outside the kernel's working folder" in proc.stderr
    assert not (tmp_path / "o.ipynb").exists()
