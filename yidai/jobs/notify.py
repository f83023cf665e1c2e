"""Failure alerts of the DAGs: an Airflow notifier posting to a webhook and/or sending mail.

:class:`FailureNotifier` is attached to every task of every Yidai DAG
(``on_failure_callback``; it runs once a task has failed for good, after its retries).  It is
off by default: with neither ``YIDAI_ALERT_WEBHOOK_URL`` nor ``YIDAI_ALERT_SMTP_HOST`` set it
does nothing.  The message names the DAG, the task, the run, the try and the error (its
type and first line, credentials in URLs masked); never a parameter value, a row or a
secret.  A notification that cannot be delivered is logged, never raised (the task's own
failure stays the one reported).
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import urllib.request
from collections.abc import Mapping
from datetime import date
from email.message import EmailMessage
from typing import Any

from airflow.sdk import BaseNotifier

from yidai.core.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: ``scheme://user:password@host`` -> ``scheme://***@host`` in error texts.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")
MAX_ERROR_CHARS = 500


def _error_text(exception: object) -> str:
    if exception is None:
        return "(no exception: failed or timed out outside the task's code)"
    text = (
        f"{type(exception).__name__}: {exception}"
        if isinstance(exception, BaseException)
        else str(exception)
    )
    first = text.strip().splitlines()[0] if text.strip() else text
    masked = _CREDENTIALS.sub(r"\g<scheme>***@", first)
    return masked[:MAX_ERROR_CHARS]


def failure_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's JSON payload, from an Airflow task context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    logical = context.get("logical_date")
    return {
        "source": "yidai",
        "event": "task_failed",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "logical_date": logical.isoformat() if isinstance(logical, date) else None,
        "try_number": getattr(ti, "try_number", None),
        "error": _error_text(context.get("exception")),
    }


def send_alert(message: Mapping[str, Any], settings: Settings | None = None) -> list[str]:
    """Deliver ``message`` to every configured channel; returns the channels that took it."""
    settings = settings or get_settings()
    delivered = []
    if settings.alert_webhook_url is not None:
        try:
            _post(settings.alert_webhook_url.get_secret_value(), message, settings)
            delivered.append("webhook")
        except OSError as exc:
            log.error("failure alert not delivered to the webhook: %s", _error_text(exc))
    if settings.alert_smtp_host:
        try:
            _mail(message, settings)
            delivered.append("smtp")
        except (OSError, smtplib.SMTPException) as exc:
            log.error("failure alert not delivered by mail: %s", _error_text(exc))
    return delivered


def _post(url: str, message: Mapping[str, Any], settings: Settings) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(message).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "yidai-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=settings.alert_timeout_seconds) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def _mail(message: Mapping[str, Any], settings: Settings) -> None:
    recipients = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
    if not recipients or not settings.alert_email_from:
        raise OSError("YIDAI_ALERT_EMAIL_FROM and YIDAI_ALERT_EMAIL_TO are needed for mail")
    email = EmailMessage()
    email["Subject"] = f"[yidai] {message['dag_id']}.{message['task_id']} failed"
    email["From"] = settings.alert_email_from
    email["To"] = ", ".join(recipients)
    email.set_content(json.dumps(message, indent=2))
    host, port = settings.alert_smtp_host or "", settings.alert_smtp_port
    with smtplib.SMTP(host, port, timeout=settings.alert_timeout_seconds) as smtp:
        if settings.alert_smtp_starttls:
            smtp.starttls()
        if settings.alert_smtp_user:
            password = settings.alert_smtp_password
            smtp.login(settings.alert_smtp_user, password.get_secret_value() if password else "")
        smtp.send_message(email)


class FailureNotifier(BaseNotifier):
    """Airflow notifier for a task's final failure (off unless a channel is configured)."""

    def notify(self, context: Any) -> None:
        message = failure_message(context)
        delivered = send_alert(message)
        if delivered:
            log.info("failure alert sent (%s): %s.%s", ", ".join(delivered),
                     message["dag_id"], message["task_id"])  # fmt: skip


def failure_callbacks() -> list[BaseNotifier]:
    """What every Yidai DAG passes as its tasks' ``on_failure_callback``."""
    return [FailureNotifier()]
