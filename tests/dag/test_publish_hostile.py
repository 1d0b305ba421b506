"""Reports and collected files of a notebook whose outputs are hostile: a PDF report printed by Chromium fetches
nothing the outputs point at; Markdown and HTML reports carry no script, event handler or ``javascript:`` URL;
``collect_files`` neither hangs on a FIFO nor reads ``/dev/zero`` when a file is swapped under it."""

from __future__ import annotations

import html.parser
import http.server
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import python_notebook, read_nb, run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")
CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
# A 1x1 PNG: the benign image every report must still show (as the data: URI the reports embed).
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def one_task(dag_id: str, **kw: object) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", **kw)
    return dag


# -- a PDF report is printed offline ------------------------------------------------------------------------------


class Canary:
    """An HTTP server on 127.0.0.1 that answers every request with a unique text and counts the connections made
    to it (counted as they are accepted, so that even a connection that never sends a request is seen)."""

    def __init__(self) -> None:
        self.answer = f"CANARY-ANSWER-{uuid.uuid4().hex}"
        self.connections = 0
        self.paths: list[str] = []
        self._flushed = threading.Event()
        canary = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/flush":
                    canary._flushed.set()
                else:
                    canary.paths.append(self.path)
                body = f"<html><body><h1>{canary.answer}</h1></body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                canary.connections += 1  # the accepting thread, one connection at a time
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def connections_so_far(self) -> int:
        """Connections made before this call: one more of our own, once it is answered, means every earlier one
        waiting in the listen queue has been accepted and counted."""
        import urllib.request

        with urllib.request.urlopen(f"{self.base}/flush", timeout=30) as r:
            r.read()
        assert self._flushed.wait(30)
        return self.connections - 1

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    try:
        yield server
    finally:
        server.stop()


def fetch_vectors(base: str) -> str:
    """Output HTML that makes a browser ask ``base`` for something: a refresh, subresources, frames, CSS."""
    return f"""
<meta http-equiv="refresh" content="0;url={base}/meta-refresh">
<meta http-equiv="Refresh" content="0; URL='{base}/meta-refresh-2'">
<img src="{base}/img.png"><img srcset="{base}/srcset.png 2x">
<link rel="stylesheet" href="{base}/link.css"><link rel="preconnect" href="{base}/"><link rel="prefetch" href="{base}/prefetch">
<iframe src="{base}/iframe"></iframe><iframe srcdoc="<img src='{base}/srcdoc.png'>"></iframe>
<object data="{base}/object"></object><embed src="{base}/embed">
<video poster="{base}/poster.png" src="{base}/video.mp4"></video><audio src="{base}/audio.mp3"></audio>
<svg width="10" height="10"><image href="{base}/svg-image.png" width="10" height="10"/></svg>
<style>@import url("{base}/import.css"); .x {{ background: url("{base}/background.png"); }}
@font-face {{ font-family: f; src: url("{base}/font.woff"); }} p {{ font-family: f; }}</style>
<div class="x" style="background-image: url('{base}/inline-style.png')">styled</div>
<form action="{base}/form"><input type="image" src="{base}/input.png"></form>
<p>REPORT-BODY-MARKER</p>
"""


