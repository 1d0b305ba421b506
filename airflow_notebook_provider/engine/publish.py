"""What a run publishes beside its output notebook: rendered reports and the files the notebook wrote.

Both are made when the run ends (success or failure), from the finished notebook, just before its last write, so
that the notebook lists them (``metadata.airflow.reports`` / ``files``). Storage is the caller's: this module
renders bytes and finds files; ``Publisher.save`` writes each one where the caller says.

Reports are nbconvert's, made safe to open from a shared location (``safe_report``): HTML from the ``basic``
template (nbconvert's ``lab`` and ``classic`` templates carry ``<script>`` tags), sanitized with an allow-list, inside
a page of ours whose Content-Security-Policy forbids every script and every load; Markdown with its HTML sanitized
the same way; PDF printed from the HTML report by a Chromium that reaches no network. ``report_mode`` follows
papermill: every cell's source is marked ``jupyter.source_hidden``, and the report leaves out code inputs and the
injected-parameters cell, keeping outputs, markdown and the error banner.

Collected files are opened without following a symbolic link, and read only if what was opened is a regular file,
up to the size it had when it was checked: a name swapped for a FIFO or a link to ``/dev/zero`` cannot hang or
exhaust the task.
"""

from __future__ import annotations

import base64
import errno
import functools
import html
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from nbformat import NotebookNode

from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.engine.safe_report import clean_html, clean_markdown, clean_notebook, print_pdf
from airflow_notebook_provider.engine.settings import DEFAULT_COLLECT_MAX_BYTES
from airflow_notebook_provider.notebook.errors import NotebookConfigError

