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

Safety: ``output_base`` is resolved and opened once; nothing is followed out of it. Every entry is read, removed
or rewritten through folder descriptors opened from it with ``O_NOFOLLOW`` (``retention_fs``), so a folder swapped
for a link after the walk stops the removal instead of redirecting it. Symbolic links are removed as links (their
targets are never read, listed or deleted). A record claims only a notebook (a regular ``.ipynb`` file under
``output_base`` that belongs to no attempt), never another attempt's files or record; a record pointing elsewhere
has only the record rewritten. Records (tombstones) are never removed. Local ``output_base`` only: for object
storage, a bucket lifecycle rule does this job better.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_notebook_provider.engine.storage import is_url, local_path
from airflow_notebook_provider.maintenance.retention_fs import OutputBase

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
            text += f"; {self.folders_removed} empty folders {'would be ' if self.dry_run else ''}removed"
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
    given = Path(os.path.abspath(local_path(base_text)))
    root = Path(os.path.realpath(given))
    if not root.is_dir():
        raise RetentionError(f"output_base {base_text} is not a folder: check [notebook] output_base or pass "
                             "--output-base.")
    if older_than.total_seconds() <= 0:
        raise RetentionError("older_than must be a positive duration, e.g. 30d.")
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    result = CleanResult(root, older_than, dry_run)
    base = OutputBase(root, given)
    try:
        groups, others = _groups(base)
        claimed = _attach_recorded_notebooks(base, groups, others)
        gone: set[Path] = set()
        for group in groups:
            if group.record is None and any(e in claimed for e in group.entries):
                continue  # a notebook some attempt's record points to: it goes with that attempt
            if not group.entries or _newest(base, group) >= cutoff:
                continue
            if keep_failed and any(_failed(base, e) for e in group.entries if e.suffix == ".ipynb"):
                result.kept_failed += 1
                continue
            for entry in group.entries:
                removal = _remove(base, entry, dry_run)
                if removal is not None:
                    result.removed.append(removal)
                    gone.add(entry)
                    if on_remove is not None:
                        on_remove(removal)
            if group.record is not None and (dry_run or _tombstone(base, group, result, command)):
                result.tombstones += 1
        result.folders_removed = _remove_empty_folders(base, gone, dry_run)
    finally:
        base.close()
    result.seconds = time.monotonic() - started
    return result


def _groups(base: OutputBase) -> tuple[list[_Group], dict[Path, _Group]]:
    """Walk ``output_base`` (``os.fwalk``: by descriptor, no link followed); one group per attempt (per folder)
    and per other entry. Also the other entries that are notebooks (regular ``.ipynb`` files), by path: the only
    files a record may claim."""
    groups: list[_Group] = []
    notebooks: dict[Path, _Group] = {}
    for folder, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=base.fd, follow_symlinks=False):
        here = base.root / folder
        attempts: dict[str, _Group] = {}
        keep_walking = []
        for name in sorted(dirnames) + sorted(filenames):
            path = here / name
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            match = _ATTEMPT.match(name)
            if match:
                group = attempts.setdefault(match.group(1), _Group())
                if name.endswith(RECORD_SUFFIX) and not stat.S_ISDIR(mode):
                    group.record = path
                else:
                    group.entries.append(path)  # a folder of collected files goes whole
            elif stat.S_ISDIR(mode):
                keep_walking.append(name)
            else:
                groups.append(_Group([path]))  # a file or a link
                if stat.S_ISREG(mode) and name.endswith(".ipynb"):
                    notebooks[path] = groups[-1]
        dirnames[:] = keep_walking
        groups.extend(attempts.values())
    return groups, notebooks


def _read_json(base: OutputBase, path: Path) -> Any:
    data = base.read(path)
    try:
        return None if data is None else json.loads(data)
    except ValueError:
        return None


def _inside(root: Path, path: Path) -> bool:
    """True when ``path`` lies lexically under ``root`` (no ``..``). The check before each removal; the removal
    itself then walks down from ``output_base``'s descriptor, never through a link."""
    return path == Path(os.path.normpath(path)) and root in path.parents


