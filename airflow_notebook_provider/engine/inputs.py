"""The notebook's folder travels with it: ``input_files`` (globs relative to the notebook's folder, e.g.
``["helpers/*.py", "sql/*.sql", "conf.yaml"]``) are copied into the kernel's working folder before the first cell,
so that ``import helpers`` and ``open("sql/q.sql")`` work wherever the notebook came from.

The notebook's folder is a local folder (a path, a bundle's checkout) or an object-storage prefix reached through
fsspec (the caller's storage: the hook gives its ``ObjectStoragePath``, so S3 works with the task's ``conn_id``).
Everything is checked before anything is copied, and before any cell runs: a pattern with ``..`` or an absolute
one is refused (``check_input_patterns``, at DAG parse time when the patterns are not templated), and so is a match
set larger than ``input_files_max_bytes``. What was copied (path, bytes, sha256) goes into the output notebook's
``metadata.airflow.input_files``.

A local folder is read as ``collect_files`` reads the working folder (``publish.find_files``): symbolic links are not
followed. When the kernel's working folder *is* the notebook's folder (a local notebook without ``cwd``, Jupyter's
default), the files are already there: nothing is copied, and they are recorded all the same. A kernel that runs
elsewhere (a Jupyter gateway) has no working folder here: ``input_files`` is refused before its kernel starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from airflow_notebook_provider.engine import storage
from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.engine.publish import CollectedFile, LeftOut, find_files, read_checked
from airflow_notebook_provider.notebook.errors import NotebookConfigError, NotebookInputError

DEFAULT_INPUT_MAX_BYTES = 100 * 2**20
METADATA_KEY = "input_files"
"""Under ``metadata.airflow`` of the output notebook: ``[{"path", "bytes", "sha256"}]``."""


def is_templated(value: str) -> bool:
    return "{{" in value or "{%" in value


def check_input_patterns(patterns: Any, *, skip_templated: bool = False) -> list[str]:
    """``input_files`` globs, each relative to the notebook's folder and staying inside it; ``NotebookConfigError``
    naming a pattern that is absolute, starts with ``~``, names a URL or climbs with ``..``. ``skip_templated``: at
    parse time, a pattern still holding a Jinja template is checked only once rendered."""
    if patterns is None:
        return []
    if isinstance(patterns, str):
        if skip_templated and is_templated(patterns):
            return []
        raise NotebookConfigError(f"`input_files` must be a list of glob patterns such as ['helpers/*.py'], got {patterns!r}")
    if not isinstance(patterns, Iterable):
        raise NotebookConfigError(f"`input_files` must be a list of glob patterns such as ['helpers/*.py'], got {patterns!r}")
    out: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise NotebookConfigError(f"`input_files` holds {pattern!r}; each entry is a glob pattern (a string)")
        if skip_templated and is_templated(pattern):
            continue
        if pattern.startswith(("/", "~", "\\")) or "://" in pattern or ".." in PurePosixPath(pattern.replace("\\", "/")).parts:
            raise NotebookConfigError(
                f"`input_files` pattern {pattern!r} reaches outside the notebook's folder; use a pattern relative to "
                "it, without '..' (e.g. 'helpers/*.py'), and put the files next to the notebook."
            )
        if pattern not in out:
            out.append(pattern)
    return out


@dataclass(frozen=True)
class InputFile:
    path: str
    """Relative to the notebook's folder (and to the kernel's working folder), with '/' separators."""
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


class Folder(Protocol):
    """The notebook's folder, wherever it is."""

    where: str

    def match(self, patterns: list[str], log: Log) -> dict[str, int]:
        """Relative path -> size of the regular files matching ``patterns``."""

    def read(self, path: str, size: int) -> bytes: ...


class LocalFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def match(self, patterns: list[str], log: Log) -> dict[str, int]:
        found = find_files(self.root, patterns, max_bytes=2**62)
        if found.refused:
            log.warning("input_files: %d match(es) not copied, not regular files inside %s: %s", len(found.refused),
                        self.root, "; ".join(f"{path} ({why})" for path, why in found.refused[:20]))
        return {f.path: f.size for f in found.files}

    def read(self, path: str, size: int) -> bytes:
        try:
            return read_checked(self.root, CollectedFile(path, self.root / path, size))
        except LeftOut as exc:
            raise NotebookInputError(f"input_files: {self.root / path} changed while it was read: {exc}.") from None


class RemoteFolder:
    """A prefix in object storage, through an fsspec filesystem (``ObjectStoragePath.fs``)."""

    def __init__(self, fs: Any, root: str, url: str, retry_seconds: float) -> None:
        self.fs, self.root, self.where, self.retry_seconds = fs, root.rstrip("/"), url, retry_seconds

    def match(self, patterns: list[str], log: Log) -> dict[str, int]:
        out: dict[str, int] = {}
        for pattern in patterns:
            found = storage.retrying(lambda p=pattern: self.fs.glob(f"{self.root}/{p}", detail=True),  # type: ignore[misc]
                                     what=f"Listing {self.where}/{pattern}", deadline=self.retry_seconds)
            for key, info in (found or {}).items():
                key = str(key).rstrip("/")
                if info.get("type") != "file" or not key.startswith(self.root + "/"):
                    continue
                out.setdefault(key[len(self.root) + 1:], int(info.get("size") or 0))
        return out

    def read(self, path: str, size: int) -> bytes:
        data: bytes = storage.retrying(lambda: self.fs.cat_file(f"{self.root}/{path}"),
                                       what=f"Reading {self.where}/{path}", deadline=self.retry_seconds)
        return data


