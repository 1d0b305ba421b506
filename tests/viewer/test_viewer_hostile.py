"""A task, or a user allowed to write the DAG's XComs, writes what the viewer reads (the XCom ``notebook_record``, the
output notebook): the viewer reads only regular files under ``[notebook] output_base`` or
``viewer_allowed_locations`` with the task operator's connection, renders nothing larger than ``viewer_max_bytes``
(the download streams it), answers a slow store with a 502 in bounded time, and reads records as plain JSON.

Each test runs a real task (``dag.test()``), then plays the attacker on what it left (the XCom row in the metadata
DB, the files in output_base, objects in moto's S3) and opens the real api-server app as a user would.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import resource
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import nbformat
import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import run_dag, s3_client, start_moto
from tests.viewer.client import Api

START = pendulum.datetime(2024, 1, 1, tz="UTC")
# The refusal of a location outside the allowed ones, whatever is there.
NOT_SERVED = "which is not a file under [notebook] output_base or [notebook] viewer_allowed_locations"


def url(route: str, dag_id: str, run_id: str, task_id: str = "nb", **extra: Any) -> str:
    """A viewer URL as the viewer builds them: ``/notebook/dags/<dag_id>/<route>?run_id=…&task_id=…``."""
    return f"/notebook/dags/{quote(dag_id, safe='')}/{route}?" + urlencode({"run_id": run_id, "task_id": task_id,
                                                                            **extra})


def notebook_html(api: Api, page: Any) -> str:
    """What the user sees of the notebook: the sandboxed frame's document when the page frames it, else the page."""
    found = re.search(r"<iframe[^>]*\ssrc='([^']*)'", page.text)
    if not found:
        return str(page.text)
    frame = api.get(html.unescape(found.group(1)))
    assert frame.status_code == 200, frame.text[:500]
    return str(frame.text)


def one_task(dag_id: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=dag_id, schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", **kwargs)
    return dag


def set_record(dag_id: str, run_id: str, value: Any, *, raw: bool = False) -> None:
    """Overwrite the task's XCom ``notebook_record`` as a user with XCom write access (or another task) can: the
    value as Airflow stores it, or ``raw``: exactly this column value."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    stored = value if raw else XComModel.serialize_value(value)
    with create_session() as session:
        done = session.execute(update(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == "nb",
            XComModel.key == "notebook_record").values(value=stored))
        assert done.rowcount == 1


class Within:
    """Run ``call`` in a thread and wait ``seconds`` at most: ``hung`` if it has not returned by then."""

    def __init__(self, call: Callable[[], Any], seconds: float) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()
        self.thread.join(seconds)
        self.hung = self.thread.is_alive()
        if self.error is not None:
            raise self.error

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc


@pytest.fixture
def only_output_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """The viewer may read under output_base only (the suite also allows the temporary folder)."""
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_ALLOWED_LOCATIONS", "")


@pytest.fixture(scope="module")
def local_run(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One successful task whose notebook is at the default place under output_base."""
    folder = tmp_path_factory.mktemp("hostile")
    nb = folder / "in.ipynb"
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print('the real ' + 'notebook')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), str(nb))
    res = run_dag(one_task("t_hostile_local", notebook=str(nb)))
    assert res["nb"].state == "success"
    output = Path(res["nb"].xcom["return_value"])
    assert output.is_relative_to(airflow_db / "notebook_outputs")
    return {"dag_id": "t_hostile_local", "run_id": res["__run__"].xcom["run_id"], "output": output,
            "record": res["nb"].xcom["notebook_record"], "bytes": output.read_bytes()}


