"""What the api-server (and ``airflow-notebook pull``) may read when a record names a location: regular files under
``[notebook] output_base`` or ``[notebook] viewer_allowed_locations``, through the connection the task's operator
names, in bounded time and memory.

A recorded location is data a task (or a user allowed to write the DAG's XComs) wrote, not a trusted path. Every
read of one goes through ``resolve`` (decided on the text alone, then on the path with its symbolic links
resolved, before anything at the location is opened, so that the answer for a location outside the allowed ones
is the same whatever is there) and ``open_checked`` (regular files only: no device, FIFO, socket or folder).
Object stores are read with a read timeout and few retries, so a slow store cannot hold a request forever.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_notebook_provider import config
from airflow_notebook_provider.engine.storage import is_url
from airflow_notebook_provider.notebook.errors import NotebookConfigError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
RECORD_MAX_BYTES = 1024 * 1024  # an attempt record (or its tombstone) is a few hundred bytes


class NotAllowed(Exception):
    """The location is outside the allowed ones (or not an absolute path or a bucket URL): not read, not looked at."""


class NotRegular(Exception):
    """The location is allowed but holds something other than a regular file (device, FIFO, socket, folder)."""


class Missing(Exception):
    """Nothing at the (allowed) location."""


class Unreachable(Exception):
    """The store did not answer in time or failed; the message says what failed."""


# -- allowed locations ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """One allowed location: a local folder (resolved) or ``scheme://bucket/prefix`` (``conn`` from ``conn@bucket``)."""

    scheme: str  # "" for local
    bucket: str
    prefix: str  # local: the resolved absolute folder; URL: the key prefix without slashes at either end
    conn_id: str | None = None
    text: str = ""  # local: the folder as configured (normalized), for the check before resolving links

    def describe(self) -> str:
        return self.prefix if not self.scheme else f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class Target:
    """A location checked by ``resolve``: where to read it and with which connection."""

    location: str
    """As recorded (shown on pages)."""
    scheme: str  # "" for local
    path: str
    """Local: the resolved absolute path. URL: ``bucket/key`` as fsspec names it."""
    conn_id: str | None

    @property
    def is_local(self) -> bool:
        return not self.scheme


def _split_url(location: str) -> tuple[str, str | None, str, str]:
    """``s3://conn@bucket/a/b`` -> ("s3", "conn", "bucket", "a/b"); raises NotAllowed for what is not one."""
    parts = urlsplit(location)
    if parts.query or parts.fragment or "\\" in location or "\x00" in location:
        raise NotAllowed(location)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not host or ":" in host:
        raise NotAllowed(location)
    return parts.scheme.lower(), (userinfo or None) if at else None, host, parts.path.lstrip("/")


def _clean_key(key: str, location: str) -> str:
    """A key with no ``..``, ``.`` or empty segment (object stores do not normalize: ``a/../b`` is a key)."""
    segments = key.split("/")
    if any(s in ("", ".", "..") for s in segments[:-1]) or segments[-1] in (".", ".."):
        raise NotAllowed(location)
    return key


def _local_text(location: str) -> str:
    """The path of a local location, refused unless absolute (no ``~``, no relative path, no NUL)."""
    text = location[len("file://"):] if location.startswith("file://") else location
    if not text.startswith("/") or "\x00" in text:
        raise NotAllowed(location)
    return posixpath.normpath(text)


def allowed_roots() -> list[Root]:
    """``[notebook] output_base`` (its default included) and each entry of ``viewer_allowed_locations``."""
    from airflow_notebook_provider.task.outputs import output_base

    entries = [output_base()]
    entries += config.get_list("viewer_allowed_locations")
    roots = []
    for entry in entries:
        try:
            if is_url(entry):
                scheme, conn_id, bucket, prefix = _split_url(entry)
                prefix = prefix.strip("/")
                if prefix:
                    _clean_key(prefix, entry)
                roots.append(Root(scheme, bucket, prefix, conn_id))
            else:
                text = _local_text(entry)
                roots.append(Root("", "", os.path.realpath(text), text=text))
        except NotAllowed:
            log.warning("Ignoring %r in [notebook] output_base / viewer_allowed_locations: write an absolute folder "
                        "or a URL with a bucket, e.g. /data/notebooks or s3://bucket/prefix.", entry)
    return roots