@pytest.mark.timeout(300)
def test_a_pdf_report_fetches_nothing_its_outputs_point_at(airflow_db, make_notebook, tmp_path, canary, capfd) -> None:
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (.ci/run installs Debian's)")
    vectors = fetch_vectors(canary.base)
    nb = make_notebook(
        "from IPython.display import HTML, Markdown, display\n"
        f"display(HTML({vectors!r}))\n"
        f"display(Markdown({f'![remote]({canary.base}/markdown.png) [link]({canary.base}/link)'!r}))",
        f"#md <meta http-equiv=\"refresh\" content=\"0;url={canary.base}/markdown-cell-refresh\">\n\nmarkdown cell",
    )
    out = tmp_path / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_pdf_offline", notebook=str(nb), output_notebook=str(out), report_formats=["pdf"]))["nb"]
    assert canary.connections_so_far() == 0, f"the worker's Chromium fetched {canary.paths}"
    assert res.state == "success"
    pdf = tmp_path / "attempt-1.pdf"
    assert res.xcom["reports"] == {"pdf": str(pdf)}, read_nb(out)["metadata"]["airflow"].get("report_errors")
    assert pdf.read_bytes().startswith(b"%PDF-")
    log = "".join(capfd.readouterr())
    if os.geteuid() == 0:  # Chromium refuses its sandbox to root: the task says it printed without one, and why
        assert "without Chromium's sandbox" in log and "runs as root" in log
    if shutil.which("pdftotext") is None:
        pytest.skip("no pdftotext to read the PDF's text (Debian's poppler-utils); no request was made")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "REPORT-BODY-MARKER" in text  # the report itself was printed, not some other page
    assert canary.answer not in text


@pytest.mark.timeout(300)
def test_the_printer_alone_fetches_nothing_for_a_page_nobody_sanitized(canary, tmp_path) -> None:
    """The second line of defence on its own: Chromium handed the fetching page as it is (no sanitizer, no
    Content-Security-Policy) still asks nothing of the network, and prints the page rather than what a refresh
    would have led to."""
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (.ci/run installs Debian's)")
    import logging

    from airflow_notebook_provider.engine.safe_report import print_pdf

    page = f"<!DOCTYPE html><html><head>{fetch_vectors(canary.base)}</head><body><p>REPORT-BODY-MARKER</p></body></html>"
    pdf = print_pdf(page, str(CHROMIUM), logging.getLogger("test"))
    assert canary.connections_so_far() == 0, f"Chromium fetched {canary.paths}"
    assert pdf.startswith(b"%PDF-")
    if shutil.which("pdftotext") is None:
        pytest.skip("no pdftotext to read the PDF's text (Debian's poppler-utils); no request was made")
    (tmp_path / "p.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "p.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "REPORT-BODY-MARKER" in text and canary.answer not in text


WRAPPER = """#!/bin/sh
# Records the flags Playwright starts Chromium with, then runs it.
printf '%s\\n' "$@" >> {record}
exec /usr/bin/chromium "$@"
"""

AS_NOBODY = """
import logging, os, sys
import nbformat
from playwright.sync_api import sync_playwright  # noqa: F401 - imported while the interpreter's files are readable
from airflow_notebook_provider.engine.publish import Publisher, render

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
nb = nbformat.read(sys.argv[1], as_version=4)
render(nb, "html", report_mode=False)  # loads what rendering needs while still root
# The interpreter lives under /root here, out of nobody's reach: drop to nobody only now, as a worker started as
# nobody would be.
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
published = {}
Publisher(sys.argv[2], save=published.__setitem__, formats=["pdf"])(nb, logging.getLogger("pdf"))
print("REPORTS", sorted(published), published and next(iter(published.values()))[:5])
"""


@pytest.mark.timeout(300)
def test_a_worker_that_is_not_root_prints_inside_chromiums_sandbox(tmp_path: Path) -> None:
    """Chromium's sandbox is used whenever the worker is not root: the engine's publisher in a process running as
    the user ``nobody``, with a Chromium that records the flags it was started with."""
    if not CHROMIUM.exists() or os.geteuid() != 0:
        pytest.skip("needs root (to become nobody) and /usr/bin/chromium")
    flags = Path(tempfile.mkdtemp(prefix="anp-flags-"))  # pytest's folder is root's alone: nobody needs one too
    try:
        flags.chmod(0o777)
        wrapper = flags / "chromium"
        wrapper.write_text(WRAPPER.format(record=flags / "chromium-flags.txt"))
        wrapper.chmod(0o755)
        nb = tmp_path / "nb.ipynb"
        nb.write_text(nbformat.writes(python_notebook("print('hello from nobody')")))
        env = {**os.environ, "NOTEBOOK_REPORT_CHROMIUM": str(wrapper), "PYTHONPATH": str(REPO), "HOME": str(flags)}
        proc = subprocess.run([sys.executable, "-c", AS_NOBODY, str(nb), str(tmp_path / "attempt-1.ipynb")],
                              env=env, cwd=flags, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "REPORTS ['" in proc.stdout and "%PDF-" in proc.stdout, proc.stdout + proc.stderr
        started_with = (flags / "chromium-flags.txt").read_text().splitlines()
        assert started_with and "--no-sandbox" not in started_with
        assert "inside Chromium's sandbox" in proc.stdout
    finally:
        shutil.rmtree(flags, ignore_errors=True)


# -- Markdown and HTML reports carry no script --------------------------------------------------------------------

HTML_PAYLOADS = [
    "<scr<script></script>ipt>alert('nested')</scr<script></script>ipt>",
    "<<script>script>alert('doubled')<</script>/script>",
    "<img src=x onerror=alert('img')>",
    "<IMG SRC=x OnErRoR=alert('case')>",
    "<svg onload=alert('svg')><circle r=1 /></svg>",
    "<svg><script>alert('svg-script')</script></svg>",
    "<body onload=alert('body')>",
    "<details open ontoggle=alert('toggle')>d</details>",
    "<a href='javascript:alert(1)'>js link</a>",
    "<a href=' JaVaScRiPt:alert(2)'>spaced case</a>",
    "<a href='jav&#x09;ascript:alert(3)'>tab entity</a>",
    "<a href='&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(4)'>entities</a>",
    "<a href='vbscript:msgbox(1)'>vb</a>",
    "<a href='data:text/html,<script>alert(5)</script>'>data</a>",
    "<iframe srcdoc='<script>alert(6)</script>'></iframe>",
    "<form action='javascript:alert(7)'><button formaction='javascript:alert(8)'>go</button></form>",
    "<object data='javascript:alert(9)'></object><embed src='javascript:alert(10)'>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('mxss')>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert('noscript')>\">",
    "<div style=\"background:url(javascript:alert(11))\">css</div>",
    "<SCRIPT SRC=//example.invalid/x.js></SCRIPT>",
    "<script>alert('plain')</script>",
    "<meta http-equiv='refresh' content='0;url=javascript:alert(12)'>",
    "<base href='javascript:alert(13)//'>",
]
MARKDOWN_PAYLOADS = [
    "[md js](javascript:alert(20))",
    "[md js case](JAVASCRIPT:alert(21))",
    "[md js entity](javascript&#58;alert(22))",
    "[md ref][evil]\n\n[evil]: javascript:alert(23)",
    "<javascript:alert(24)>",
    "![md img](javascript:alert(25))",
    "\\<script>alert(26)\\</script>",
    "Some text <img src=x onerror=alert(27)> inline",
    "- item\n\n    <script>alert(28)</script>",
    "<div>\n<scr<script></script>ipt>alert(29)</script>\n</div>",
    "```\n<script>alert(30)</script>\n```",  # code for CommonMark; HTML for a renderer that knows no fences
]
BENIGN_MARKDOWN = (
    "| city | total |\n|---|---|\n| Lyon | 42 |\n\n"
    "See [the docs](https://example.com/docs) and <b>bold html</b>.\n\n"
    f"![inline chart](data:image/png;base64,{PNG_B64})"
)
BENIGN_HTML = "<table><tr><th>region</th><th>sum</th></tr><tr><td>north</td><td>17</td></tr></table>"


class Elements(html.parser.HTMLParser):
    """Every element and attribute of an HTML document, as a browser's tokenizer sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def problems(self) -> list[str]:
        """Script elements, event-handler attributes and script URLs: what would run in a reader's browser."""
        found = []
        for tag, attrs in self.tags:
            if tag in ("script", "iframe", "object", "embed", "base", "meta", "form"):
                found.append(f"<{tag}>")
            for name, value in attrs.items():
                squashed = "".join(value.split()).lower()
                if name.startswith("on"):
                    found.append(f"<{tag} {name}=...>")
                if "javascript:" in squashed or "vbscript:" in squashed or squashed.startswith("data:text"):
                    found.append(f"<{tag} {name}={value!r}>")
        return found


def rendered(markdown_text: str) -> dict[str, str]:
    """The Markdown report as readers' renderers show it: CommonMark with raw HTML (markdown-it-py, with GFM
    tables), and Python-Markdown where it is installed (the docs extra brings it)."""
    from markdown_it import MarkdownIt

    out = {"markdown-it": MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)}
    try:
        import markdown
    except ImportError:
        return out
    out["python-markdown"] = markdown.markdown(markdown_text, extensions=["tables"])
    return out


def test_markdown_and_html_reports_carry_no_script_and_still_show_tables_images_and_links(
        airflow_db, make_notebook, tmp_path) -> None:
    nb = make_notebook(
        "import base64\nfrom IPython.display import HTML, Image, Markdown, display\n"
        f"for p in {HTML_PAYLOADS!r}:\n    display(HTML(p))\n"
        f"for p in {MARKDOWN_PAYLOADS!r}:\n    display(Markdown(p))\n"
        f"display(HTML({BENIGN_HTML!r}))\n"
        f"display(Image(data=base64.b64decode({PNG_B64!r}), format='png'))",
        "#md " + "\n\n".join(MARKDOWN_PAYLOADS + HTML_PAYLOADS[:3]),
        "#md " + BENIGN_MARKDOWN,
    )
    out = tmp_path / "attempt-1.ipynb"
    res = run_dag(one_task("t_pub_md_hostile", notebook=str(nb), output_notebook=str(out), report_mode=True,
                           report_formats=["markdown", "html"]))["nb"]
    assert res.state == "success"
    md = (tmp_path / "attempt-1.md").read_text()
    page = (tmp_path / "attempt-1.html").read_text()
    assert "<script" not in page.lower()
    # In the Markdown file, a "<script" is text in an indented code block (what the fenced payload became) or nowhere.
    outside_code = "\n".join(line for line in md.splitlines() if not line.startswith("    "))
    assert "<script" not in outside_code.lower()
    head, body = page.split("<body>", 1)
    assert head.lower().count("<meta") == 2 and "default-src 'none'" in head  # the page's own: charset and policy
    for name, doc in {"markdown file as HTML": outside_code, "html report's body": body, **rendered(md)}.items():
        assert Elements(doc).problems() == [], name
    for name, doc in {"html report": page, **rendered(md)}.items():
        assert "<th>city</th>" in doc and "<td>Lyon</td>" in doc, name            # a Markdown table
        assert "<td>north</td>" in doc, name                                     # an HTML table from an output
        assert f'src="data:image/png;base64,{PNG_B64}"' in doc, name             # embedded images
        assert '<a href="https://example.com/docs"' in doc, name                 # a link
        assert "<b>bold html</b>" in doc, name


# -- collect_files reads regular files only, and no more than it checked ------------------------------------------

SWAPPER = """
import os, sys, time
# Swaps each of these names between a regular file, a FIFO and a link to /dev/zero, until told to stop (or 120 s).
names = [f"out/race{i:02d}.csv" for i in range(30)]
stop, deadline, rounds = sys.argv[1], time.monotonic() + 120, 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    for name in names:
        with open(name + ".tmp", "w") as f:
            f.write("regular\\n")
        os.replace(name + ".tmp", name)
    for name in names:
        os.mkfifo(name + ".fifo")
        os.replace(name + ".fifo", name)
    for name in names:
        os.symlink("/dev/zero", name + ".lnk")
        os.replace(name + ".lnk", name)
    rounds += 1
    if rounds == 50:
        open("swapping", "w").close()
"""


@pytest.mark.timeout(240)
def test_collect_files_leaves_out_fifos_and_devices_even_when_swapped_in_after_the_check(
        airflow_db, make_notebook, tmp_path, capfd, caplog) -> None:
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "swapper.py").write_text(SWAPPER)
    stop = tmp_path / "stop-swapping"
    nb = make_notebook(
        "import os, pathlib, subprocess, sys, time\n"
        "pathlib.Path('out/a.csv').write_text('x,y\\n1,2\\n')\n"
        # Copying this one takes a while: the racing names below change many times between their check and read.
        "pathlib.Path('out/a_big.csv').write_bytes(b'0123456789abcdef' * (4 * 2**20))\n"
        "os.symlink('/dev/zero', 'out/zero.csv')\n"
        "os.mkfifo('out/pipe.csv')\n"
        # A process of its own (it outlives the kernel) swaps files while the task collects them.
        f"p = subprocess.Popen([sys.executable, 'swapper.py', {str(stop)!r}], start_new_session=True)\n"
        "pathlib.Path('swapper.pid').write_text(str(p.pid))\n"
        "while not os.path.exists('swapping'):\n    time.sleep(0.05)",
        folder=work,
    )
    out = tmp_path / "runs" / "attempt-1.ipynb"
    try:
        with caplog.at_level(logging.DEBUG):
            res = run_dag(one_task("t_pub_files_fifo", notebook=str(nb), output_notebook=str(out),
                                   collect_files=["out/*.csv"]))["nb"]
    finally:
        stop.touch()
        pid_file = work / "swapper.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert res.state == "success"
    files = tmp_path / "runs" / "attempt-1.files"
    assert (files / "out" / "a.csv").read_text() == "x,y\n1,2\n"
    assert (files / "out" / "a_big.csv").stat().st_size == 64 * 2**20
    assert not (files / "out" / "zero.csv").exists() and not (files / "out" / "pipe.csv").exists()
    for race in files.glob("out/race*.csv"):  # taken only while it was the regular file
        assert race.read_text() == "regular\n"
    meta = read_nb(out)["metadata"]["airflow"]
    refused = {f["path"]: f["reason"] for f in meta["files_refused"]}
    assert "symbolic link" in refused["out/zero.csv"] and "FIFO" in refused["out/pipe.csv"]
    # The task log as the process printed it and as logging recorded it (which one holds the task's lines depends on
    # how earlier tests in the same process left Airflow's logging).
    log = "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records)
    assert "out/zero.csv" in log and "out/pipe.csv" in log and "left out" in log