REPORT_FORMATS: Mapping[str, str] = {"html": ".html", "markdown": ".md", "pdf": ".pdf"}
"""Report format -> file extension. ``pdf`` is printed from the HTML report by a local Chromium (Playwright):
LaTeX is not needed, and no browser is ever downloaded."""
CHROMIUM = os.environ.get("NOTEBOOK_REPORT_CHROMIUM", "/usr/bin/chromium")
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; base-uri 'none'; form-action 'none'"
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.prompt { display: none; } pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }
.output_error pre, .output_stderr pre { background: #fdecec; } img { max-width: 100%; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2rem .4rem; }
"""


def check_formats(formats: Any) -> list[str]:
    """The requested report formats, each known; ``NotebookConfigError`` naming a wrong one and the choices."""
    if formats is None:
        return []
    if isinstance(formats, str) or not isinstance(formats, Iterable):
        raise NotebookConfigError(f"`report_formats` must be a list such as ['html'], got {formats!r}")
    out = []
    for fmt in formats:
        if fmt not in REPORT_FORMATS:
            raise NotebookConfigError(
                f"Report format {fmt!r} is not one of {', '.join(REPORT_FORMATS)}; fix `report_formats`."
            )
        if fmt not in out:
            out.append(fmt)
    return out


def check_patterns(patterns: Any) -> list[str]:
    """``collect_files`` globs, each relative to the working folder and staying inside it."""
    if patterns is None:
        return []
    if isinstance(patterns, str) or not isinstance(patterns, Iterable):
        raise NotebookConfigError(f"`collect_files` must be a list of glob patterns such as ['out/*.csv'], got {patterns!r}")
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise NotebookConfigError(f"`collect_files` holds {pattern!r}; each entry is a glob pattern (a string)")
        parts = PurePosixPath(pattern).parts
        if pattern.startswith(("/", "~")) or ".." in parts:
            raise NotebookConfigError(
                f"`collect_files` pattern {pattern!r} reaches outside the kernel's working folder; use a pattern "
                "relative to it, without '..' (e.g. 'out/*.csv')."
            )
        out.append(pattern)
    return out


def beside(output_path: str, suffix: str) -> str:
    """A location beside the output notebook: ``attempt-1.ipynb`` -> ``attempt-1<suffix>``."""
    stem = output_path[: -len(".ipynb")] if output_path.endswith(".ipynb") else output_path
    return stem + suffix


def mark_report_mode(nb: NotebookNode) -> None:
    """papermill's ``report_mode``: hide every cell's source in Jupyter (``metadata.jupyter.source_hidden``)."""
    for cell in nb.cells:
        cell.metadata.setdefault("jupyter", {})["source_hidden"] = True


def render(nb: NotebookNode, fmt: str, *, report_mode: bool, title: str = "Notebook report",
           log: Log | None = None) -> bytes:
    """The notebook as a report in ``fmt``; raises ``NotebookConfigError`` if this machine cannot make it."""
    if fmt == "html":
        return _html(nb, report_mode, title).encode()
    if fmt == "markdown":
        return _markdown(nb, report_mode).encode()
    if fmt == "pdf":
        return _pdf(_html(nb, report_mode, title), log)
    raise NotebookConfigError(f"Report format {fmt!r} is not one of {', '.join(REPORT_FORMATS)}")


def _preprocessors(report_mode: bool, page: bool) -> list[Any]:
    from nbconvert.preprocessors import TagRemovePreprocessor

    remove = {"injected-parameters"} if report_mode else set()
    return [TagRemovePreprocessor(remove_cell_tags=remove, enabled=True), functools.partial(clean_notebook, page=page)]


def _html(nb: NotebookNode, report_mode: bool, title: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=report_mode, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    for pre in _preprocessors(report_mode, page=True):
        exporter.register_preprocessor(pre, enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    body = clean_html(body)  # no <meta http-equiv>, script, handler or script URL an output (or markdown) brought
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _markdown(nb: NotebookNode, report_mode: bool) -> str:
    from nbconvert import MarkdownExporter

    exporter = MarkdownExporter(exclude_input=report_mode)
    for pre in _preprocessors(report_mode, page=False):
        exporter.register_preprocessor(pre, enabled=True)
    body, resources = exporter.from_notebook_node(nb)
    # One file: images the exporter would write beside it are embedded as data URIs.
    for name, data in (resources.get("outputs") or {}).items():
        mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml",
                "gif": "image/gif"}.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
        raw = data.encode() if isinstance(data, str) else data
        body = body.replace(f"({name})", f"(data:{mime};base64,{base64.b64encode(raw).decode()})")
    return clean_markdown(body)


def _pdf(page: str, log: Log | None) -> bytes:
    """Print the HTML report with a local Chromium through Playwright (``page.pdf``), offline."""
    if not Path(CHROMIUM).exists():
        raise NotebookConfigError(
            f"A pdf report needs Chromium at {CHROMIUM} where the task runs (e.g. Debian's `chromium` package; "
            "set NOTEBOOK_REPORT_CHROMIUM to another path); nbconvert's LaTeX route needs xelatex. Use 'html' instead."
        )
    return print_pdf(page, CHROMIUM, log or logging.getLogger(__name__))


@dataclass(frozen=True)
class CollectedFile:
    path: str
    """Relative to the working folder, with '/' separators: its name under ``<attempt>.files/``."""
    source: Path
    size: int
    """Its size when it was checked: what counts against the limit, and the most that is read of it."""


@dataclass
class FoundFiles:
    files: list[CollectedFile]
    skipped: list[str]
    """Regular files left out for the limit (``collect_files_max_bytes``)."""
    refused: list[tuple[str, str]]
    """(path, why) of matches that are not regular files inside the folder: symlinks, FIFOs, devices, sockets."""


class LeftOut(Exception):
    """A matched file that is not taken, and why (not a regular file, or it changed after it was checked)."""


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link (never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def find_files(folder: str | Path, patterns: Sequence[str], max_bytes: int) -> FoundFiles:
    """Regular files under ``folder`` matching ``patterns`` (sorted by path), up to ``max_bytes`` in all; the paths
    left out for the limit; and the matches refused: symlinks, anything reached through a symlinked folder, FIFOs,
    devices and sockets (checked without following links: ``lstat``)."""
    root = Path(folder).resolve()
    found: dict[str, int] = {}
    refused: dict[str, str] = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            rel = path.relative_to(root).as_posix()
            try:
                mode, size = (st := path.lstat()).st_mode, st.st_size
                parent = path.parent.resolve()
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISDIR(mode):
                continue
            why = _not_regular(mode)
            if why is None and parent != path.parent:
                why = "reached through a symbolically linked folder"
            if why is not None:
                refused.setdefault(rel, why)
            else:
                found.setdefault(rel, size)
    files, skipped, total = [], [], 0
    for rel in sorted(found):
        if total + found[rel] > max_bytes:
            skipped.append(rel)
            continue
        total += found[rel]
        files.append(CollectedFile(rel, root / rel, found[rel]))
    return FoundFiles(files, skipped, sorted(refused.items()))


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_checked(folder: str | Path, f: CollectedFile) -> bytes:
    """The bytes of ``f``, opened folder by folder from ``folder`` without following any symbolic link and without
    blocking (a FIFO opens at once), taken only if what was opened is a regular file (``fstat``) no bigger than when
    it was checked, and read up to that size; ``LeftOut`` saying why otherwise."""
    fds = [os.open(Path(folder).resolve(), _DIR_FLAGS)]
    try:
        *parents, name = f.path.split("/")
        try:
            for part in parents:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            fd = os.open(name, _FILE_FLAGS, dir_fd=fds[-1])
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise LeftOut("a symbolic link (never followed), swapped in after it was checked") from None
            if exc.errno == errno.ENOENT:
                raise LeftOut("removed before it was read") from None
            raise
        fds.append(fd)
        st = os.fstat(fd)
        if (why := _not_regular(st.st_mode)) is not None:
            raise LeftOut(f"{why}, swapped in after it was checked")
        if st.st_size > f.size:
            raise LeftOut(f"it grew from {f.size} to {st.st_size} bytes after it was checked (left out rather than "
                          "cut short)")
        chunks, left = [], f.size
        while left > 0 and (chunk := os.read(fd, min(left, 2**20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        for fd in reversed(fds):
            os.close(fd)


@dataclass
class Publisher:
    """Makes the reports and copies the collected files of one attempt, when its run ends.

    :param save: ``save(location, data)`` writes one file (the caller's storage: local, S3...).
    :param cwd: The kernel's working folder (None for a remote kernel: nothing can be collected there).
    """

    output_path: str
    save: Callable[[str, bytes], None]
    formats: list[str] = field(default_factory=list)
    report_mode: bool = False
    patterns: list[str] = field(default_factory=list)
    max_bytes: int = DEFAULT_COLLECT_MAX_BYTES
    cwd: str | None = None
    reports: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def __call__(self, nb: NotebookNode, log: Log) -> None:
        """Collect, then render (so that the report lists the files); record both in ``metadata.airflow``.
        A failure here is logged and noted in the notebook: it never costs the notebook itself."""
        meta = nb.metadata.setdefault("airflow", {})
        if self.patterns:
            try:
                self._collect(meta, log)
            except Exception as exc:  # noqa: BLE001 - the notebook's last write must still happen
                log.error("Collecting files failed: %s", exc)
                meta["files_error"] = str(exc)
        for fmt in self.formats:
            location = beside(self.output_path, REPORT_FORMATS[fmt])
            try:
                self.save(location, render(nb, fmt, report_mode=self.report_mode,
                                           title=Path(self.output_path).name, log=log))
            except Exception as exc:  # noqa: BLE001 - as above
                log.error("The %s report could not be written to %s: %s", fmt, location, exc)
                meta.setdefault("report_errors", {})[fmt] = str(exc)
                continue
            self.reports[fmt] = location
            log.info("Report (%s): %s", fmt, location)
        if self.reports:
            meta["reports"] = dict(self.reports)

    def _collect(self, meta: dict[str, Any], log: Log) -> None:
        if self.cwd is None:
            raise NotebookConfigError("`collect_files` needs a kernel on the worker: a remote kernel's files are on "
                                      "its own host (write them to object storage from the notebook instead)")
        found = find_files(self.cwd, self.patterns, self.max_bytes)
        folder = beside(self.output_path, ".files")
        listed: list[dict[str, Any]] = []
        refused = list(found.refused)
        for f in found.files:
            try:
                data = read_checked(self.cwd, f)
            except LeftOut as exc:
                refused.append((f.path, str(exc)))
                continue
            location = f"{folder}/{f.path}"
            self.save(location, data)
            self.files.append(location)
            listed.append({"path": f.path, "location": location, "bytes": len(data)})
        meta["files"] = listed
        if found.skipped:
            meta["files_skipped"] = found.skipped
            log.warning(
                "collect_files: %d file(s) left out, over collect_files_max_bytes=%d in all: %s. Raise the limit or "
                "narrow the patterns.", len(found.skipped), self.max_bytes, ", ".join(found.skipped[:20]),
            )
        if refused:
            meta["files_refused"] = [{"path": path, "reason": why} for path, why in refused]
            log.warning("collect_files: %d match(es) left out, not regular files inside the working folder: %s",
                        len(refused), "; ".join(f"{path} ({why})" for path, why in refused[:20]))
        log.info("Collected %d file(s) (%d bytes) under %s", len(listed), sum(f["bytes"] for f in listed), folder)


__all__ = ["CHROMIUM", "REPORT_FORMATS", "CollectedFile", "FoundFiles", "LeftOut", "Publisher", "beside",
           "check_formats", "check_patterns", "find_files", "mark_report_mode", "read_checked", "render"]