def _under(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it, on a segment boundary (``/a/bc`` is not under ``/a/b``)."""
    if not root:
        return False
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def resolve(location: str, task_conn_id: str | None) -> Target:
    """Where ``location`` may be read, or ``NotAllowed``: the same answer whatever is (or is not) at it.

    Local locations are checked on their text first (absolute, normalized, under a root), then again after
    resolving symbolic links (``realpath``): a link out of ``output_base`` is refused like any outside path. URLs
    must name the same scheme and bucket as a root and a key under its prefix, with no ``..`` segment. The
    connection is ``task_conn_id`` (the one the task's operator names), else the one an allowed root names
    (``s3://conn@bucket/...`` in the configuration), never one written into the location.
    """
    roots = allowed_roots()
    if is_url(location):
        scheme, _recorded_conn, bucket, key = _split_url(location)
        _clean_key(key, location)
        for root in roots:
            if root.scheme == scheme and root.bucket == bucket and (
                    not root.prefix or key == root.prefix or key.startswith(root.prefix + "/")):
                if key.endswith("/") or not key:
                    raise NotAllowed(location)
                return Target(location, scheme, f"{bucket}/{key}", task_conn_id or root.conn_id)
        raise NotAllowed(location)
    if location.startswith("~") or (":" in location.split("/", 1)[0] and not location.startswith("file://")):
        raise NotAllowed(location)
    text = _local_text(location)
    local_roots = [r.prefix for r in roots if not r.scheme]
    if not any(_under(text, r.prefix) or _under(text, r.text) for r in roots if not r.scheme):
        raise NotAllowed(location)  # decided on the text: nothing at the location is touched
    real = os.path.realpath(text)
    if not any(_under(real, r) for r in local_roots):
        raise NotAllowed(location)
    return Target(location, "", real, None)


# -- object stores with timeouts ------------------------------------------------------------------------------


def limit_setting(name: str, *, zero_allowed: bool = False) -> float:
    """``[notebook] <name>``, a limit of the viewer: a value that is not a number, or is negative (or zero unless
    ``zero_allowed``), gives the declared default (logged), so a typo in the configuration never lifts a limit
    nor fails the viewer's pages."""
    default = float(config.option(name).default)
    try:
        value = config.get_float(name)
    except NotebookConfigError as exc:
        log.warning("%s The viewer uses the default meanwhile.", exc)
        return default
    return value if value > 0 or (zero_allowed and value == 0) else default


def read_timeout() -> float:
    """``[notebook] viewer_read_timeout``: seconds one object-store request may take (connect, then each read)."""
    return limit_setting("viewer_read_timeout")


_fs_cache: dict[tuple[str, str | None, float], tuple[float, Any]] = {}
_fs_lock = threading.Lock()
FS_CACHE_SECONDS = 300.0  # a changed connection is picked up within five minutes


def filesystem(scheme: str, conn_id: str | None) -> Any:
    """An fsspec filesystem for ``scheme`` through Airflow's connection ``conn_id``, for reading with bounded time.

    S3 gets botocore's ``connect_timeout`` / ``read_timeout`` (``viewer_read_timeout``) and two attempts per request
    through the storage options Airflow's S3 filesystem factory merges into the client config, and s3fs's own
    retry loop is cut to one attempt: the caller retries within ``lookup.READ_RETRY_SECONDS``. This is the
    viewer's own instance, not the one Airflow caches for tasks (``attach``), so tasks keep their settings.
    """
    from airflow.sdk.io import get_fs

    timeout = read_timeout()
    key = (scheme, conn_id, timeout)
    now = time.monotonic()
    with _fs_lock:
        cached = _fs_cache.get(key)
        if cached is not None and now - cached[0] < FS_CACHE_SECONDS:
            return cached[1]
    options: dict[str, Any] | None = None
    if scheme in ("s3", "s3a"):
        options = {"connect_timeout": timeout, "read_timeout": timeout,
                   "retries": {"max_attempts": 2, "mode": "standard"}}
    fs = get_fs(scheme, conn_id, options) if options else get_fs(scheme, conn_id)
    if hasattr(fs, "retries"):
        fs.retries = 1
    with _fs_lock:
        _fs_cache[key] = (now, fs)
    return fs


# -- opening --------------------------------------------------------------------------------------------------


@dataclass
class Opened:
    """An open regular file (local or object store) and its size; ``identity`` tells one version of it from another."""

    target: Target
    file: Any
    """A binary file object (``read``, ``seek``, ``close``)."""
    size: int
    identity: tuple[Any, ...]

    def close(self) -> None:
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - closing a half-read remote file must not mask the answer
            pass

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The file from its current position, ``size`` bytes at a time, then closed."""
        try:
            while True:
                block = self.file.read(size)
                if not block:
                    return
                yield block
        finally:
            self.close()

    def read_all(self) -> bytes:
        try:
            data: bytes = self.file.read()
            return data
        finally:
            self.close()


def _open_local(target: Target) -> Opened:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target.path, flags)
    except FileNotFoundError:
        raise Missing(target.location) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link appeared after resolving: not followed
            raise NotAllowed(target.location) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENOTDIR):  # a socket, a folder
            raise NotRegular(target.location) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(target.location)
        proc = f"/proc/self/fd/{fd}"
        if os.path.exists(proc) and os.readlink(proc).removesuffix(" (deleted)") != target.path:
            raise NotAllowed(target.location)  # a folder on the way was swapped for a link after resolving
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb", buffering=CHUNK)
    except BaseException:
        os.close(fd)
        raise
    return Opened(target, handle, st.st_size, ("local", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def _open_remote(target: Target, deadline: float) -> Opened:
    from airflow_notebook_provider.engine.storage import retrying

    fs = filesystem(target.scheme, target.conn_id)

    def info() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = fs.info(target.path)
            return found
        except FileNotFoundError:
            return None

    try:
        details = retrying(info, what=f"Reading {target.location}", deadline=deadline, first_delay=0.2)
        if details is None:
            raise Missing(target.location)
        if details.get("type") != "file":
            raise NotRegular(target.location)
        size = int(details.get("size") or 0)
        handle = retrying(lambda: fs.open(target.path, "rb", block_size=CHUNK), what=f"Opening {target.location}",
                          deadline=deadline, first_delay=0.2)
    except (Missing, NotRegular):
        raise
    except Exception as exc:  # noqa: BLE001 - any store failure is "unreachable", with what failed
        raise Unreachable(str(exc)) from None
    version = details.get("ETag") or details.get("etag") or details.get("LastModified") or details.get("mtime")
    return Opened(target, _TimedRemote(handle, target.location), size, ("remote", target.path, size, str(version)))


class _TimedRemote:
    """A remote file whose read errors say which location failed (each read is bounded by the client timeouts)."""

    def __init__(self, handle: Any, location: str) -> None:
        self._handle, self._location = handle, location

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._handle.read(size)
            return data
        except Exception as exc:  # noqa: BLE001
            raise Unreachable(f"reading {self._location} failed: {exc}") from None

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._handle.seek(offset, whence)
        return position

    def close(self) -> None:
        self._handle.close()


def open_checked(target: Target, deadline: float) -> Opened:
    """Open a resolved location if it holds a regular file; ``Missing``, ``NotRegular``, ``Unreachable`` else."""
    if target.is_local:
        return _open_local(target)
    return _open_remote(target, deadline)


def max_bytes() -> int:
    """``[notebook] viewer_max_bytes``: the largest notebook the viewer renders (larger ones are downloaded)."""
    return int(limit_setting("viewer_max_bytes"))


def read_small(location: str, task_conn_id: str | None, limit: int, deadline: float) -> bytes:
    """The whole of a small file (a record) at an allowed location; ``NotRegular`` if it is larger than ``limit``."""
    opened = open_checked(resolve(location, task_conn_id), deadline)
    if opened.size > limit:
        opened.close()
        raise NotRegular(location)
    return opened.read_all()[: limit + 1]
