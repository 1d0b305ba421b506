"""Where notebooks are read from and written to, without Airflow.

Local paths are written atomically (a temporary file in the same folder, then a rename), so a reader or a
crash never sees a truncated notebook. URLs go through fsspec. The Airflow hook adds connections on top.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from airflow_notebook_provider.notebook.errors import NotebookError, NotebookStorageError

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


def read_bytes(location: str) -> bytes:
    """Read a local path or an fsspec URL (used by the CLI; the operator reads through its hook)."""
    if is_url(location):
        import fsspec

        with fsspec.open(location, "rb") as fh:
            data: bytes = fh.read()
            return data
    return local_path(location).read_bytes()


def write_bytes(location: str, data: bytes) -> None:
    if is_url(location):
        import fsspec

        with fsspec.open(location, "wb") as fh:
            fh.write(data)
        return
    write_atomic(local_path(location), data)
