"""Retention: remove what notebook tasks left under ``[notebook] output_base`` once it is older than a limit.

Used by ``airflow-notebook clean`` and the example maintenance DAG ``example_notebook_retention``; no Airflow
import (the caller says where ``output_base`` is).

What is removed, per folder, as a unit: an **attempt** is every entry named ``attempt-<n>`` or ``attempt-<n>.*``
(the notebook, its ``.record.json``, reports, a folder of collected files), plus the notebook its record points to
when that is elsewhere under ``output_base`` (a custom ``output_notebook``). An attempt goes when its newest entry
is older than the limit, whole or not at all. Any other file (``airflow-notebook run`` outputs, ...) goes on its
own age. Folders left empty are removed.

The tombstone: an attempt's ``.record.json`` is not deleted but rewritten as a few hundred bytes that keep the
location and add ``removed_by_retention`` (date, command, files, bytes), so the viewer says "removed by retention
on <date>" instead of "not found". Tombstones are never removed.

Safety: ``output_base`` is resolved once; nothing is followed out of it. Symbolic links are removed as links
(their targets are never read, listed or deleted), a record pointing outside ``output_base`` has only the record
rewritten, and every path is checked to lie under ``output_base`` before it is touched. Local ``output_base``
only: for object storage, a bucket lifecycle rule does this job better.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_notebook_provider.engine.storage import is_url, local_path, write_atomic

RECORD_SUFFIX = ".record.json"  # outputs.RECORD_SUFFIX (not imported: outputs imports Airflow)
REMOVED_KEY = "removed_by_retention"
_ATTEMPT = re.compile(r"^(attempt-\d+)(?:\..*)?$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class RetentionError(Exception):
    """Bad input to ``clean`` (an age it cannot read, an output_base that is not a local folder)."""


def parse_age(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` as a duration."""
    match = _AGE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise RetentionError(f"--older-than {text!r} is not an age: write a positive number and a unit, e.g. 30d "
                             "(days), 12h (hours), 90m (minutes), 2w (weeks), 45s (seconds).")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Removal:
    """One entry removed (or, in a dry run, that would be): a file, a symbolic link, or a folder of files."""

    path: Path
    bytes: int
    kind: str  # "file", "link", "folder"

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.bytes, "kind": self.kind}


@dataclass
class CleanResult:
    output_base: Path
    older_than: dt.timedelta
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    tombstones: int = 0
    """Attempt records rewritten (or, in a dry run, to be rewritten) as tombstones."""
    kept_failed: int = 0
    """Attempts old enough but kept by ``keep_failed``."""
    folders_removed: int = 0
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "output_base": str(self.output_base), "older_than_seconds": self.older_than.total_seconds(),
            "dry_run": self.dry_run, "removed": [r.to_json() for r in self.removed], "entries": len(self.removed),
            "bytes": self.bytes, "tombstones": self.tombstones, "kept_failed": self.kept_failed,
            "folders_removed": self.folders_removed, "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        verb = "Would free" if self.dry_run else "Freed"
        text = (f"{verb} {human_bytes(self.bytes)} ({self.bytes} bytes): {len(self.removed)} entries under "
                f"{self.output_base} older than {_age_text(self.older_than)}; {self.tombstones} attempt records "
                f"{'would be ' if self.dry_run else ''}kept as tombstones")
        if self.kept_failed:
            text += f"; {self.kept_failed} failed attempts kept (--keep-failed)"
        if self.folders_removed:
            text += f"; {self.folders_removed} empty folders removed"
        return text + f" ({self.seconds:.2f} s)."


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def _age_text(age: dt.timedelta) -> str:
    seconds = age.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


@dataclass
class _Group:
    """Entries removed together; ``record`` is the attempt's record file, kept as the tombstone."""

    entries: list[Path] = field(default_factory=list)
    record: Path | None = None


def clean(
    output_base: str | os.PathLike[str],
    older_than: dt.timedelta,
    *,
    keep_failed: bool = False,
    dry_run: bool = False,
    now: float | None = None,
    command: str = "airflow-notebook clean",
    on_remove: Callable[[Removal], None] | None = None,
) -> CleanResult:
    """Remove attempts and files under ``output_base`` whose newest entry is older than ``older_than``.

    ``on_remove`` is called for each entry as it goes (the CLI prints it, the DAG logs it).
    """
    started = time.monotonic()
    base_text = os.fspath(output_base)
    if is_url(base_text):
        raise RetentionError(f"output_base {base_text} is object storage: clean removes local files only. Use a "
                             "lifecycle rule on the bucket (e.g. S3 expiration after 30 days) instead.")
    root = Path(os.path.realpath(local_path(base_text)))
    if not root.is_dir():
        raise RetentionError(f"output_base {base_text} is not a folder: check [notebook] output_base or pass "
                             "--output-base.")
    if older_than.total_seconds() <= 0:
        raise RetentionError("older_than must be a positive duration, e.g. 30d.")
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    result = CleanResult(root, older_than, dry_run)
    groups = _groups(root)
    claimed = _attach_recorded_notebooks(root, groups)
    removed_in: set[Path] = set()
    for group in groups:
        if group.record is None and any(e in claimed for e in group.entries):
            continue  # a notebook some attempt's record points to: it goes with that attempt
        if not group.entries or _newest(group) >= cutoff:
            continue
        if keep_failed and any(_failed(e) for e in group.entries if e.suffix == ".ipynb"):
            result.kept_failed += 1
            continue
        for entry in group.entries:
            removal = _remove(root, entry, dry_run)
            if removal is not None:
                result.removed.append(removal)
                removed_in.add(entry.parent)
                if on_remove is not None:
                    on_remove(removal)
        if group.record is not None:
            result.tombstones += 1
            if not dry_run:
                _tombstone(group, result, command)
    if not dry_run:
        result.folders_removed = _remove_empty_folders(root, removed_in)
    result.seconds = time.monotonic() - started
    return result