def _attach_recorded_notebooks(base: OutputBase, groups: list[_Group], notebooks: dict[Path, _Group]) -> set[Path]:
    """Add to each attempt the notebook its record points to when that lies elsewhere under ``output_base``.

    Records only ever name notebooks: the target must be a regular ``.ipynb`` file the walk found that belongs to
    no attempt (a custom ``output_notebook``), so a crafted record cannot claim another attempt's files, its
    record (a tombstone) included."""
    claimed: set[Path] = set()
    for group in groups:
        if group.record is None:
            continue
        record = _read_json(base, group.record)
        if not isinstance(record, dict) or REMOVED_KEY in record or not isinstance(record.get("location"), str):
            continue
        location = record["location"]
        target = None if is_url(location) else base.under(location)
        if target is None or target in group.entries or target in claimed or target not in notebooks:
            continue
        group.entries.append(target)
        claimed.add(target)
    return claimed


def _newest(base: OutputBase, group: _Group) -> float:
    newest = 0.0
    for entry in group.entries + ([group.record] if group.record else []):
        found = base.walk(entry, remove=False)
        if found is not None:
            newest = max(newest, found[2])
    return newest


def _failed(base: OutputBase, notebook: Path) -> bool:
    nb = _read_json(base, notebook)
    if not isinstance(nb, dict):
        return False
    return bool(((nb.get("metadata") or {}).get("papermill") or {}).get("exception"))


def _remove(base: OutputBase, path: Path, dry_run: bool) -> Removal | None:
    """Remove one entry under ``output_base``: a link as a link, a folder with what it holds (links inside
    unlinked). Never a record: tombstones stay."""
    if not _inside(base.root, path) or path.name.endswith(RECORD_SUFFIX):
        return None
    found = base.walk(path, remove=not dry_run)
    if found is None:
        return None
    st, size, _ = found
    if stat.S_ISLNK(st.st_mode):
        return Removal(path, st.st_size, "link")
    if stat.S_ISDIR(st.st_mode):
        return Removal(path, size, "folder")
    return Removal(path, st.st_size, "file")


def _tombstone(base: OutputBase, group: _Group, result: CleanResult, command: str) -> bool:
    assert group.record is not None
    record = _read_json(base, group.record)
    record = record if isinstance(record, dict) else {}
    removed = [r for r in result.removed if r.path in group.entries]
    record[REMOVED_KEY] = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "by": f"{command} --older-than {_age_text(result.older_than)}",
        "entries": [r.path.name for r in removed],
        "bytes": sum(r.bytes for r in removed),
    }
    return base.write(group.record, json.dumps(record, sort_keys=True).encode())


def _remove_empty_folders(base: OutputBase, gone: set[Path], dry_run: bool) -> int:
    """Remove the folders the run emptied, and their parents once empty, up to (not including) ``output_base``;
    the dry run counts the same folders (those whose every entry the run removes)."""
    gone = set(gone)
    emptied: list[Path] = []
    for folder in sorted({p.parent for p in gone}, key=lambda p: len(p.parts), reverse=True):
        current = folder
        while current != base.root and base.root in current.parents and current not in gone:
            try:
                names = base.listdir(current)
            except OSError:
                break
            if any(current / name not in gone for name in names):
                break
            gone.add(current)
            emptied.append(current)
            current = current.parent
    if dry_run:
        return len(emptied)
    count = 0
    for folder in emptied:  # children before parents
        try:
            with base.parent(folder) as (fd, name):
                os.rmdir(name, dir_fd=fd)
            count += 1
        except OSError:  # not empty after all (written to meanwhile), or gone
            continue
    return count


def removal_note(record: Any) -> dict[str, Any] | None:
    """The ``removed_by_retention`` note of an attempt record (parsed JSON), or None."""
    if isinstance(record, dict) and isinstance(record.get(REMOVED_KEY), dict):
        note: dict[str, Any] = record[REMOVED_KEY]
        return note
    return None
