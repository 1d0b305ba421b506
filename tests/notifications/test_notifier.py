"""``NotebookNotifier`` tells people how an attempt ended: real DAG runs (``dag.test()`` runs task callbacks in the
task process, as a worker does), a real SMTP server (aiosmtpd) and a local webhook, the messages parsed and read as
a person or a receiving service would."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_notebook_provider.notifications.notebook import NotebookNotifier
from airflow_notebook_provider.operators.notebook import NotebookOperator
from tests.helpers import free_port, run_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")
SECRET = "n0tify-s3cr3t-7c6b5a"
BASE = "https://airflow.example.test"
FROM = "airflow@example.test"
SMTP_PASSWORD = "smtp-pa55word-31d2"


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.content)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@dataclass
class Webhook:
    url: str
    received: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (auth_data.login, auth_data.password) == (b"airflow", SMTP_PASSWORD.encode())
        box.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)  # a test server: no certificate to make
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/missing"):
                self.send_response(404)
            else:
                hook.received.append((self.path, data))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, mailbox: tuple[Mailbox, int], webhook: Webhook) -> None:
    box, port = mailbox
    box.messages.clear(), box.raw.clear(), box.logins.clear(), webhook.received.clear()
    plain = {"from_email": FROM, "disable_ssl": True, "disable_tls": True}
    monkeypatch.setenv("AIRFLOW_CONN_NB_SMTP", json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                                                           "login": "airflow", "password": SMTP_PASSWORD,
                                                           "extra": plain}))
    monkeypatch.setenv("AIRFLOW_CONN_NB_SMTP_DOWN", json.dumps({"conn_type": "smtp", "host": "127.0.0.1",
                                                                "port": free_port(), "extra": plain}))
    monkeypatch.setenv("AIRFLOW_CONN_NB_HOOK", json.dumps({"conn_type": "http", "host": webhook.url,
                                                           "extra": {"X-Team": "data"}}))
    monkeypatch.setenv("AIRFLOW_VAR_NOTIFY_SIG", SECRET)  # a name Airflow does not deem sensitive
    monkeypatch.setenv("AIRFLOW__NOTEBOOK__VIEWER_BASE_URL", BASE)


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def attachments(msg: EmailMessage) -> dict[str, bytes]:
    return {str(a.get_filename()): a.get_payload(decode=True) for a in msg.iter_attachments()}  # type: ignore[misc]


def test_a_failing_notebook_is_reported_on_each_attempt_by_email_and_webhook(airflow_db, connections, mailbox,
                                                                               webhook, make_notebook, capfd) -> None:
    nb = make_notebook(
        "#parameters\ntoken = ''\nday = ''",
        "print('loading', day, 'with', token)",
        "raise ValueError(f'no rows for {day} (token {token})')",
    )
    notifier = NotebookNotifier(
        to="oncall@example.test, data@example.test", smtp_conn_id="nb_smtp", http_conn_id="nb_hook",
        webhook_endpoint="/airflow",
        subject="{{ outcome.state }}: {{ ti.task_id }} try {{ ti.try_number }} cell "
                "{{ outcome.failed_cell.position }} {{ outcome.failed_cell.ename }} sig={{ var.value.notify_sig }}",
    )
    with DAG(dag_id="t_notify_fail", schedule=None, start_date=START) as dag:
        NotebookOperator(
            task_id="nb", notebook=str(nb), parameters={"token": "{{ var.value.notify_sig }}", "day": "{{ ds }}"},
            secret_parameters=["token"], report_formats=["html"], retries=1, retry_delay=dt.timedelta(0),
            on_retry_callback=notifier, on_failure_callback=notifier,
        )
    res = run_dag(dag, logical_date=START)
    log = "".join(capfd.readouterr())
    task, run_id = res["nb"], res["__run__"].xcom["run_id"]
    assert task.state == "failed" and task.try_number == 2, log[-3000:]
    box, _ = mailbox

    # One email per attempt, each rendered afresh from the templates.
    assert [m["Subject"] for m in box.messages] == [
        "up_for_retry: nb try 1 cell 4 ValueError sig=***",
        "failed: nb try 2 cell 4 ValueError sig=***",
    ]
    assert box.logins == ["airflow", "airflow"]  # the connection's login and password, accepted
    msg = box.messages[1]
    assert msg["From"] == FROM and msg["To"] == "oncall@example.test, data@example.test"
    body = body_of(msg)
    viewer = (f"{BASE}/notebook/dags/t_notify_fail/view?run_id={quote(run_id, safe='')}"
              "&task_id=nb&map_index=-1&try_number=2")
    for fact in ("DAG:      t_notify_fail", "Task:     nb", f"Run:      {run_id}", "Attempt:  2", "State:    failed",
                 "Failed at cell 4 (In [4]): ValueError: no rows for 2024-01-01 (token ***)",
                 f"Output notebook (viewer): {viewer}", "HTML report: attached"):
        assert fact in body, body
    files = attachments(msg)
    assert list(files) == ["attempt-2.html"]
    report = files["attempt-2.html"].decode()
    assert "ValueError" in report and "no rows for 2024-01-01" in report

    # The webhook got the same facts as JSON, once per attempt.
    assert [path for path, _ in webhook.received] == ["/airflow", "/airflow"]
    sent = json.loads(webhook.received[1][1])
    assert sent["dag_id"] == "t_notify_fail" and sent["task_id"] == "nb" and sent["run_id"] == run_id
    assert sent["try_number"] == 2 and sent["state"] == "failed" and sent["viewer_url"] == viewer
    assert sent["failed_cell"]["position"] == 4 and sent["failed_cell"]["ename"] == "ValueError"
    assert sent["failed_cell"]["evalue"] == "no rows for 2024-01-01 (token ***)"
    assert sent["task_url"] == f"{BASE}/dags/t_notify_fail/runs/{quote(run_id, safe='')}/tasks/nb?try_number=2"
    assert sent["report"].endswith("attempt-2.html") and sent["subject"] == msg["Subject"]
    assert json.loads(webhook.received[0][1])["try_number"] == 1

    # The secret is nowhere: not in the raw emails, their attachments, the JSON, or the task log.
    for raw, m in zip(box.raw, box.messages, strict=True):
        assert SECRET.encode() not in raw
        assert all(SECRET.encode() not in data for data in attachments(m).values())
    assert all(SECRET.encode() not in data for _, data in webhook.received)
    assert SECRET not in log


def test_a_success_links_an_oversize_report_and_a_send_failure_leaves_the_task_successful(
        airflow_db, connections, mailbox, webhook, make_notebook, capfd) -> None:
    nb = make_notebook("print('all good')")
    # A subject template that fails on a success (no failing cell): the default subject goes instead.
    good = NotebookNotifier(to=["team@example.test"], smtp_conn_id="nb_smtp", max_attachment_bytes=100,
                            subject="{{ outcome.failed_cell.ename }}")
    down = NotebookNotifier(to="team@example.test", smtp_conn_id="nb_smtp_down", http_conn_id="nb_hook",
                            webhook_endpoint="/missing")
    with DAG(dag_id="t_notify_ok", schedule=None, start_date=START) as dag:
        NotebookOperator(task_id="nb", notebook=str(nb), report_formats=["html"],
                         on_success_callback=[down, good])
    res = run_dag(dag, logical_date=START)
    log = "".join(capfd.readouterr())
    assert res["nb"].state == "success", log[-3000:]
    box, _ = mailbox
    (msg,) = box.messages
    assert msg["Subject"] == f"[Airflow] success: t_notify_ok.nb, attempt 1, run {res['__run__'].xcom['run_id']}"
    body = body_of(msg)
    assert "State:    success" in body and "Failed at cell" not in body
    assert f"HTML report: {BASE}/notebook/dags/t_notify_ok/report?" in body and "format=html" in body
    assert "over the attachment limit (100)" in body
    assert attachments(msg) == {}
    # The failures are in the log, naming the connection and the fix; the webhook's path is not shown.
    assert "NotebookNotifier: the template of `subject` failed (UndefinedError" in log and "the default is used" in log
    assert "NotebookNotifier: the email was not sent: SMTP connection 'nb_smtp_down' (127.0.0.1:" in log
    assert "Check its host and port" in log
    assert "NotebookNotifier: the webhook was not sent: HTTP connection 'nb_hook': POST http://127.0.0.1:" in log
    assert "answered 404" in log and "/missing" not in log


def test_a_deadline_alert_posts_the_run(airflow_db, connections, webhook) -> None:
    """A deadline alert awaits the notifier in the triggerer with the run's JSON as its context."""
    context = {"dag_run": {"dag_id": "t_late", "run_id": "scheduled__2024-01-01", "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2024-01-01T06:00:00+00:00"}}

    async def alert() -> None:
        await NotebookNotifier(http_conn_id="nb_hook", context=context)  # type: ignore[arg-type]

    asyncio.run(alert())
    (path, data), = webhook.received
    sent = json.loads(data)
    assert sent["dag_id"] == "t_late" and sent["run_id"] == "scheduled__2024-01-01"
    assert sent["state"] == "deadline missed" and sent["deadline"]["deadline_time"] == "2024-01-01T06:00:00+00:00"
    assert sent["run_url"] == f"{BASE}/dags/t_late/runs/scheduled__2024-01-01"
    assert "Deadline: 2024-01-01T06:00:00+00:00" in sent["text"]


def test_the_notifier_is_listed_by_airflow(airflow_db) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_db)}
    exe = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(exe), "providers", "notifications"], env=env, capture_output=True, text=True,
                         timeout=180)
    assert "airflow_notebook_provider.notifications.notebook.NotebookNotifier" in out.stdout, out.stderr[-2000:]
