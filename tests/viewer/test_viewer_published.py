"""What an attempt published beside its notebook (``report_formats``, ``collect_files``), through the viewer: the
page's Report and file links, the ``/notebook/report`` and ``/notebook/file`` downloads, and ``view=report``.
Real api-server app and auth manager, a task run by dag.test() with a real kernel."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag
from tests.viewer.client import Api

START = pendulum.datetime(2024, 1, 1, tz="UTC")
DAG_ID = "t_viewer_published"
CSV = "a,b\n1,2\n"


def route(name: str, run_id: str, **extra: Any) -> str:
    return f"/notebook/dags/{DAG_ID}/{name}?" + urlencode({"run_id": run_id, "task_id": "nb", **extra})


@pytest.fixture(scope="module")
def published(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One successful run that writes an HTML report and collects out/a.csv (out/secret.txt is left behind)."""
    folder = tmp_path_factory.mktemp("published")
    nb = folder / "publish.ipynb"
    params = nbformat.v4.new_code_cell("label = 'x'")
    params.metadata["tags"] = ["parameters"]
    cells = [
        nbformat.v4.new_markdown_cell("# Regional summary heading"),
        params,
        nbformat.v4.new_code_cell("import os\nos.makedirs('out', exist_ok=True)\n"
                                  f"open('out/a.csv', 'w').write({CSV!r})\nopen('out/secret.txt', 'w').write('no')"),
        nbformat.v4.new_code_cell("shown_total = 40 + 2\nprint(f'total for {label}: {shown_total}')"),
    ]
    ks = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ks}), str(nb))
    with DAG(dag_id=DAG_ID, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"label": "Ada"}, report_formats=["html"],
                         collect_files=["out/*.csv"])
    res = run_dag(dag, logical_date=START)
    assert res["nb"].state == "success"
    output = Path(res["nb"].xcom["return_value"])
    return {"run_id": res["__run__"].xcom["run_id"], "output": output,
            "report": output.with_suffix(".html"), "csv": output.with_suffix(".files") / "out" / "a.csv"}


def _links(text: str) -> dict[str, str]:
    """The page's Report and file links: id or path -> root-relative URL."""
    found = {m.group(2): unescape(m.group(1)) for m in re.finditer(r"href='([^']*)' class='anp-report' id='([^']*)'",
                                                                    text)}
    found.update({m.group(2): unescape(m.group(1)) for m in re.finditer(
        r"href='([^']*)' class='anp-file' download><code>([^<]*)</code>", text)})
    toggle = re.search(r"href='([^']*)' id='anp-view-toggle'>([^<]*)<", text)
    if toggle:
        found[toggle.group(2)] = unescape(toggle.group(1))
    return found


def test_page_links_the_report_and_the_collected_file(api: Api, published: dict[str, Any]) -> None:
    page = api.get(route("view", published["run_id"]))
    assert page.status_code == 200, page.text[:300]
    links = _links(page.text)
    assert set(links) == {"anp-report-html", "out/a.csv", "Report view"}, links
    assert "format=html" in links["anp-report-html"] and "try_number=1" in links["anp-report-html"]
    assert "path=out%2Fa.csv" in links["out/a.csv"]
    assert "(8 bytes)" in page.text


def test_report_route_serves_the_html_report_as_a_sandboxed_attachment(api: Api, published: dict[str, Any]) -> None:
    link = _links(api.get(route("view", published["run_id"])).text)["anp-report-html"]
    got = api.get(link)
    assert got.status_code == 200, got.text[:300]
    assert got.content == published["report"].read_bytes()
    assert b"total for Ada: 42" in got.content
    assert got.headers["content-type"].startswith("text/html")
    assert got.headers["content-disposition"] == 'attachment; filename="t_viewer_published.nb.attempt-1.html"'
    assert got.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert got.headers["x-content-type-options"] == "nosniff"
    # A format the attempt did not publish is a 404, an unknown one too.
    for fmt in ("markdown", "pdf", "docx", "../x"):
        assert api.get(route("report", published["run_id"], format=fmt)).status_code == 404, fmt


def test_file_route_serves_listed_files_only(api: Api, published: dict[str, Any]) -> None:
    link = _links(api.get(route("view", published["run_id"])).text)["out/a.csv"]
    got = api.get(link)
    assert got.status_code == 200, got.text[:300]
    assert got.content == CSV.encode() == published["csv"].read_bytes()
    assert got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == 'attachment; filename="a.csv"'
    assert got.headers["content-security-policy"] == "sandbox; default-src 'none'"
    # out/secret.txt exists in the working folder but was not collected; the rest are not listed either.
    for path in ("out/other.csv", "out/secret.txt", "../x", "out/../out/a.csv", "./out/a.csv", "/etc/passwd",
                 "../publish.ipynb", ""):
        got = api.get(route("file", published["run_id"], path=path))
        assert got.status_code == 404, (path, got.status_code)
        assert "root:" not in got.text and CSV not in got.text


