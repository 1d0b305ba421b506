"""Regenerates docs/report-failed.png: the HTML report of a failed run, in Debian's Chromium (no JavaScript).

Run: .venv/bin/python docs/report_screenshot.py
"""

from __future__ import annotations

import logging
import pathlib
import tempfile

import nbformat
from playwright.sync_api import sync_playwright

from airflow_notebook_provider.engine import NotebookExecutionError, execute_notebook
from airflow_notebook_provider.engine.publish import Publisher
from airflow_notebook_provider.engine.settings import RunHooks

tmp = pathlib.Path(tempfile.mkdtemp())
cells = [
    nbformat.v4.new_markdown_cell("# Daily sales report\nRevenue by region for the day."),
    nbformat.v4.new_code_cell('day = "2024-01-01"\nregion = "eu"', metadata={"tags": ["parameters"]}),
    nbformat.v4.new_code_cell('rows = [{"amount": 10.5}, {"amount": 20.0}, {"amont": 7}]\n'
                              'print(f"{day} {region}: {len(rows)} rows")'),
    nbformat.v4.new_code_cell('total = sum(r["amount"] for r in rows)\ntotal'),
]
nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})
out = tmp / "attempt-1.ipynb"
publisher = Publisher(str(out), save=lambda loc, data: pathlib.Path(loc).write_bytes(data), formats=["html"])
try:
    execute_notebook(nbformat.writes(nb).encode(), input_path=str(tmp / "in.ipynb"), output_path=str(out),
                     save=out.write_bytes, parameters={"day": "2024-05-01", "region": "us"},
                     hooks=RunHooks(on_finish=lambda n: publisher(n, logging.getLogger())))
except NotebookExecutionError as exc:
    print("failed as planned:", exc.ename)
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1000, "height": 900}, java_script_enabled=False)
    page.goto(f"file://{tmp / 'attempt-1.html'}")
    page.screenshot(path=str(pathlib.Path(__file__).with_name("report-failed.png")), full_page=True)
    browser.close()
