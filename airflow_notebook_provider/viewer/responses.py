"""The viewer's response headers (its content security policies) and its error page: one place, so every route
serves the notebook, its own pages and downloads under the same policies.

``/render`` is served with ``Content-Security-Policy: sandbox ...; script-src 'none'`` (``NOTEBOOK_CSP``): the
browser gives it an opaque origin and runs no script. The header, compare and error pages (``PAGE_CSP``) run no
script and allow no inline style. Reports, files and the notebook download are attachments (``DOWNLOAD_CSP``).
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from airflow_notebook_provider.viewer import page
from airflow_notebook_provider.viewer.attempts import ViewerError

NOTEBOOK_CSP = (
    "sandbox allow-downloads allow-popups allow-popups-to-escape-sandbox; default-src 'none'; script-src 'none'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": NOTEBOOK_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}
# The header, compare and error pages: our own escaped HTML, no script, no inline style, the notebook only framed.
PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; frame-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}
DOWNLOAD_CSP = "sandbox; default-src 'none'"
DOWNLOAD_HEADERS = {
    "Content-Security-Policy": DOWNLOAD_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}


def error(exc: ViewerError, links: list[tuple[str, str]] | None = None) -> HTMLResponse:
    """The error page for ``exc``, with links to other attempts or choices."""
    return HTMLResponse(page.error_page(exc.status, exc.title, exc.detail, links), status_code=exc.status,
                        headers=PAGE_HEADERS)
