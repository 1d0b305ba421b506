"""What a run publishes beside its output notebook: rendered reports and the files the notebook wrote.

Both are made when the run ends (success or failure), from the finished notebook, just before its last write, so
that the notebook lists them (``metadata.airflow.reports`` / ``files``). Storage is the caller's: this module
renders bytes and finds files; ``Publisher.save`` writes each one where the caller says.

Reports are nbconvert's, made safe to open from a shared location: HTML from the ``basic`` template (nbconvert's
``lab`` and ``classic`` templates carry ``<script>`` tags) inside a page of ours whose Content-Security-Policy
forbids every script, with any ``<script>`` element an output brought removed as well. ``report_mode`` follows
papermill: every cell's source is marked ``jupyter.source_hidden``, and the report leaves out code inputs and the
injected-parameters cell, keeping outputs, markdown and the error banner.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from nbformat import NotebookNode

from airflow_notebook_provider.engine.errors import NotebookConfigError
from airflow_notebook_provider.engine.log import Log

REPORT_FORMATS: Mapping[str, str] = {"html": ".html", "markdown": ".md", "pdf": ".pdf"}
"""Report format -> file extension. ``pdf`` is printed from the HTML report by a local Chromium (Playwright):
LaTeX is not needed, and no browser is ever downloaded."""
CHROMIUM = os.environ.get("NOTEBOOK_REPORT_CHROMIUM", "/usr/bin/chromium")
DEFAULT_COLLECT_MAX_BYTES = 100 * 2**20
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:"
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


def render(nb: NotebookNode, fmt: str, *, report_mode: bool, title: str = "Notebook report") -> bytes:
    """The notebook as a report in ``fmt``; raises ``NotebookConfigError`` if this machine cannot make it."""
    if fmt == "html":
        return _html(nb, report_mode, title).encode()
    if fmt == "markdown":
        return _markdown(nb, report_mode).encode()
    if fmt == "pdf":
        return _pdf(_html(nb, report_mode, title))
    raise NotebookConfigError(f"Report format {fmt!r} is not one of {', '.join(REPORT_FORMATS)}")


def _preprocessors(report_mode: bool) -> list[Any]:
    from nbconvert.preprocessors import TagRemovePreprocessor

    remove = {"injected-parameters"} if report_mode else set()
    return [TagRemovePreprocessor(remove_cell_tags=remove, enabled=True)]


def _html(nb: NotebookNode, report_mode: bool, title: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=report_mode, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    for pre in _preprocessors(report_mode):
        exporter.register_preprocessor(pre, enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    body = _SCRIPT.sub("", body)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _markdown(nb: NotebookNode, report_mode: bool) -> str:
    from nbconvert import MarkdownExporter

    exporter = MarkdownExporter(exclude_input=report_mode)
    for pre in _preprocessors(report_mode):
        exporter.register_preprocessor(pre, enabled=True)
    body, resources = exporter.from_notebook_node(nb)
    # One file: images the exporter would write beside it are embedded as data URIs.
    for name, data in (resources.get("outputs") or {}).items():
        mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml",
                "gif": "image/gif"}.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")
        raw = data.encode() if isinstance(data, str) else data
        body = body.replace(f"({name})", f"(data:{mime};base64,{base64.b64encode(raw).decode()})")
    return _SCRIPT.sub("", body)


def _pdf(page: str) -> bytes:
    """Print the HTML report with a local Chromium through Playwright (``page.pdf``)."""
    if not Path(CHROMIUM).exists():
        raise NotebookConfigError(
            f"A pdf report needs Chromium at {CHROMIUM} where the task runs (e.g. Debian's `chromium` package; "
            "set NOTEBOOK_REPORT_CHROMIUM to another path); nbconvert's LaTeX route needs xelatex. Use 'html' instead."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise NotebookConfigError("A pdf report needs the `playwright` package where the task runs "
                                  "(`pip install playwright`; no browser download is needed).") from None
    import threading

    result: dict[str, Any] = {}

    def run() -> None:  # Playwright's sync API refuses to run inside an asyncio loop: give it a thread of its own
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    tab = browser.new_page(java_script_enabled=False)
                    tab.set_content(page, wait_until="load")
                    result["pdf"] = tab.pdf(format="A4", print_background=True)
                finally:
                    browser.close()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            result["error"] = exc

    thread = threading.Thread(target=run, name="pdf-report")
    thread.start()
    thread.join(120)
    if "pdf" not in result:
        raise NotebookConfigError(f"The pdf report could not be printed: {result.get('error', 'timed out')}")
    pdf: bytes = result["pdf"]
    return pdf


@dataclass(frozen=True)
class CollectedFile:
    path: str
    """Relative to the working folder, with '/' separators: its name under ``<attempt>.files/``."""
    source: Path
    size: int


def find_files(folder: str | Path, patterns: Sequence[str], max_bytes: int) -> tuple[list[CollectedFile], list[str]]:
    """Regular files under ``folder`` matching ``patterns`` (sorted by path), up to ``max_bytes`` in all; and the
    paths left out for the limit. Symlinks, and anything whose real path is outside ``folder``, are never taken."""
    root = Path(folder).resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                real = path.resolve()
            except OSError:
                continue
            if real != path or root not in real.parents:
                continue  # a symlinked folder on the way out of the working folder
            found.setdefault(real.relative_to(root).as_posix(), real)
    files, skipped, total = [], [], 0
    for rel in sorted(found):
        size = found[rel].stat().st_size
        if total + size > max_bytes:
            skipped.append(rel)
            continue
        total += size
        files.append(CollectedFile(rel, found[rel], size))
    return files, skipped


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
                                           title=Path(self.output_path).name))
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
        files, skipped = find_files(self.cwd, self.patterns, self.max_bytes)
        folder = beside(self.output_path, ".files")
        listed = []
        for f in files:
            location = f"{folder}/{f.path}"
            self.save(location, f.source.read_bytes())
            self.files.append(location)
            listed.append({"path": f.path, "location": location, "bytes": f.size})
        meta["files"] = listed
        if skipped:
            meta["files_skipped"] = skipped
            log.warning(
                "collect_files: %d file(s) left out, over collect_files_max_bytes=%d in all: %s. Raise the limit or "
                "narrow the patterns.", len(skipped), self.max_bytes, ", ".join(skipped[:20]),
            )
        log.info("Collected %d file(s) (%d bytes) under %s", len(files), sum(f.size for f in files), folder)


__all__ = ["CHROMIUM", "REPORT_FORMATS", "CollectedFile", "Publisher", "beside", "check_formats",
           "check_patterns", "find_files", "mark_report_mode", "render"]
