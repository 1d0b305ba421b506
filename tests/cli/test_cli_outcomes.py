"""``airflow-notebook run`` on a notebook that decides its own outcome: the exit status tells a script (cron, CI,
another scheduler) a skip and a failure not to retry from an ordinary failure."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli, code_cells, read_nb

IMPORT = "from airflow_notebook_provider import results\n"


def test_skip_exits_3_and_fail_without_retry_exits_4(make_notebook, tmp_path: Path) -> None:
    skip = make_notebook(IMPORT + "results.skip('nothing new today')", "print('later')", name="skip.ipynb")
    proc = cli("run", str(skip), "-o", str(tmp_path / "skip.out.ipynb"))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "skip.out.ipynb")
    assert "The notebook skipped the run at cell 1: nothing new today" in proc.stderr
    assert code_cells(read_nb(tmp_path / "skip.out.ipynb"))[1]["metadata"]["papermill"]["status"] == "pending"
    inspected = cli("inspect", str(tmp_path / "skip.out.ipynb"))
    assert inspected.returncode == 0 and "skipped" in inspected.stdout and "succeeded" not in inspected.stdout

    fail = make_notebook(IMPORT + "results.fail('input is corrupt')", name="fail.ipynb")
    proc = cli("run", str(fail), "-o", str(tmp_path / "fail.out.ipynb"))
    assert proc.returncode == 4, proc.stderr
    assert "NotebookFail: input is corrupt" in proc.stderr

    again = make_notebook(IMPORT + "results.fail('upstream not ready', retry=True)", name="again.ipynb")
    assert cli("run", str(again), "-o", str(tmp_path / "again.out.ipynb")).returncode == 1  # an ordinary failure


def test_run_help_documents_the_exit_statuses() -> None:
    proc = cli("run", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "3 the notebook skipped itself (results.skip)" in text and "4 it failed itself without retry" in text
