"""``NotebookNotifier``: tell people how a notebook task's attempt ended, by email and/or a JSON webhook."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier
from airflow.providers.common.compat.sdk import conf

from airflow_notebook_provider.notifications.outcome import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    Attachment,
    Outcome,
    default_body,
    default_subject,
    outcome_of,
    secret_cleaner,
)
from airflow_notebook_provider.notifications.send import (
    DEFAULT_SMTP_CONN_ID,
    NotificationError,
    addresses,
    post_webhook,
    send_email,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class NotebookNotifier(BaseNotifier):
    """Sends what a notebook task's attempt did when it ends: the DAG, task, run, attempt and state, the failing
    cell and its error (read from the attempt's output notebook), the viewer link, and the HTML report.

    Use it as ``on_failure_callback``, ``on_success_callback`` or ``on_retry_callback`` of a task (or a list of
    them), or as the callback of a DAG's deadline alert
    (``DeadlineAlert(..., callback=AsyncCallback(NotebookNotifier, kwargs={...}))``), where it describes the run.
    Secret parameter values are starred everywhere it sends them. A failure to send is logged with the connection
    and the fix, and never changes the task's state.

    :param to: Email recipients (a list, or one string separated by commas). Templated. No email without it.
    :param cc: Copy recipients. Templated.
    :param from_email: Sender; default: the SMTP connection's extra ``from_email``. Templated.
    :param smtp_conn_id: SMTP connection (the smtp provider's fields); default ``[email] email_conn_id``, then
        ``smtp_default``. Templated.
    :param http_conn_id: HTTP connection of a webhook that receives the facts as JSON (POST). Templated.
    :param webhook_endpoint: Path after the HTTP connection's URL (e.g. ``/hooks/airflow``). Templated.
    :param subject: Jinja template of the email's subject (the task's context, plus ``outcome``: the facts, e.g.
        ``{{ outcome.failed_cell.ename }}``); default: state, DAG.task, attempt, run and error. Templated.
    :param body: Jinja template of the text body (same variables); default: every fact and link. Templated.
    :param attach_report: Attach the attempt's HTML report (``report_formats=["html"]``) when it has one.
    :param max_attachment_bytes: Largest report attached (default 10 MiB); a larger one is linked instead.
    """

    template_fields = ("to", "cc", "from_email", "smtp_conn_id", "http_conn_id", "webhook_endpoint", "subject",
                       "body")

    def __init__(
        self,
        *,
        to: str | Sequence[str] | None = None,
        cc: str | Sequence[str] | None = None,
        from_email: str | None = None,
        smtp_conn_id: str | None = None,
        http_conn_id: str | None = None,
        webhook_endpoint: str = "",
        subject: str | None = None,
        body: str | None = None,
        attach_report: bool = True,
        max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # ``context``: given by a deadline alert (Airflow 3.1+)
        if not to and not http_conn_id:
            raise ValueError("NotebookNotifier needs `to` (email recipients) or `http_conn_id` (a webhook), or both.")
        if isinstance(max_attachment_bytes, bool) or not isinstance(max_attachment_bytes, int) or max_attachment_bytes < 0:
            raise ValueError(f"`max_attachment_bytes` must be a whole number of bytes, got {max_attachment_bytes!r}")
        self.to, self.cc, self.from_email = to, cc, from_email
        self.smtp_conn_id = smtp_conn_id or conf.get("email", "email_conn_id", fallback=None) or DEFAULT_SMTP_CONN_ID
        self.http_conn_id = http_conn_id
        self.webhook_endpoint = webhook_endpoint
        self.subject, self.body = subject, body
        self.attach_report, self.max_attachment_bytes = bool(attach_report), max_attachment_bytes
        # Rendering replaces the fields in place; one notifier object serves every task (and try) that names it.
        self._templates = {name: getattr(self, name) for name in self.template_fields}
        self.outcome: Outcome | None = None

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render the templates afresh for this context, with ``outcome`` (the facts) among the variables."""
        try:
            self.outcome = outcome_of(context, attach_report=self.attach_report,
                                      max_attachment_bytes=self.max_attachment_bytes, log=self.log)
        except Exception as exc:  # an unexpected context: say what is known rather than nothing
            self.log.exception("NotebookNotifier: could not gather the attempt's facts; the message says less.")
            ti = context.get("ti")
            self.outcome = Outcome(dag_id=str(getattr(ti, "dag_id", "?")), run_id=getattr(ti, "run_id", None),
                                   state="unknown", task_id=getattr(ti, "task_id", None),
                                   notes=[f"The attempt's facts could not be gathered ({type(exc).__name__})."])
        context["outcome"] = self.outcome  # type: ignore[typeddict-unknown-key]
        env = jinja_env or self.get_template_env(dag=context.get("dag"))
        for name, template in self._templates.items():
            try:
                setattr(self, name, self.render_template(template, context, env))
            except Exception as exc:  # noqa: BLE001 - a wrong template must not silence the notification
                default = name in ("subject", "body")
                self.log.error("NotebookNotifier: the template of `%s` failed (%s: %s); %s.", name,
                               type(exc).__name__, exc, "the default is used" if default else "it is used as written")
                setattr(self, name, None if default else template)

    def notify(self, context: Context) -> None:
        """Send; errors are logged, never raised (a notification must not fail the task it reports on)."""
        try:
            errors = self._send(context)
        except Exception:  # a bug here must not reach the task either
            self.log.exception("NotebookNotifier: nothing was sent.")
            return
        for error in errors:
            self.log.error("NotebookNotifier: %s", error)

    async def async_notify(self, context: Context) -> None:
        """Send from the triggerer (a deadline alert); an error is logged and raised, so that Airflow records the
        callback as failed."""
        errors = await asyncio.to_thread(self._send, context)
        for error in errors:
            self.log.error("NotebookNotifier: %s", error)
        if errors:
            raise NotificationError("; ".join(errors))

    def _send(self, context: Mapping[str, Any]) -> list[str]:
        """Send the email and post the webhook (each independent of the other); the errors, as messages."""
        if self.outcome is None:  # called without BaseNotifier's rendering (notify() called directly)
            self.render_template_fields(context)  # type: ignore[arg-type]
        outcome = self.outcome
        assert outcome is not None
        clean = secret_cleaner(context)
        subject = clean(str(self.subject) if self.subject else default_subject(outcome))
        body = clean(str(self.body) if self.body else default_body(outcome))
        errors: list[str] = []
        to, cc = addresses(self.to), addresses(self.cc)
        if to:
            attachment = outcome.attachment
            if attachment is not None:
                data = clean(attachment.data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
                attachment = Attachment(attachment.filename, data, attachment.content_type)
            try:
                send_email(str(self.smtp_conn_id), to=to, cc=cc, from_email=self.from_email or None, subject=subject,
                           body=body, attachment=attachment)
                self.log.info("NotebookNotifier: emailed %s through SMTP connection %r: %s", ", ".join(to + cc),
                              self.smtp_conn_id, subject)
            except Exception as exc:  # noqa: BLE001 - logged, never raised into the task
                errors.append(clean(_message(exc, "email", self.smtp_conn_id)))
        if self.http_conn_id:
            payload = {**outcome.to_json(), "subject": subject, "text": body}
            try:
                post_webhook(str(self.http_conn_id), endpoint=str(self.webhook_endpoint or ""),
                             payload=_cleaned(payload, clean))
                self.log.info("NotebookNotifier: posted to HTTP connection %r", self.http_conn_id)
            except Exception as exc:  # noqa: BLE001 - logged, never raised into the task
                errors.append(clean(_message(exc, "webhook", self.http_conn_id)))
        self.outcome = None
        return errors


def _message(exc: Exception, what: str, conn_id: Any) -> str:
    if isinstance(exc, NotificationError):
        return f"the {what} was not sent: {exc}"
    return f"the {what} was not sent (connection {conn_id!r}): {type(exc).__name__}: {exc}"


def _cleaned(value: Any, clean: Any) -> Any:
    """``value`` (JSON data) with every string cleaned of secrets."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {k: _cleaned(v, clean) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v, clean) for v in value]
    return value