@pytest.fixture
def restore(local_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The run, put back as it was after the test (record and notebook)."""
    yield local_run
    set_record(local_run["dag_id"], local_run["run_id"], local_run["record"])
    out: Path = local_run["output"]
    if out.is_symlink() or out.exists():
        if out.is_dir() and not out.is_symlink():
            out.rmdir()
        else:
            out.unlink()
    out.write_bytes(local_run["bytes"])


def test_the_unchanged_run_is_served(api: Api, restore: dict[str, Any], only_output_base: None) -> None:
    page = api.get(url("view", restore["dag_id"], restore["run_id"]))
    assert page.status_code == 200, page.text[:500]
    assert "the real notebook" in notebook_html(api, page)


def test_records_pointing_outside_the_allowed_locations_are_refused_alike(
        api: Api, restore: dict[str, Any], only_output_base: None, tmp_path: Path) -> None:
    """/dev/zero, /etc/passwd, a missing file, ``~`` and a relative path: the same page, nothing read or looked at
    (an attacker learns nothing about what is there). A copy of the real notebook outside output_base too."""
    copy = tmp_path / "copy.ipynb"
    copy.write_bytes(restore["bytes"])  # names the right attempt: only where it is keeps it from being served
    pages = {}
    for location in ("/dev/zero", "/etc/passwd", "/no/such/folder/x.ipynb", str(copy), "~/x.ipynb",
                     "notebook_outputs/x.ipynb", f"{restore['output'].parent}/../../../../../../etc/passwd"):
        set_record(restore["dag_id"], restore["run_id"], {**restore["record"], "location": location})
        started = time.monotonic()
        for route in ("view", "download"):
            page = api.get(url(route, restore["dag_id"], restore["run_id"]))
            assert page.status_code == 404, (location, route, page.status_code, page.text[:300])
            assert NOT_SERVED in page.text and "root:" not in page.text, (location, page.text[:500])
            assert "the real notebook" not in page.text
            pages[(location, route)] = page.text.replace(html.escape(location, quote=True), "LOCATION")
        assert time.monotonic() - started < 120  # /dev/zero is never read
    assert len({text for (_, route), text in pages.items() if route == "view"}) == 1, "pages differ"
    assert len({text for (_, route), text in pages.items() if route == "download"}) == 1, "pages differ"


def test_a_symlink_out_of_output_base_is_refused_like_any_outside_path(
        api: Api, restore: dict[str, Any], only_output_base: None, tmp_path: Path) -> None:
    out: Path = restore["output"]
    outside = tmp_path / "outside.ipynb"
    outside.write_bytes(restore["bytes"].replace(b"the real notebook", b"read through a link"))
    out.unlink()
    out.symlink_to(outside)
    view = api.get(url("view", restore["dag_id"], restore["run_id"]))
    assert view.status_code == 404 and NOT_SERVED in view.text, view.text[:500]
    assert "read through a link" not in view.text and str(outside) not in view.text  # the target is not named
    download = api.get(url("download", restore["dag_id"], restore["run_id"]))
    assert download.status_code == 404 and b"read through a link" not in download.content
    # The same page as for a path outside that holds nothing.
    out.unlink()
    out.symlink_to(tmp_path / "nothing-here.ipynb")
    again = api.get(url("view", restore["dag_id"], restore["run_id"]))
    assert again.status_code == 404 and again.text == view.text


@pytest.mark.parametrize("kind", ["fifo", "folder", "socket", "device link"])
def test_only_regular_files_are_read(api: Api, restore: dict[str, Any], only_output_base: None, kind: str) -> None:
    """At the attempt's own location, under output_base: a FIFO (no writer: reading it would block forever), a
    folder, a socket, a link to /dev/zero. Each gets a page at once."""
    out: Path = restore["output"]
    out.unlink()
    server = None
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    elif kind == "socket":  # bound at a short path (AF_UNIX limits its length), then moved into place
        short = Path(tempfile.mkdtemp(prefix="anp-sock-"))
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(short / "s"))
        os.rename(short / "s", out)
        short.rmdir()
    else:
        out.symlink_to("/dev/zero")
    try:
        for route in ("view", "download"):
            call = Within(lambda r=route: api.get(url(r, restore["dag_id"], restore["run_id"])), 60)
            if call.hung and kind == "fifo":
                with open(out, "wb"):  # a writer, so that the blocked reader returns and the test can end
                    pass
                call.thread.join(30)
            assert not call.hung, f"the viewer hung on a {kind}"
            page = call.result
            assert page.status_code == 404, (kind, route, page.status_code, page.text[:300])
            expected = NOT_SERVED if kind == "device link" else "not a regular file"
            assert expected in page.text, (kind, page.text[:500])
    finally:
        if server is not None:
            server.close()
        if out.is_symlink() or out.exists():
            out.rmdir() if out.is_dir() and not out.is_symlink() else out.unlink()


def test_a_record_naming_another_file_of_output_base_is_not_read(
        api: Api, restore: dict[str, Any], only_output_base: None) -> None:
    """Under output_base but not where this task writes (another DAG's notebook, with a forged identity): refused
    before it is opened."""
    other = restore["output"].parents[3] / "other_dag" / "r" / "nb" / "attempt-1.ipynb"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(restore["bytes"].replace(b"the real notebook", b"another dag's notebook"))
    try:
        set_record(restore["dag_id"], restore["run_id"], {**restore["record"], "location": str(other)})
        page = api.get(url("view", restore["dag_id"], restore["run_id"]))
        assert page.status_code == 404 and "another dag" not in page.text
        assert "neither the default output of that attempt nor the task&#x27;s output_notebook" in page.text
    finally:
        other.unlink()


def test_serialized_classes_and_non_records_in_xcom_are_no_record(api: Api, restore: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    """The api-server reads the XCom record as plain JSON: a serde-encoded class is not instantiated (nor turned
    into a record), a list or a number is no record, a field of the wrong type makes it no record. The viewer then
    finds the attempt by its record file under output_base, as for an attempt XCom has forgotten."""
    forged = tmp_path / "forged.ipynb"  # allowed by the suite's viewer_allowed_locations: only the record is wrong
    forged.write_bytes(restore["bytes"].replace(b"the real notebook", b"FORGED"))
    location = str(forged)
    for value in (
        json.dumps({"__classname__": "builtins.dict", "__version__": 1,
                    "__data__": {"location": location, "conn_id": None, "try_number": 1}}),
        json.dumps({"__classname__": "airflow.sdk.definitions.asset.Asset", "__version__": 1,
                    "__data__": {"name": "x", "uri": "s3://x/y", "group": "asset", "extra": {}, "watchers": []}}),
        json.dumps({"location": location, "conn_id": None, "try_number": 1, "__var": {"location": location}}),
        json.dumps([location]),
        json.dumps(7),
        json.dumps({"location": location, "conn_id": None, "try_number": "1; drop"}),
        json.dumps({"location": location, "conn_id": ["a"], "try_number": 1}),
        "not json {",
    ):
        set_record(restore["dag_id"], restore["run_id"], value, raw=True)
        page = api.get(url("view", restore["dag_id"], restore["run_id"]))
        assert page.status_code == 200, (value, page.status_code, page.text[:300])
        shown = notebook_html(api, page)
        assert "the real notebook" in shown and "FORGED" not in shown, value
    # JSON text or an already decoded object: both are read (and followed).
    for stored in (json.dumps({**restore["record"], "location": location}), {**restore["record"], "location": location}):
        set_record(restore["dag_id"], restore["run_id"], stored, raw=True)
        page = api.get(url("view", restore["dag_id"], restore["run_id"]))
        assert page.status_code == 404 and "neither the default output" in page.text  # read, then refused


def test_metadata_fields_of_the_wrong_type_give_a_clear_page(api: Api, restore: dict[str, Any]) -> None:
    out: Path = restore["output"]
    nb = json.loads(restore["bytes"])
    pm = nb["metadata"]["papermill"]
    pm.update(duration="abc", parameters=["a", "list"], start_time=5, end_time={"x": 1}, input_path=3,
              exception="yes")
    # Free-form metadata (the notebook format does not type it): the page reads it with the types it expects.
    nb["cells"][-1]["metadata"]["papermill"].update(status="failed", duration="slow", start_time=[1])
    nb["cells"][-1]["metadata"]["tags"] = "injected-parameters"
    nb["metadata"]["airflow_notebook"] = {"secret_parameters": ["x"], "input_sha256": 12}
    out.write_text(json.dumps(nb))
    page = api.get(url("view", restore["dag_id"], restore["run_id"]))
    assert page.status_code == 200, page.text[:1000]
    assert "the real notebook" in notebook_html(api, page)
    assert re.search(r"<th>Parameters</th>\s*<td>none</td>", page.text)  # a list is no parameters

    for bad in ("1; drop", "1", 1.0, True, None):
        nb = json.loads(restore["bytes"])
        nb["metadata"]["airflow"]["try_number"] = bad
        out.write_text(json.dumps(nb))
        for route in ("view", "download"):
            page = api.get(url(route, restore["dag_id"], restore["run_id"]))
            assert page.status_code == 404 and "Not an output notebook" in page.text, (bad, page.text[:500])
    nb = json.loads(restore["bytes"])
    nb["metadata"]["airflow"] = ["not", "an", "object"]
    out.write_text(json.dumps(nb))
    page = api.get(url("view", restore["dag_id"], restore["run_id"]))
    assert page.status_code == 404 and "Not an output notebook" in page.text


# -- size ----------------------------------------------------------------------------------------------------


def write_big_notebook(small: bytes, path: Path, size: int) -> str:
    """``small`` (an output notebook as written, Jupyter's layout) with a cell whose output has ``size`` bytes of
    text, written as Jupyter would write it, in chunks: never whole in memory. Returns its sha256."""
    nb = json.loads(small)
    cell = nbformat.v4.new_code_cell("print('many lines')", id="big")
    cell["outputs"] = [nbformat.v4.new_output("stream", name="stdout", text=["FIRST\n", "LAST\n"])]
    cell["execution_count"] = 9
    nb["cells"].append(cell)
    text = nbformat.v4.nbjson.writes(nbformat.from_dict(nb)) + "\n"
    marker = next(line for line in text.splitlines(keepends=True) if '"FIRST\\n",' in line)
    head, tail = text.split(marker)
    indent = marker[: marker.index('"')]
    line = f'{indent}"{"x" * 90}\\n",\n'.encode()
    block = line * 10_000
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for part in (head.encode(), marker.encode()):
            fh.write(part)
            digest.update(part)
        written = len(head) + len(marker)
        while written < size:
            fh.write(block)
            digest.update(block)
            written += len(block)
        fh.write(tail.encode())
        digest.update(tail.encode())
    return digest.hexdigest()


def test_a_300_mb_notebook_is_offered_as_a_download_that_streams(api: Api, restore: dict[str, Any]) -> None:
    out: Path = restore["output"]
    big = out.with_name("big.tmp")
    try:
        digest = write_big_notebook(restore["bytes"], big, 300 * 1024 * 1024)
        big.replace(out)
        size = out.stat().st_size
        assert size > 300 * 1024 * 1024
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

        page = api.get(url("view", restore["dag_id"], restore["run_id"]))
        assert page.status_code == 200, page.text[:500]
        assert "too large to show" in page.text and "viewer_max_bytes" in page.text and str(size) in page.text
        link = re.search(r"<a href='([^']*)' id='anp-download'>Download .ipynb</a>", page.text)
        assert link, page.text[:2000]

        path = html.unescape(link.group(1))
        received, chunks = hashlib.sha256(), 0
        with api.client.stream("GET", path, headers={"Authorization": f"Bearer {api.token('admin')}"}) as response:
            assert response.status_code == 200
            assert response.headers["content-disposition"].endswith('.attempt-1.ipynb"')
            for chunk in response.iter_bytes():
                received.update(chunk)
                chunks += 1
        assert received.hexdigest() == digest and chunks > 10
        grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        assert grew_mb < 100, f"peak RSS grew by {grew_mb:.0f} MB while serving a {size / 2**20:.0f} MB notebook"

        # A file of that size that names another attempt is not downloaded.
        with out.open("r+b") as fh:
            fh.seek(-4096, os.SEEK_END)
            tail = fh.read()
            fh.seek(-4096, os.SEEK_END)
            fh.write(tail.replace(b'"try_number": 1', b'"try_number": 7'))
        refused = api.get(path)
        assert refused.status_code == 404 and "another task attempt" in refused.text
    finally:
        big.unlink(missing_ok=True)


# -- object storage --------------------------------------------------------------------------------------------


def forged(real: bytes, text: bytes) -> bytes:
    return real.replace(b"the real ' + 'notebook", b"").replace(b"the real notebook", text)


def test_s3_other_bucket_and_the_records_connection_are_not_used(
        api: Api, moto: Any, make_notebook: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_ALLOWED_LOCATIONS", "s3://hostile-ok")
    s3 = s3_client(moto.endpoint)
    for bucket in ("hostile-ok", "hostile-other"):
        s3.create_bucket(Bucket=bucket)
    nb = make_notebook("print('the real ' + 'notebook')")
    res = run_dag(one_task("t_hostile_s3", notebook=str(nb), output_notebook="s3://hostile-ok/out.ipynb",
                           conn_id="moto_s3"))
    run_id, record = res["__run__"].xcom["run_id"], res["nb"].xcom["notebook_record"]
    real = s3.get_object(Bucket="hostile-ok", Key="out.ipynb")["Body"].read()
    assert api.get(url("view", "t_hostile_s3", run_id)).status_code == 200

    # Another bucket, holding a notebook that names this attempt; and keys that climb out of the prefix.
    s3.put_object(Bucket="hostile-other", Key="out.ipynb", Body=forged(real, b"from another bucket"))
    for location in ("s3://hostile-other/out.ipynb", "s3://moto_s3@hostile-other/out.ipynb",
                     "s3://hostile-ok/../hostile-other/out.ipynb", "s3://hostile-ok.evil/out.ipynb"):
        set_record("t_hostile_s3", run_id, {**record, "location": location})
        for route in ("view", "download"):
            page = api.get(url(route, "t_hostile_s3", run_id))
            assert page.status_code == 404 and NOT_SERVED in page.text, (location, route, page.text[:300])
            assert b"from another bucket" not in page.content

    # The record names another connection (another store that holds a forged notebook at the same key): the viewer
    # reads with the task's own connection.
    other = start_moto(tmp_path)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_HOSTILE_S3", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": other.endpoint, "region_name": "us-east-1"}}))
        s3_other = s3_client(other.endpoint)
        s3_other.create_bucket(Bucket="hostile-ok")
        s3_other.put_object(Bucket="hostile-ok", Key="out.ipynb", Body=forged(real, b"FORGED by the record"))
        for location in ("s3://hostile-ok/out.ipynb", "s3://hostile_s3@hostile-ok/out.ipynb"):
            set_record("t_hostile_s3", run_id, {**record, "location": location, "conn_id": "hostile_s3"})
            page = api.get(url("view", "t_hostile_s3", run_id))
            assert page.status_code == 200, page.text[:500]
            shown = notebook_html(api, page)
            assert "FORGED" not in shown and "the real notebook" in shown
            assert api.get(url("download", "t_hostile_s3", run_id)).content == real
    finally:
        other.stop()


class SlowProxy:
    """A TCP proxy on 127.0.0.1 in front of a server; while ``slow`` is set it holds every response (the request
    still reaches the server), as a store that stopped answering would. Stopped (sockets closed) by ``stop``."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.slow, self.stopped = threading.Event(), threading.Event()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self.upstream, timeout=10)
            self.sockets += [client, upstream]
            for src, dst, held in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(src, dst, held), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, held: bool) -> None:
        try:
            src.settimeout(None)
            while not self.stopped.is_set():
                data = src.recv(65536)
                if not data:
                    break
                while held and self.slow.is_set() and not self.stopped.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopped.set()
        for s in [self.server, *self.sockets]:
            try:
                s.close()
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)


def test_a_slow_store_gets_a_502_in_bounded_time(api: Api, moto: Any, make_notebook: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = SlowProxy(moto.endpoint)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SLOW_S3", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": proxy.endpoint, "region_name": "us-east-1"}}))
        monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_ALLOWED_LOCATIONS", "s3://hostile-slow")
        monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_READ_TIMEOUT", "1")
        s3_client(moto.endpoint).create_bucket(Bucket="hostile-slow")
        nb = make_notebook("print('stored ' + 'behind a proxy')")
        res = run_dag(one_task("t_hostile_slow", notebook=str(nb), output_notebook="s3://hostile-slow/out.ipynb",
                               conn_id="slow_s3"))
        run_id = res["__run__"].xcom["run_id"]
        assert res["nb"].state == "success"
        page = api.get(url("view", "t_hostile_slow", run_id))
        assert page.status_code == 200 and "stored behind a proxy" in notebook_html(api, page)

        proxy.slow.set()  # the store now takes for ever to answer
        for route in ("view", "download"):
            started = time.monotonic()
            # 90 s: far above what the viewer takes (about 5 s with a 1 s read timeout); a liveness bound only.
            call = Within(lambda r=route: api.get(url(r, "t_hostile_slow", run_id)), 90)
            if call.hung:
                proxy.stop()  # let the request end so the test can
                call.thread.join(60)
            assert not call.hung, f"/{route} was still waiting for the store after 90 s"
            page = call.result
            print(f"/{route} answered {page.status_code} after {time.monotonic() - started:.1f} s")
            assert page.status_code == 502, page.text[:500]
            assert "Output notebook unreachable" in page.text and "s3://hostile-slow/out.ipynb" in page.text
            assert "viewer_read_timeout" in page.text and "Traceback" not in page.text
    finally:
        proxy.stop()


# -- rendering --------------------------------------------------------------------------------------------------


def test_the_render_cache_is_bounded_in_bytes_and_a_hit_does_not_wait_for_a_render(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendered pages are kept within ``[notebook] viewer_cache_bytes``; a page already rendered is served while
    another request holds the renderer (a slow render of a big notebook does not stall every viewer)."""
    from airflow_notebook_provider.viewer import page

    budget = 600_000  # about two pages of 280 kB
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_CACHE_BYTES", str(budget))
    notebooks = [nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"print('page {i}')")]) for i in range(5)]
    data = [json.dumps(nb).encode() for nb in notebooks]
    bodies = [page.render_notebook(json.loads(d), None, d) for d in data]
    assert sum(len(b) for b in bodies) > budget  # more than the budget was rendered
    assert sum(len(b) for b in page._cache.values()) <= budget
    assert bodies[-1] in page._cache.values()  # the latest is kept

    with page._render_lock:  # another request is rendering
        call = Within(lambda: page.render_notebook(json.loads(data[-1]), None, data[-1]), 30)
    assert not call.hung, "a cached page waited for another request's render"
    assert call.result == bodies[-1]