def _groups(root: Path) -> list[_Group]:
    """Walk ``root`` without following links; one group per attempt (per folder) and per other entry."""
    groups: list[_Group] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(folder)
        attempts: dict[str, _Group] = {}
        keep_walking = []
        for name in sorted(dirnames) + sorted(filenames):
            path = here / name
            is_dir = name in dirnames and not path.is_symlink()
            match = _ATTEMPT.match(name)
            if match:
                group = attempts.setdefault(match.group(1), _Group())
                if name.endswith(RECORD_SUFFIX) and not is_dir:
                    group.record = path
                else:
                    group.entries.append(path)  # a folder of collected files goes whole
            elif is_dir:
                keep_walking.append(name)
            else:
                groups.append(_Group([path]))  # a file or a link
        dirnames[:] = keep_walking
        groups.extend(attempts.values())
    return groups


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _inside(root: Path, path: Path) -> bool:
    """True when ``path`` (its folder resolved, the last part not followed) lies under ``root``."""
    parent = Path(os.path.realpath(path.parent))
    return parent == root or root in parent.parents


def _attach_recorded_notebooks(root: Path, groups: list[_Group]) -> set[Path]:
    """Add to each attempt the notebook its record points to when that lies elsewhere under ``root``."""
    claimed: set[Path] = set()
    for group in groups:
        if group.record is None:
            continue
        record = _read_json(group.record)
        if not isinstance(record, dict) or REMOVED_KEY in record or not isinstance(record.get("location"), str):
            continue
        location = record["location"]
        if is_url(location):
            continue
        target = Path(os.path.abspath(local_path(location)))
        if target in group.entries or not _inside(root, target) or target.is_symlink() or not target.is_file():
            continue
        group.entries.append(target)
        claimed.add(target)
    return claimed


def _lstat_tree(path: Path) -> Iterator[os.stat_result]:
    st = path.lstat()
    yield st
    if stat.S_ISDIR(st.st_mode):
        for folder, dirnames, filenames in os.walk(path, followlinks=False):
            for name in dirnames + filenames:
                try:
                    yield (Path(folder) / name).lstat()
                except FileNotFoundError:
                    continue


def _newest(group: _Group) -> float:
    newest = 0.0
    for entry in group.entries + ([group.record] if group.record else []):
        try:
            newest = max([newest, *(s.st_mtime for s in _lstat_tree(entry))])
        except FileNotFoundError:
            continue
    return newest


def _failed(notebook: Path) -> bool:
    nb = _read_json(notebook)
    if not isinstance(nb, dict):
        return False
    return bool(((nb.get("metadata") or {}).get("papermill") or {}).get("exception"))


def _remove(root: Path, path: Path, dry_run: bool) -> Removal | None:
    """Remove one entry under ``root``: a link as a link, a folder with what it holds (links inside unlinked)."""
    if not _inside(root, path):
        return None
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        kind, size = "link", st.st_size
    elif stat.S_ISDIR(st.st_mode):
        kind, size = "folder", sum(s.st_size for s in _lstat_tree(path) if not stat.S_ISDIR(s.st_mode))
    else:
        kind, size = "file", st.st_size
    if not dry_run:
        if kind == "folder":
            shutil.rmtree(path)  # never follows links: a link inside is unlinked, its target untouched
        else:
            path.unlink(missing_ok=True)
    return Removal(path, size, kind)


def _tombstone(group: _Group, result: CleanResult, command: str) -> None:
    assert group.record is not None
    record = _read_json(group.record)
    record = record if isinstance(record, dict) else {}
    removed = [r for r in result.removed if r.path in group.entries]
    record[REMOVED_KEY] = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "by": f"{command} --older-than {_age_text(result.older_than)}",
        "entries": [r.path.name for r in removed],
        "bytes": sum(r.bytes for r in removed),
    }
    write_atomic(group.record, json.dumps(record, sort_keys=True).encode())


def _remove_empty_folders(root: Path, touched: set[Path]) -> int:
    """Remove folders the run emptied, and their parents once empty, up to (not including) ``root``."""
    count = 0
    for folder in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        current = folder
        while current != root and root in current.parents:
            try:
                current.rmdir()
            except OSError:  # not empty, or gone
                break
            count += 1
            current = current.parent
    return count


def removal_note(record: Any) -> dict[str, Any] | None:
    """The ``removed_by_retention`` note of an attempt record (parsed JSON), or None."""
    if isinstance(record, dict) and isinstance(record.get(REMOVED_KEY), dict):
        note: dict[str, Any] = record[REMOVED_KEY]
        return note
    return None