def test_recorded_locations_elsewhere_are_never_served(api: Api, published: dict[str, Any]) -> None:
    """A notebook whose metadata points a report or a file outside the attempt's own locations gets no link and
    no download for it: only the location derived from the output location is read."""
    output: Path = published["output"]
    original = output.read_bytes()
    nb = json.loads(original)
    meta = nb["metadata"]["airflow"]
    meta["reports"] = {"html": meta["reports"]["html"], "markdown": "/etc/passwd"}
    meta["files"] += [{"path": "passwd", "location": "/etc/passwd", "bytes": 1},
                      {"path": "../x", "location": str(output.with_suffix(".files") / ".." / "x"), "bytes": 1}]
    try:
        output.write_text(json.dumps(nb))
        page = api.get(route("view", published["run_id"]))
        assert set(_links(page.text)) == {"anp-report-html", "out/a.csv", "Report view"}
        for url in (route("report", published["run_id"], format="markdown"),
                    route("file", published["run_id"], path="passwd"),
                    route("file", published["run_id"], path="../x")):
            got = api.get(url)
            assert got.status_code == 404 and "root:" not in got.text, url
        assert api.get(route("file", published["run_id"], path="out/a.csv")).content == CSV.encode()
    finally:
        output.write_bytes(original)


def test_report_and_file_routes_require_a_user_who_may_read_the_dag(api: Api, published: dict[str, Any]) -> None:
    for url in (route("report", published["run_id"], format="html"),
                route("file", published["run_id"], path="out/a.csv")):
        got = api.get(url, user=None)
        assert got.status_code == 401 and CSV not in got.text, url
        refused = api.get(url, user="only:some_other_dag")
        assert refused.status_code == 403 and CSV not in refused.text, url
        assert api.get(url, user=f"only:{DAG_ID}").status_code == 200, url


def test_report_view_hides_code_and_the_injected_cell_but_keeps_outputs(api: Api, published: dict[str, Any]) -> None:
    full = api.get(route("view", published["run_id"]))
    link = _links(full.text)["Report view"]
    assert "view=report" in link
    full_notebook = api.frame(full).text
    assert "shown_total" in full_notebook and "celltag_injected-parameters" in full_notebook
    got = api.get(link)
    assert got.status_code == 200, got.text[:300]
    notebook = api.frame(got)
    assert "view=report" in str(notebook.url)  # the frame shows the report view
    text = notebook.text
    assert "total for Ada: 42" in text and "Regional summary heading" in text
    assert "shown_total" not in text and "os.makedirs" not in text
    assert "celltag_injected-parameters" not in text
    assert got.headers["content-security-policy"] == full.headers["content-security-policy"]
    assert notebook.headers["content-security-policy"] == api.frame(full).headers["content-security-policy"]
    assert "script-src 'none'" in notebook.headers["content-security-policy"]
    # The page still has its header and links; the toggle leads back to the full notebook.
    links = _links(got.text)
    assert {"anp-report-html", "out/a.csv", "Full notebook"} <= set(links)
    assert "view=" not in links["Full notebook"]


def test_report_view_of_a_failed_attempt_keeps_the_error(api: Api, airflow_db: Path, tmp_path: Path) -> None:
    """The failing cell is still framed (its index counts the injected cell that the report view leaves out),
    its traceback and papermill's banner shown; its code is not."""
    nb = tmp_path / "fails.ipynb"
    params = nbformat.v4.new_code_cell("limit = 0")
    params.metadata["tags"] = ["parameters"]
    cells = [params, nbformat.v4.new_code_cell("checked_rows = limit"),
             nbformat.v4.new_code_cell("raise ValueError(f'too many rows: {checked_rows}')")]
    ks = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": ks}), str(nb))
    with DAG(dag_id="t_viewer_published_fails", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), parameters={"limit": 101}, retries=0)
    res = run_dag(dag, logical_date=START)
    assert res["nb"].state == "failed"
    url = "/notebook/dags/t_viewer_published_fails/view?" + urlencode(
        {"run_id": res["__run__"].xcom["run_id"], "task_id": "nb", "view": "report"})
    full = api.frame(api.get(url.replace("&view=report", ""))).text
    assert "checked_rows" in full and "celltag_injected-parameters" in full
    got = api.get(url)
    assert got.status_code == 200, got.text[:300]
    assert "too many rows: 101" in got.text and "id='anp-failure'" in got.text
    assert "id='anp-files'" not in got.text and "class='anp-report'" not in got.text
    text = api.frame(got).text
    failing = text[text.index('id="cell-id=failing-cell"'):]
    next_cell = failing.find("jp-Cell ", 10)
    assert "ValueError" in (failing[:next_cell] if next_cell > 0 else failing)  # the framed cell is the raising one
    assert "celltag_airflow-failing-cell" in text and "celltag_papermill-error-cell-tag" in text
    assert "checked_rows = " not in text and "celltag_injected-parameters" not in text
