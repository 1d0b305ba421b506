"""Making a report safe to open from a shared location: HTML and Markdown sanitized with an allow-list (nh3), and a
PDF printed by a Chromium that cannot reach the network.

What a notebook shows is not trusted: an output can be any HTML, and a report is read by people who never ran the
notebook, in a browser (HTML, or Markdown rendered by a viewer), or printed on the worker (PDF). So every element
and attribute of a report must be on an allow-list: no script, no event handler, no ``javascript:`` (or other
script) URL, no ``<meta http-equiv>``, frame, object, form or ``<base>``. Regular expressions cannot do this
(``<scr<script></script>ipt>`` is a ``<script>`` once the inner one is removed): nh3, a binding of the ammonia
sanitizer, parses the HTML as a browser does and keeps only what is listed.
"""

from __future__ import annotations

import html
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from airflow_notebook_provider.engine.log import Log
from airflow_notebook_provider.notebook.errors import NotebookConfigError

_IMAGE_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp|bmp|svg\+xml)[;,]", re.IGNORECASE)
"""Images the reports embed (nbconvert's ``<img src="data:...">``): an image, even an SVG one, runs no script."""
_SCHEMES = {"http", "https", "mailto", "data"}
_SCRIPTY = re.compile(r"(?<![a-z0-9+.\-])(?:(?:java|vb|live)script|data):", re.IGNORECASE)
"""A script or data URL's scheme where a URL could start (not ``metadata:``)."""
_STYLE_FETCH = re.compile(r"url\s*\(|image-set|@import|expression|javascript|\\", re.IGNORECASE)


