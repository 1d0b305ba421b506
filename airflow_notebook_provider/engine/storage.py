"""Where notebooks are read from and written to, without Airflow.

Local paths are written atomically (a temporary file in the same folder, then a rename), so a reader or a
crash never sees a truncated notebook. URLs go through fsspec. ``Storage`` is the one reader and writer; the Airflow
hook gives it connections.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from airflow_notebook_provider.notebook.errors import NotebookError, NotebookInputError, NotebookStorageError

T = TypeVar("T")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+:@-]")


def is_url(location: str) -> bool:
    """True for ``scheme://...`` locations other than ``file://``."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() != "file" and scheme.replace("+", "").isalnum()


def local_path(location: str) -> Path:
    """A local location (plain path or ``file://`` URL) as an absolute ``Path``."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    return Path(os.path.expanduser(location)).absolute()


def safe_piece(value: object) -> str:
    """One path segment that cannot climb out of its folder or name a hidden file: ``../x`` -> ``.._x``."""
    text = _UNSAFE.sub("_", str(value))
    if not text.strip("."):
        return "_" * max(len(text), 1)
    if text.startswith("."):
        text = "_" + text[1:]
    return text


def unique_piece(value: object) -> str:
    """``safe_piece``, plus a short hash of the original when cleaning changed it: ``a/b``, ``a~b`` and ``a_b`` must
    not share a folder (a later run's files would overwrite an earlier one's)."""
    text = safe_piece(value)
    if text == str(value):
        return text
    return f"{text}-{hashlib.sha256(str(value).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def current_umask() -> int:
    """This process's umask, read without changing it: the ``Umask:`` line of ``/proc/self/status`` (Linux 4.7+).

    ``os.umask`` can only set it (and return the old one), so where that line is missing the mask is set and set
    back, the only way there is: a thread creating a file in between gets mode 0o077's, never a wider one. The
    one umask reader of the package (the kernel launcher's request uses it too).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def same_location(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same notebook (local paths compared after resolving links)."""
    if is_url(a) or is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(local_path(a)) == os.path.realpath(local_path(b))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the path holds either the old bytes or all the new ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would lock out readers of a shared folder
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def retrying(
    action: Callable[[], T], *, what: str, deadline: float = 60.0, first_delay: float = 0.5, hint: str = ""
) -> T:
    """Run ``action``, retrying transient failures with exponential backoff for at most ``deadline`` seconds.

    The bound holds only if one attempt cannot hang: callers configure their client's own timeouts (the hook
    does for S3). ``hint`` (the fix) ends the error raised when the time is up.
    """
    start = time.monotonic()
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            return action()
        except (NotebookError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as exc:
            if time.monotonic() - start + delay > deadline:
                raise NotebookStorageError(
                    f"{what} failed {attempts} times in {time.monotonic() - start:.1f} s: "
                    f"{type(exc).__name__}: {str(exc).rstrip('.')}.{' ' + hint if hint else ''}"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


class _FsspecPath:
    """A URL through plain fsspec (no Airflow connection): the few path methods ``Storage`` uses."""

    def __init__(self, location: str) -> None:
        import fsspec

        self.fs, self.path = fsspec.core.url_to_fs(location)

    def read_bytes(self) -> bytes:
        data: bytes = self.fs.cat_file(self.path)
        return data

    def write_bytes(self, data: bytes) -> None:
        self.fs.pipe_file(self.path, data)

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def size(self) -> int:
        return int(self.fs.size(self.path))


@dataclass
class Storage:
    """Read, write, exists and size of a local path or a URL: the one place with the retry policy and the wording
    of storage errors, for the engine, the Airflow hook (which adds connections) and the CLI.

    Local paths are not retried (a local error does not go away by waiting) and are written atomically; URLs are
    retried with backoff for ``retry_seconds`` (``retrying``).

    :param open_url: A URL -> a path object with ``read_bytes``, ``write_bytes``, ``exists`` and ``stat()`` or
        ``size()`` (the hook gives Airflow's ``ObjectStoragePath`` with its connection; default: plain fsspec).
    :param hint: The fix that ends an error of a URL that kept failing (which connection to check).
    """

    open_url: Callable[[str], Any] = _FsspecPath
    retry_seconds: float = 60.0
    hint: str = ""

    def read(self, location: str, *, fix: str = "") -> bytes:
        """The bytes at ``location``; ``NotebookInputError`` (with ``fix``) when nothing is there."""
        if not is_url(location):
            path = local_path(location)
            try:
                return path.read_bytes()
            except FileNotFoundError:
                looked = "" if Path(location).is_absolute() else f" (looked for {path})"
                raise NotebookInputError(f"{location} does not exist.{looked}{' ' + fix if fix else ''}") from None
            except IsADirectoryError:
                raise NotebookInputError(f"{location} is a folder, not a file.{' ' + fix if fix else ''}") from None
        target = self.open_url(location)

        def read() -> bytes:
            try:
                data: bytes = target.read_bytes()
                return data
            except FileNotFoundError:
                raise NotebookInputError(f"{location} does not exist in object storage.{' ' + fix if fix else ''}") from None

        return retrying(read, what=f"Reading {location}", deadline=self.retry_seconds, hint=self.hint)

    def write(self, location: str, data: bytes, *, fix: str = "") -> None:
        """Write ``data`` at ``location`` (atomically when local); ``NotebookStorageError`` with ``fix`` if it can't."""
        if not is_url(location):
            try:
                write_atomic(local_path(location), data)
            except OSError as exc:
                raise NotebookStorageError(
                    f"Cannot write {location}: {exc.strerror or exc}.{' ' + fix if fix else ''}") from exc
            return
        target = self.open_url(location)
        retrying(lambda: target.write_bytes(data), what=f"Writing {location}", deadline=self.retry_seconds,
                 hint=self.hint)

    def exists(self, location: str) -> bool:
        if not is_url(location):
            return local_path(location).exists()
        target = self.open_url(location)
        return bool(retrying(target.exists, what=f"Checking {location}", deadline=self.retry_seconds, hint=self.hint))

    def size(self, location: str) -> int:
        """Bytes at ``location`` (``FileNotFoundError`` if nothing is there)."""
        if not is_url(location):
            return local_path(location).stat().st_size
        target = self.open_url(location)
        measure = target.size if hasattr(target, "size") and callable(target.size) else lambda: target.stat().st_size
        return int(retrying(measure, what=f"Measuring {location}", deadline=self.retry_seconds, hint=self.hint))
