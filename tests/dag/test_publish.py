"""What an attempt publishes beside its output notebook: rendered reports (success and failure alike) and the files
the notebook wrote, with their locations in XCom and in the notebook; and asset events that say where it all is."""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG, Asset

from airflow_notebook_provider.engine.publish import find_files
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import read_nb, run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def one_task(dag_id: str, **kw: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", **kw)
    return dag


def test_reports_of_a_failed_attempt_show_the_error_and_carry_no_script(airflow_db, make_notebook, tmp_path) -> None:
    nb = make_notebook("#parameters\nregion = 'x'", "print('rows for', region)",
                       "from IPython.display import HTML\nHTML('<b>bold</b><script>alert(1)</script>')",
                       "raise KeyError('missing column amount')")
    out = tmp_path / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_fail", notebook=str(nb), output_notebook=str(out), parameters={"region": "eu"},
                           report_formats=["html", "markdown"]))["nb"]
    assert res.state == "failed"
    html_report, md_report = tmp_path / "attempt-1.html", tmp_path / "attempt-1.md"
    assert res.xcom["reports"] == {"html": str(html_report), "markdown": str(md_report)}
    page = html_report.read_text()
    assert "rows for eu" in page and "KeyError" in page and "missing column amount" in page
    assert "<b>bold</b>" in page and "<script" not in page.lower()
    assert "default-src 'none'" in page  # the page's own Content-Security-Policy forbids every script
    assert "KeyError" in md_report.read_text()
    assert read_nb(out)["metadata"]["airflow"]["reports"]["html"] == str(html_report)


def test_report_mode_hides_code_and_the_injected_parameters(airflow_db, make_notebook, tmp_path) -> None:
    nb = make_notebook("#parameters\nsecret_sauce = 'ketchup'", "print('the total is', 6 * 7)")
    out = tmp_path / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_report_mode", notebook=str(nb), output_notebook=str(out),
                           parameters={"secret_sauce": "mayo"}, report_formats=["html"], report_mode=True))["nb"]
    assert res.state == "success"
    page = (tmp_path / "attempt-1.html").read_text()
    assert "the total is 42" in page
    assert "6 * 7" not in page and "mayo" not in page  # no code inputs, no injected-parameters cell
    code = [c for c in read_nb(out)["cells"] if c["cell_type"] == "code"]
    assert len(code) == 3 and all(c["metadata"]["jupyter"]["source_hidden"] is True for c in code)  # papermill's mark


def test_a_pdf_report_printed_by_the_local_chromium(airflow_db, make_notebook, tmp_path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium (.ci/run installs Debian's)")
    nb = make_notebook("print('hello pdf')")
    out = tmp_path / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_pdf", notebook=str(nb), output_notebook=str(out), report_formats=["pdf"]))["nb"]
    assert res.state == "success"
    assert (tmp_path / "attempt-1.pdf").read_bytes().startswith(b"%PDF-")


def test_collected_files_are_copied_beside_the_notebook_and_listed(airflow_db, make_notebook, tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside.csv").write_text("not yours\n")
    nb = make_notebook(
        "import os, pathlib\n"
        "pathlib.Path('out').mkdir(exist_ok=True)\n"
        "pathlib.Path('out/a.csv').write_text('x,y\\n1,2\\n')\n"
        "pathlib.Path('out/big.csv').write_text('z' * 5000)\n"
        "pathlib.Path('figures/q1').mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path('figures/q1/chart.png').write_bytes(b'\\x89PNG fake')\n"
        "os.symlink('/etc/passwd', 'out/passwd.csv')\n"
        "os.symlink('..', 'out/up')\n"
        "raise RuntimeError('failed after writing')",
        folder=work,
    )
    out = tmp_path / "runs" / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_files", notebook=str(nb), output_notebook=str(out),
                           collect_files=["out/*.csv", "figures/**/*.png", "out/up/*.csv"],
                           collect_files_max_bytes=1000))["nb"]
    assert res.state == "failed"  # collected all the same
    files = tmp_path / "runs" / "attempt-1.files"
    assert sorted(res.xcom["files"]) == [str(files / "figures/q1/chart.png"), str(files / "out/a.csv")]
    assert (files / "out" / "a.csv").read_text() == "x,y\n1,2\n"
    assert not (files / "out" / "passwd.csv").exists() and not list(files.rglob("outside.csv"))
    meta = read_nb(out)["metadata"]["airflow"]
    assert [f["path"] for f in meta["files"]] == ["figures/q1/chart.png", "out/a.csv"]
    assert meta["files_skipped"] == ["out/big.csv"]  # over collect_files_max_bytes


def test_a_pattern_out_of_the_working_folder_is_refused_before_the_run(airflow_db, make_notebook, tmp_path, capfd) -> None:
    nb = make_notebook("print(1)")
    res = run_dag(one_task("t_pub_badglob", notebook=str(nb), output_notebook=str(tmp_path / "o.ipynb"),
                           collect_files=["../*.csv"], retries=2))["nb"]
    assert res.state == "failed" and res.try_number == 1
    assert "reaches outside the kernel's working folder" in "".join(capfd.readouterr())
    assert not (tmp_path / "o.ipynb").exists()


def test_an_asset_event_says_where_the_notebook_and_its_results_are(airflow_db, make_notebook, tmp_path) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    nb = make_notebook("from airflow_notebook_provider import record\nrecord('rows', 3)")
    out = tmp_path / "attempt-1.ipynb"
    asset = Asset(f"file://{tmp_path}/sales_report")
    res = run_dag(one_task("t_pub_asset", notebook=str(nb), output_notebook=str(out), outlets=[asset],
                           report_formats=["html"]))["nb"]
    assert res.state == "success"
    with create_session() as session:
        extras = [e.extra for e in session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == "t_pub_asset"))]
    assert extras and extras[-1]["output_notebook"] == str(out)
    assert extras[-1]["results"] == ["rows"] and extras[-1]["reports"]["html"].endswith("attempt-1.html")


def test_find_files_keeps_to_regular_files_inside_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / "a").mkdir(parents=True)
    (root / "a" / "1.txt").write_text("1")
    (root / "a" / "2.txt").write_text("22")
    os.mkfifo(root / "a" / "fifo.txt")
    (tmp_path / "secret.txt").write_text("s")
    os.symlink(tmp_path, root / "a" / "escape")
    found = find_files(root, ["a/*.txt", "a/**/*.txt", "**/secret.txt"], max_bytes=2)
    assert [f.path for f in found.files] == ["a/1.txt"] and found.skipped == ["a/2.txt"]
    assert ("a/fifo.txt", "a FIFO, not a regular file") in found.refused
    assert all(path.startswith("a/escape/") for path, _ in found.refused if path != "a/fifo.txt")
