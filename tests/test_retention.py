"""Retention as an operator runs it: ``airflow-notebook clean`` on a tree of a few thousand outputs (dry run first),
and the example maintenance DAG on the same code. Nothing outside ``output_base`` is touched, links included."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_notebook_provider.maintenance import retention
from airflow_notebook_provider.task import outputs
from tests.helpers import run_dag

EXE = str(Path(sys.executable).with_name("airflow-notebook"))
REPO = Path(__file__).resolve().parents[1]
DAY = 86400


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _notebook(failed: bool) -> bytes:
    nb = {"cells": [], "metadata": {"papermill": {"exception": True if failed else None}}, "nbformat": 4,
          "nbformat_minor": 5}
    return json.dumps(nb).encode() + b" " * 2000  # about the size of a small output notebook


def _age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when), follow_symlinks=False)


def files_under(root: Path) -> dict[Path, int]:
    return {p: p.lstat().st_size for p in root.rglob("*") if p.is_symlink() or p.is_file()}


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[dict[str, object]]:
    """output_base with 3 DAGs x 30 runs x 12 tasks, each with 1-2 attempts (notebook + record), every 5th with a
    report and a folder of collected files; runs 0-17 are 45 days old, 18-29 are 3 days old. Plus: a link to a
    file and one to a folder outside output_base, a record pointing to a custom output name, CLI outputs."""
    base = tmp_path / "notebook_outputs"
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "precious.ipynb").write_bytes(b"{}")
    (outside / "folder" / "keep.txt").write_text("keep")
    old_attempts = new_attempts = old_failed = 0
    old_bytes = 0
    for d in range(3):
        for r in range(30):
            days = 45 if r < 18 else 3
            for t in range(12):
                folder = base / f"dag_{d}" / f"scheduled__2024-01-{r + 1:02d}T00:00:00+00:00" / f"task_{t}"
                folder.mkdir(parents=True)
                attempts = 2 if t % 4 == 0 else 1
                for n in range(1, attempts + 1):
                    failed = n < attempts or t == 7
                    paths = [folder / f"attempt-{n}.ipynb", folder / f"attempt-{n}.record.json"]
                    paths[0].write_bytes(_notebook(failed))
                    paths[1].write_text(json.dumps({"location": str(paths[0]), "conn_id": None, "try_number": n}))
                    if t % 5 == 0:
                        paths.append(folder / f"attempt-{n}.html")
                        paths[-1].write_text("<p>report</p>" * 100)
                        collected = folder / f"attempt-{n}"
                        (collected / "plots").mkdir(parents=True)
                        (collected / "plots" / "a.png").write_bytes(b"x" * 5000)
                        paths += [collected / "plots" / "a.png", collected / "plots", collected]
                    for p in paths:
                        _age(p, days)
                    if days > 30:
                        old_attempts += 1
                        old_failed += failed
                        old_bytes += sum(p.stat().st_size for p in paths if p.is_file() and "record" not in p.name)
                    else:
                        new_attempts += 1
    # Links inside output_base, pointing out of it; old enough to go (as links).
    (base / "dag_0" / "escape.ipynb").symlink_to(outside / "precious.ipynb")
    (base / "dag_0" / "escape-folder").symlink_to(outside / "folder", target_is_directory=True)
    _age(base / "dag_0" / "escape.ipynb", 90)
    _age(base / "dag_0" / "escape-folder", 90)
    # A task with output_notebook in output_base under its own name: the record points at it.
    custom = base / "reports" / "daily-2024-01-01.ipynb"
    custom.parent.mkdir()
    custom.write_bytes(_notebook(False))
    rec_folder = base / "dag_custom" / "manual__1" / "report"
    rec_folder.mkdir(parents=True)
    (rec_folder / "attempt-1.record.json").write_text(json.dumps({"location": str(custom), "try_number": 1}))
    for p in (custom, rec_folder / "attempt-1.record.json"):
        _age(p, 60)
    # An attempt whose notebook is outside output_base: only its record is here; it must not be followed.
    out_rec = base / "dag_out" / "manual__1" / "t"
    out_rec.mkdir(parents=True)
    (out_rec / "attempt-1.record.json").write_text(json.dumps({"location": str(outside / "precious.ipynb")}))
    _age(out_rec / "attempt-1.record.json", 60)
    yield {"base": base, "outside": outside, "old_attempts": old_attempts, "new_attempts": new_attempts,
           "old_failed": old_failed, "old_bytes": old_bytes, "custom": custom}


def test_clean_a_tree_of_thousands_dry_run_first(tree: dict[str, object]) -> None:
    base, outside = Path(str(tree["base"])), Path(str(tree["outside"]))
    before = files_under(base)
    outside_before = files_under(outside)
    assert len(before) > 3000

    started = time.monotonic()
    dry = cli("clean", "--older-than", "30d", "--dry-run", "--output-base", str(base))
    dry_seconds = time.monotonic() - started
    assert dry.returncode == 0, dry.stderr
    assert files_under(base) == before  # a dry run removes nothing
    lines = dry.stdout.splitlines()
    assert all(ln.startswith("would remove") for ln in lines[:-1])
    assert lines[-1].startswith("Would free ")

    started = time.monotonic()
    real = cli("clean", "--older-than", "30d", "--output-base", str(base), "--json")
    seconds = time.monotonic() - started
    assert real.returncode == 0, real.stderr
    report = json.loads(real.stdout)
    print(f"\nclean: {len(before)} files, {report['entries']} entries removed, {report['bytes']} bytes, "
          f"dry run {dry_seconds:.2f} s, clean {seconds:.2f} s (in-process {report['seconds']:.2f} s)")
    # The dry run listed exactly what the real run removed.
    assert [ln.split()[-1].rstrip("/") for ln in lines[:-1]] == [r["path"] for r in report["removed"]]

    after = files_under(base)
    # Every old attempt is gone but its record, rewritten as a tombstone; every new attempt is whole.
    notebooks = [p for p in after if p.name.startswith("attempt-") and p.suffix == ".ipynb"]
    assert len(notebooks) == tree["new_attempts"]
    records = [p for p in after if p.name.endswith(".record.json")]
    tombstones = [p for p in records if retention.removal_note(json.loads(p.read_text()))]
    assert len(tombstones) == tree["old_attempts"] + 1 == report["tombstones"]  # + the custom-name attempt
    note = retention.removal_note(json.loads(tombstones[0].read_text()))
    assert note is not None and note["by"] == "airflow-notebook clean --older-than 30d" and note["bytes"] > 0
    assert not Path(str(tree["custom"])).exists()
    # Bytes freed: the old attempts' files, the custom notebook, the two links and nothing else.
    removed = sum(size for p, size in before.items() if p not in after)
    assert report["bytes"] == removed
    assert report["bytes"] >= int(str(tree["old_bytes"]))
    # Links were removed as links: what they pointed to is untouched, as is the notebook a record points to.
    assert files_under(outside) == outside_before
    assert (Path(str(tree["outside"])) / "folder" / "keep.txt").read_text() == "keep"
    # Old run folders are gone, new ones stay.
    assert not (base / "dag_0" / "scheduled__2024-01-01T00:00:00+00:00" / "task_1" / "attempt-1.ipynb").exists()
    assert (base / "dag_0" / "scheduled__2024-01-20T00:00:00+00:00" / "task_1" / "attempt-1.ipynb").exists()
    # A second run finds nothing more to remove: tombstones stay.
    again = cli("clean", "--older-than", "30d", "--output-base", str(base), "--json")
    assert json.loads(again.stdout)["entries"] == 0 and files_under(base) == after


def test_keep_failed_and_bad_input(tree: dict[str, object]) -> None:
    base = Path(str(tree["base"]))
    proc = cli("clean", "--older-than", "30d", "--keep-failed", "--output-base", str(base), "--json")
    report = json.loads(proc.stdout)
    assert report["kept_failed"] == tree["old_failed"]
    failed_left = [p for p in base.rglob("attempt-*.ipynb")
                   if json.loads(p.read_bytes())["metadata"]["papermill"]["exception"]]
    assert len(failed_left) >= int(str(tree["old_failed"]))

    bad = cli("clean", "--older-than", "thirty days", "--output-base", str(base))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--older-than 'thirty days' is not an age: write a positive number and a unit, e.g. 30d" in bad.stderr
    missing = cli("clean", "--older-than", "30d", "--output-base", str(base / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr and "--output-base" in missing.stderr
    s3 = cli("clean", "--older-than", "30d", "--output-base", "s3://bucket/outputs")
    assert s3.returncode == 2 and "lifecycle rule" in s3.stderr


def test_record_suffix_matches_the_outputs_layout() -> None:
    assert retention.RECORD_SUFFIX == outputs.RECORD_SUFFIX


def test_example_maintenance_dag_uses_the_same_code(airflow_db: Path, tree: dict[str, object],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = Path(str(tree["base"]))
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__OUTPUT_BASE", str(base))
    spec = importlib.util.spec_from_file_location("example_notebook_retention",
                                                  REPO / "example_dags" / "example_notebook_retention.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = files_under(base)
    dry = run_dag(module.dag, run_conf={"older_than": "30d", "dry_run": True})
    assert dry["clean_outputs"].state == "success"
    assert dry["clean_outputs"].xcom["return_value"]["dry_run"] is True and files_under(base) == before
    res = run_dag(module.dag, run_conf={"older_than": "30d", "keep_failed": False, "dry_run": False})
    summary = res["clean_outputs"].xcom["return_value"]
    assert res["clean_outputs"].state == "success"
    assert summary["tombstones"] == int(str(tree["old_attempts"])) + 1
    after = files_under(base)
    assert summary["bytes"] == sum(size for p, size in before.items() if p not in after)
    assert len([p for p in base.rglob("attempt-*.ipynb")]) == tree["new_attempts"]


def _attempt(folder: Path, days: float, n: int = 1, location: str | None = None) -> tuple[Path, Path]:
    """An attempt as a task leaves it: ``attempt-<n>.ipynb`` and its record (pointing at ``location``)."""
    folder.mkdir(parents=True, exist_ok=True)
    notebook, record = folder / f"attempt-{n}.ipynb", folder / f"attempt-{n}.record.json"
    notebook.write_bytes(_notebook(False))
    record.write_text(json.dumps({"location": location or str(notebook), "try_number": n}))
    for p in (notebook, record):
        _age(p, days)
    return notebook, record


def test_a_folder_swapped_for_a_link_between_check_and_delete_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The race of a writer of output_base who swaps an attempt's folder for a link to another folder after clean
    checked the path and before it deletes: ``clean`` must not delete (or write) anything through that link.

    The swap cannot be timed for real between two system calls, so it is injected at that moment: right after
    ``retention._inside`` (the check before each removal) says yes. Entry point: the CLI's own ``main``."""
    from airflow_notebook_provider import cli

    base, outside = tmp_path / "outputs", tmp_path / "elsewhere"
    folder = base / "dag_a" / "manual__1" / "task"
    notebook, _ = _attempt(folder, 60)
    precious = outside / "attempt-1.ipynb"  # what the link will point at: same name, outside output_base
    outside.mkdir()
    precious.write_text("precious")
    outside_before = sorted(p.name for p in outside.iterdir())
    check = retention._inside
    swapped: list[Path] = []

    def check_then_swap(root: Path, path: Path) -> bool:
        answer = check(root, path)
        if path == notebook and not swapped:
            folder.rename(folder.with_name("task.moved"))
            folder.symlink_to(outside, target_is_directory=True)
            swapped.append(path)
        return answer

    monkeypatch.setattr(retention, "_inside", check_then_swap)
    code = cli.main(["clean", "--older-than", "30d", "--output-base", str(base), "--json"])
    assert swapped, "the check before removal was never reached"
    assert code == 0, capsys.readouterr().err
    assert precious.read_text() == "precious"
    assert sorted(p.name for p in outside.iterdir()) == outside_before  # nothing deleted or written out there
    assert folder.is_symlink()  # the link itself is left alone: only what clean found in its walk is removed