def _attribute(element: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute: ``data:`` only for an image's source, and a ``style`` that loads nothing."""
    squashed = "".join(value.split())
    if squashed.lower().startswith("data:") and not (element == "img" and attribute == "src"
                                                      and _IMAGE_DATA.match(squashed)):
        return None
    if attribute == "style" and _STYLE_FETCH.search(value):
        return None
    return value


def _cleaner(page: bool) -> Any:
    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = {"class", "id", "title", "lang", "dir"} | ({"style"} if page else set())
    tags = set(nh3.ALLOWED_TAGS) | {"tfoot"}
    # The HTML report keeps outputs' <style> (pandas' tables): its page forbids every load (Content-Security-Policy)
    # and the PDF is printed offline. A Markdown report is shown inside someone else's page: no CSS there.
    if page:
        tags.add("style")
    return nh3.Cleaner(tags=tags, clean_content_tags={"script"} | (set() if page else {"style"}),
                       attributes=attributes, attribute_filter=_attribute, url_schemes=_SCHEMES,
                       strip_comments=True, link_rel="noopener noreferrer nofollow")


_CLEANERS: dict[bool, Any] = {}


def clean_html(fragment: str, *, page: bool = True) -> str:
    """``fragment`` with only allow-listed elements and attributes (nh3). ``page``: the HTML report's body, which
    may keep ``<style>`` and ``style=`` (its page forbids loading anything); else HTML inside a Markdown report."""
    cleaner = _CLEANERS.get(page)
    if cleaner is None:
        cleaner = _CLEANERS[page] = _cleaner(page)
    cleaned: str = cleaner.clean(fragment)
    return cleaned


# -- Markdown ----------------------------------------------------------------------------------------------------


def _parser() -> Any:
    from markdown_it import MarkdownIt

    class SeesEveryLink(MarkdownIt):
        def validateLink(self, url: str) -> bool:
            return True  # javascript: links are parsed as links too, and judged by _url_ok

    return SeesEveryLink("commonmark", {"html": True}).enable("table")


def _url_ok(url: str, image: bool) -> bool:
    squashed = "".join(ch for ch in url if ch > " ").lower()
    if image and _IMAGE_DATA.match(squashed):
        return True
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", squashed)
    return scheme is None or scheme.group(1) in ("http", "https", "mailto")


def _text_ok(text: str) -> bool:
    """Markdown source any renderer shows without markup of its own: no ``<`` (so no raw HTML, autolink or
    ``<destination>``) and, entities decoded, no script or ``data:`` URL besides embedded images."""
    if "<" in text:
        return False
    plain = _IMAGE_DATA.sub("", "".join(html.unescape(text).split()))
    return not _SCRIPTY.search(plain)


def _block_ok(tokens: Sequence[Any], source: str) -> bool:
    first = tokens[0]
    if first.type in ("fence", "code_block"):
        return True  # shown as text by every renderer
    if first.type == "html_block" or not _text_ok(source):
        return False
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open" and not _url_ok(str(child.attrGet("href") or ""), image=False):
                return False
            if child.type == "image" and not _url_ok(str(child.attrGet("src") or ""), image=True):
                return False
            if child.type == "html_inline":
                return False
    return True


def _top_level(tokens: Sequence[Any]) -> list[list[Any]]:
    """markdown-it's token stream cut into its top-level blocks (each starts with the token that has the lines)."""
    blocks: list[list[Any]] = []
    depth = 0
    for token in tokens:
        if depth == 0:
            blocks.append([])
        blocks[-1].append(token)
        depth += token.nesting
    return blocks


def _one_line(cleaned: str) -> str:
    """Sanitized HTML as one HTML block of Markdown: a ``<div>`` on one line, so that no blank line inside ends the
    block and lets Markdown be read in what follows (a newline is the same as ``&#10;`` in HTML text, attributes and
    ``<pre>``)."""
    return "<div>" + cleaned.strip().replace("\n", "&#10;") + "</div>"


def clean_markdown(text: str, *, strict_fences: bool = False) -> str:
    """A Markdown document whose raw HTML is sanitized and whose links and images keep to http(s), mailto and
    embedded images, as read by a CommonMark renderer (GitHub, GitLab, JupyterLab, markdown-it).

    Each top-level block (paragraph, list, table, ...) whose source has no ``<`` and no script or ``data:`` URL is
    kept as written, as are code blocks; any other block is rendered to HTML, sanitized (``clean_html``) and kept as
    one line of HTML (an HTML block, which renderers pass through without reading Markdown in it). Lines no block
    holds (link reference definitions) are kept only if they are as harmless. ``strict_fences``: a fenced code block
    with a ``<`` in it becomes an indented one, code for every Markdown renderer, also those that know no fences
    (Python-Markdown without ``fenced_code`` would pass its HTML through)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    lines = text.split("\n")
    out: list[str] = []
    done = 0

    def keep_gap(upto: int) -> None:
        gap = lines[done:upto]
        if all(not line.strip() for line in gap) or _text_ok("\n".join(gap)):
            out.extend(gap)

    for block in _top_level(tokens):
        if block[0].map is None:
            continue
        start, end = block[0].map
        keep_gap(start)
        source = "\n".join(lines[start:end])
        if strict_fences and block[0].type == "fence" and "<" in block[0].content:
            out.extend(["", *("    " + line for line in block[0].content.rstrip("\n").split("\n")), ""])
        elif _block_ok(block, source):
            out.extend(lines[start:end])
        else:
            out.extend(["", _one_line(clean_html(md.renderer.render(block, md.options, env), page=False)), ""])
        done = end
    keep_gap(len(lines))
    return "\n".join(out)


def clean_notebook(nb: Any, resources: Any, *, page: bool) -> tuple[Any, Any]:
    """An nbconvert preprocessor (on the exporter's own copy): each output's HTML and LaTeX, and each Markdown
    output and cell, sanitized on its own before the report is put together, so that one output cannot reach into
    the next (an unclosed ``<style>`` or ``<textarea>`` swallowing the rest of the report)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = clean_markdown(str(cell.source), strict_fences=True)
        for output in cell.get("outputs", ()):
            data = output.get("data")
            if not isinstance(data, dict):
                continue
            for mime, value in list(data.items()):
                text = "".join(value) if isinstance(value, list) else value
                if not isinstance(text, str):
                    continue
                if mime == "text/html" and not page:
                    # Inside Markdown, raw HTML ends at a blank line: one line keeps the output one HTML block.
                    data[mime] = _one_line(clean_html(text, page=False))
                elif mime in ("text/html", "text/latex"):
                    data[mime] = clean_html(text, page=page and mime == "text/html")
                elif mime == "text/markdown":
                    data[mime] = clean_markdown(text, strict_fences=True)
    return nb, resources


# -- PDF, printed offline ----------------------------------------------------------------------------------------

SANDBOX_ENV = "NOTEBOOK_REPORT_CHROMIUM_SANDBOX"


def _sandbox(log: Log) -> bool:
    """Chromium's sandbox, unless the worker is root (Chromium refuses to start its sandbox as root) or the
    deployment turned it off (``NOTEBOOK_REPORT_CHROMIUM_SANDBOX=off``)."""
    if os.geteuid() == 0:
        log.warning("The pdf report is printed without Chromium's sandbox: this task runs as root, and Chromium "
                    "refuses its sandbox to root. Run workers as a user other than root to print inside it.")
        return False
    if os.environ.get(SANDBOX_ENV, "").lower() in ("off", "0", "false", "no"):
        log.warning("The pdf report is printed without Chromium's sandbox: %s=off.", SANDBOX_ENV)
        return False
    log.info("The pdf report is printed inside Chromium's sandbox.")
    return True


def print_pdf(page: str, chromium: str, log: Log, timeout: float = 120.0) -> bytes:
    """``page`` printed to PDF by the Chromium at ``chromium`` (through Playwright), with no network: the page is
    handed over as content; every request it makes (subresources, frames, websockets) is aborted before it leaves
    the browser, and a navigation (a refresh) is answered "204 No Content", which keeps the report in place; no
    host name or address resolves; JavaScript and service workers are off. ``page`` should be sanitized already
    (``clean_html``): this is the second line of defence, not the first."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise NotebookConfigError("A pdf report needs the `playwright` package where the task runs "
                                  "(`pip install playwright`; no browser download is needed).") from None
    sandbox = _sandbox(log)
    result: dict[str, Any] = {}
    blocked: list[str] = []

    def refuse(route: Any) -> None:
        blocked.append(route.request.url)
        if route.request.is_navigation_request():
            route.fulfill(status=204)  # "No Content": the frame stays on the report (an aborted one shows an error)
        else:
            route.abort("blockedbyclient")

    def run() -> None:  # Playwright's sync API refuses to run inside an asyncio loop: give it a thread of its own
        try:
            with sync_playwright() as pw:
                try:
                    browser = pw.chromium.launch(executable_path=chromium, chromium_sandbox=sandbox, args=[
                        # No name or address resolves (IP literals included): what no request stands for, such as
                        # a <link rel=preconnect>'s connection, reaches nothing either.
                        "--host-resolver-rules=MAP * ~NOTFOUND",
                    ])
                except Exception as exc:
                    if sandbox:
                        raise NotebookConfigError(
                            f"Chromium ({chromium}) could not start inside its sandbox ({exc}). The sandbox needs "
                            "unprivileged user namespaces (e.g. sysctl kernel.unprivileged_userns_clone=1, or a "
                            "container security profile that allows them); or set "
                            f"{SANDBOX_ENV}=off to print without it."
                        ) from None
                    raise
                try:
                    context = browser.new_context(java_script_enabled=False, offline=True, service_workers="block",
                                                  accept_downloads=False)
                    context.route("**/*", refuse)
                    if hasattr(context, "route_web_socket"):  # Playwright >= 1.48; JavaScript is off anyway
                        context.route_web_socket("**/*", lambda ws: ws.close())
                    tab = context.new_page()
                    tab.set_content(page, wait_until="load")
                    result["pdf"] = tab.pdf(format="A4", print_background=True)
                finally:
                    browser.close()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            result["error"] = exc

    thread = threading.Thread(target=run, name="pdf-report")
    thread.start()
    thread.join(timeout)
    if blocked:
        log.warning("The pdf report asked for %d URL(s), none of them fetched: %s", len(blocked),
                    ", ".join(url[:200] for url in blocked[:5]))
    error = result.get("error")
    if isinstance(error, NotebookConfigError):
        raise error
    if "pdf" not in result:
        raise NotebookConfigError(f"The pdf report could not be printed: {error or 'timed out'}")
    pdf: bytes = result["pdf"]
    return pdf


__all__ = ["SANDBOX_ENV", "clean_html", "clean_markdown", "clean_notebook", "print_pdf"]
