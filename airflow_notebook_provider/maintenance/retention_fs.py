"""``output_base`` as retention reaches it: by folder descriptors, never through a symbolic link.

Checking that a path lies under ``output_base`` and then deleting it by that path leaves a gap: a writer of
``output_base`` could swap a folder on the way for a link in between, and the deletion would follow it. So every
entry is reached from ``output_base``'s descriptor, opened once, one folder at a time, each opened with
``O_NOFOLLOW`` (``os.open(..., dir_fd=...)``), and removed with ``os.unlink``/``os.rmdir(name, dir_fd=...)``: a
link met on the way stops the walk, a link at the end is removed as a link. Linux and other POSIX systems.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from airflow_notebook_provider.engine.storage import local_path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)
"""A folder on the way is missing, or is now a link or a file: the entry is left alone."""


class OutputBase:
    """``output_base``, opened once: every entry below it is reached from this descriptor one folder at a time,
    each opened with ``O_NOFOLLOW``, so no link (even one swapped in for a folder after the walk) is followed."""

    def __init__(self, root: Path, given: Path) -> None:
        self.root, self.given = root, given
        self.fd = os.open(root, _DIR_FLAGS)

    def close(self) -> None:
        os.close(self.fd)

    def under(self, location: str) -> Path | None:
        """The path under ``root`` a recorded location names (lexically: under the resolved or the configured
        ``output_base``), or None."""
        target = Path(os.path.abspath(local_path(location)))
        for prefix in (self.root, self.given):
            if prefix in target.parents:
                return self.root / target.relative_to(prefix)
        return None

    @contextlib.contextmanager
    def parent(self, path: Path) -> Iterator[tuple[int, str]]:
        """(descriptor of the folder holding ``path``, its name). ``OSError`` with an errno in ``GONE`` when a
        folder on the way is missing or is not a real folder (a link is never followed)."""
        parts = path.relative_to(self.root).parts
        fd = os.dup(self.fd)
        try:
            for part in parts[:-1]:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def listdir(self, path: Path) -> list[str]:
        """The names in folder ``path`` (reached without links)."""
        with self.parent(path) as (folder, name):
            fd = os.open(name, _DIR_FLAGS, dir_fd=folder)
            try:
                return os.listdir(fd)
            finally:
                os.close(fd)

    def read(self, path: Path) -> bytes | None:
        """The bytes of a regular file (never through a link, never a FIFO), or None."""
        try:
            with self.parent(path) as (folder, name):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
                with os.fdopen(fd, "rb") as fh:
                    return fh.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except OSError:
            return None

    def write(self, path: Path, data: bytes) -> bool:
        """Replace ``path`` with ``data`` atomically, in its folder reached without links; False if it is gone."""
        try:
            with self.parent(path) as (folder, name):
                tmp = f".{name}.{secrets.token_hex(6)}.tmp"
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(tmp, flags, 0o666, dir_fd=folder)  # the umask applies, as to any file written
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(data)
                    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=folder)
                    raise
            return True
        except OSError as exc:
            if exc.errno in GONE:
                return False
            raise

    def walk(self, path: Path, remove: bool) -> tuple[os.stat_result, int, float] | None:
        """(lstat of ``path``, bytes of the files it holds when a folder, newest mtime of all), removing it all
        with ``remove``; None when it is gone. A link is a link: its target is never read."""
        try:
            with self.parent(path) as (folder, name):
                st = os.stat(name, dir_fd=folder, follow_symlinks=False)
                size, newest = 0, st.st_mtime
                if stat.S_ISDIR(st.st_mode):
                    size, newest = _folder_at(folder, name, remove)
                elif remove:
                    os.unlink(name, dir_fd=folder)
                return st, size, newest
        except OSError as exc:
            if exc.errno in GONE:
                return None
            raise


def _folder_at(parent: int, name: str, remove: bool) -> tuple[int, float]:
    """(bytes of the files under folder ``name`` of ``parent``, newest mtime), every folder opened with
    ``O_NOFOLLOW`` from its parent's descriptor; with ``remove``, the files are unlinked and the folders removed.
    Iterative: a deep tree cannot exhaust the stack."""
    size, newest = 0, 0.0
    stack: list[tuple[int, int, str, list[os.DirEntry[str]]]] = []

    def enter(at: int, folder: str) -> None:
        nonlocal newest
        fd = os.open(folder, _DIR_FLAGS, dir_fd=at)
        try:
            newest = max(newest, os.fstat(fd).st_mtime)
            with os.scandir(fd) as it:
                stack.append((fd, at, folder, list(it)))
        except BaseException:
            os.close(fd)
            raise

    try:
        enter(parent, name)
        while stack:
            fd, at, folder, entries = stack[-1]
            if not entries:
                stack.pop()
                os.close(fd)
                if remove:
                    with contextlib.suppress(FileNotFoundError):
                        os.rmdir(folder, dir_fd=at)
                continue
            entry = entries.pop()
            try:
                if entry.is_dir(follow_symlinks=False):
                    try:
                        enter(fd, entry.name)
                        continue
                    except OSError as exc:  # swapped for a link or a file since listed: unlinked as one
                        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                            raise
                st = os.stat(entry.name, dir_fd=fd, follow_symlinks=False)
                size, newest = size + st.st_size, max(newest, st.st_mtime)
                if remove:
                    os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                continue
    finally:
        for fd, *_ in stack:
            os.close(fd)
    return size, newest