def notebook_folder(input_path: str, path_of: Callable[[str], Any], retry_seconds: float = 60.0) -> Folder:
    """The folder ``input_path`` is in; ``path_of(url)`` gives an object-storage URL's path (the hook's ``path``:
    an ``ObjectStoragePath`` with ``.fs`` and ``.path``)."""
    if not storage.is_url(input_path):
        return LocalFolder(storage.local_path(input_path).parent.resolve())
    url = input_path.rsplit("/", 1)[0]
    p = path_of(url)
    return RemoteFolder(p.fs, str(p.path), url, retry_seconds)


def stage(folder: Folder, patterns: list[str], cwd: str | None, *, max_bytes: int, log: Log) -> list[InputFile]:
    """Copy the files of ``folder`` matching ``patterns`` into ``cwd`` (nothing is copied when ``cwd`` is that folder);
    ``NotebookConfigError`` before anything is copied when they are more than ``max_bytes`` in all."""
    if not patterns:
        return []
    if cwd is None:
        raise NotebookConfigError("`input_files` needs a kernel on the worker: a remote kernel's working folder is on "
                                  "its own host. Read the files from object storage in the notebook instead.")
    found = folder.match(patterns, log)
    total = sum(found.values())
    if total > max_bytes:
        largest = sorted(found.items(), key=lambda kv: -kv[1])[:5]
        raise NotebookConfigError(
            f"`input_files` matches {len(found)} file(s), {total} bytes in all, over input_files_max_bytes={max_bytes} "
            f"(largest: {', '.join(f'{p} ({n} bytes)' for p, n in largest)}); nothing was copied and no cell ran. "
            "Narrow the patterns or raise `input_files_max_bytes`."
        )
    if not found:
        log.warning("input_files: no file in %s matches %s", folder.where, ", ".join(patterns))
    dest = Path(cwd).resolve()
    copy = not (isinstance(folder, LocalFolder) and folder.root == dest)
    staged: list[InputFile] = []
    for rel in sorted(found):
        data = folder.read(rel, found[rel])
        if copy:
            target = dest / rel
            if dest not in target.resolve().parents:  # a symbolic link already in the working folder
                raise NotebookConfigError(f"input_files: {rel} would be written outside the working folder {dest}")
            storage.write_atomic(target, data)
        staged.append(InputFile(rel, len(data), hashlib.sha256(data).hexdigest()))
    log.info("input_files: %d file(s), %d bytes, %s %s", len(staged), sum(f.bytes for f in staged),
             f"copied from {folder.where} into" if copy else "already in the working folder", dest)
    return staged


def recorded(metadata: Mapping[str, Any], staged: list[InputFile]) -> dict[str, Any]:
    """``metadata`` with ``airflow.input_files`` listing what was staged."""
    if not staged:
        return dict(metadata)
    airflow = dict(metadata.get("airflow") or {})
    airflow[METADATA_KEY] = [f.to_json() for f in staged]
    return {**metadata, "airflow": airflow}


@dataclass(frozen=True)
class InputFiles:
    """What a task asked for (checked patterns, the cap), staged by ``stage_for`` once the working folder exists."""

    patterns: list[str]
    max_bytes: int = DEFAULT_INPUT_MAX_BYTES

    @classmethod
    def of(cls, patterns: Any, max_bytes: int, *, local_kernel: bool) -> InputFiles | None:
        """None when there is nothing to stage; ``NotebookConfigError`` for a wrong pattern or a remote kernel."""
        checked = check_input_patterns(patterns)
        if not checked:
            return None
        if not local_kernel:
            raise NotebookConfigError(
                "`input_files` needs a kernel on the worker: this task's kernel runs elsewhere (kernel_conn_id), whose "
                "working folder is on its own host. Read the files from object storage in the notebook, or drop "
                "`input_files`."
            )
        return cls(checked, max_bytes)

    def stage_for(self, input_path: str, cwd: str | None, path_of: Callable[[str], Any], *, log: Log,
                  retry_seconds: float = 60.0) -> list[InputFile]:
        return stage(notebook_folder(input_path, path_of, retry_seconds), self.patterns, cwd,
                     max_bytes=self.max_bytes, log=log)


__all__ = ["DEFAULT_INPUT_MAX_BYTES", "METADATA_KEY", "InputFile", "InputFiles", "check_input_patterns",
           "is_templated", "notebook_folder", "recorded", "stage"]