def test_a_linked_folder_inside_output_base_is_never_followed(tmp_path: Path) -> None:
    """Links to folders outside output_base, at every place clean looks: as a run folder, as an attempt's folder
    of collected files, and in the middle of a record's location. Only the links go; nothing behind them."""
    base, outside = tmp_path / "outputs", tmp_path / "elsewhere"
    _attempt(outside / "task", 60)  # an attempt-shaped folder outside, old enough to go if it were inside
    (outside / "custom.ipynb").write_bytes(_notebook(False))
    _age(outside / "custom.ipynb", 60)
    outside_before = files_under(outside)
    (base / "dag_a").mkdir(parents=True)
    (base / "dag_a" / "linked_run").symlink_to(outside, target_is_directory=True)
    folder = base / "dag_a" / "manual__1" / "task"
    _attempt(folder, 60)
    (folder / "attempt-1").symlink_to(outside / "task", target_is_directory=True)  # "collected files"
    _attempt(base / "dag_b" / "manual__1" / "task", 60,
             location=str(base / "dag_a" / "linked_run" / "custom.ipynb"))  # a record through the link
    for link in (base / "dag_a" / "linked_run", folder / "attempt-1"):
        _age(link, 60)

    proc = cli("clean", "--older-than", "30d", "--output-base", str(base), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert files_under(outside) == outside_before
    removed = {Path(r["path"]): r["kind"] for r in report["removed"]}
    assert removed[folder / "attempt-1"] == "link" and removed[base / "dag_a" / "linked_run"] == "link"
    assert not any(str(p).startswith(str(outside)) or "linked_run/" in str(p) for p in removed)


def test_a_crafted_record_cannot_remove_another_attempts_tombstone(tmp_path: Path) -> None:
    """Records only ever name notebooks: one pointing at another DAG's record (here a tombstone) or at another
    attempt's notebook claims nothing, and tombstones are never removed."""
    base = tmp_path / "outputs"
    victim_nb, victim = _attempt(base / "dag_victim" / "manual__1" / "task", 60)
    first = cli("clean", "--older-than", "30d", "--output-base", str(base))
    assert first.returncode == 0 and not victim_nb.exists()
    tombstone = victim.read_text()
    assert retention.removal_note(json.loads(tombstone))
    _age(victim, 60)
    other_nb, _ = _attempt(base / "dag_other" / "manual__1" / "task", 2)  # a recent attempt of another DAG
    _attempt(base / "dag_evil" / "manual__1" / "grab", 60, location=str(victim))
    _attempt(base / "dag_evil" / "manual__1" / "grab2", 60, location=str(other_nb))

    proc = cli("clean", "--older-than", "30d", "--output-base", str(base), "--json")
    assert proc.returncode == 0, proc.stderr
    removed = [r["path"] for r in json.loads(proc.stdout)["removed"]]
    assert victim.exists() and victim.read_text() == tombstone, removed
    assert other_nb.exists()
    assert sorted(Path(p).name for p in removed) == ["attempt-1.ipynb", "attempt-1.ipynb"]  # the evil ones' own


def test_the_dry_run_counts_the_folders_the_real_run_removes(tree: dict[str, object]) -> None:
    """``--dry-run --json`` says what the real run then does, folders left empty included."""
    base = Path(str(tree["base"]))
    adhoc = base / "adhoc" / "2024" / "january"
    adhoc.mkdir(parents=True)
    (adhoc / "run.ipynb").write_bytes(_notebook(False))
    _age(adhoc / "run.ipynb", 60)
    dry = cli("clean", "--older-than", "30d", "--dry-run", "--output-base", str(base), "--json")
    said = cli("clean", "--older-than", "30d", "--dry-run", "--output-base", str(base)).stdout.splitlines()[-1]
    real = cli("clean", "--older-than", "30d", "--output-base", str(base), "--json")
    assert dry.returncode == real.returncode == 0, dry.stderr + real.stderr
    assert "; 4 empty folders would be removed (" in said, said
    dry_report, real_report = json.loads(dry.stdout), json.loads(real.stdout)
    assert real_report["folders_removed"] == 4  # adhoc/2024/january, adhoc/2024, adhoc and reports/
    assert not (base / "adhoc").exists() and not (base / "reports").exists()
    for key in ("removed", "entries", "bytes", "tombstones", "kept_failed", "folders_removed"):
        assert dry_report[key] == real_report[key], key
