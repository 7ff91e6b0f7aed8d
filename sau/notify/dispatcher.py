"""The dispatcher job: deliver the outbox's due rows, one transaction per row.

At-least-once: a row is marked sent only after the channel accepted it, in the same transaction as its
delivery log. A crash between the two re-sends that one message later, with the same idempotency key (e-mail
`Message-ID`, webhook `X-SAU-Delivery`), so the duplicate is limited to the message in flight and recognisable.
Several dispatchers on PostgreSQL share the work: each locks the row it is delivering
(`SELECT … FOR UPDATE SKIP LOCKED`) and the others skip it. A failed attempt is retried with exponential
backoff; after NOTIFY_MAX_ATTEMPTS attempts the row is dead (dead-letter), listed for admins who may retry it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from notifications import (
    EmailMessageSpec,
    SmtpSettings,
    build_email,
    message_id_for,
    next_attempt_delay,
    post_webhook,
    render,
    send_email,
    thread_id_for,
)
from notifications.email import mail_domain
from sau.extensions import db, on_postgresql
from sau.notify.models import CHANNEL_EMAIL, CHANNEL_WEBHOOK, DEAD, PENDING, SENT, DeliveryAttempt, Notification

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "NOTIFY_MAX_ATTEMPTS": 8,
    "NOTIFY_BACKOFF_SECONDS": 60,
    "NOTIFY_BACKOFF_MAX_SECONDS": 6 * 3600,
    "NOTIFY_BATCH_SIZE": 500,
    "NOTIFY_WEBHOOK_TIMEOUT": 10,
    "SMTP_TIMEOUT": 10,
}


def setting(name: str) -> Any:
    return current_app.config.get(name, DEFAULTS.get(name))


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str | None = None
    status_code: int | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class DispatchResult:
    sent: int = 0
    failed: int = 0
    dead: int = 0


def smtp_settings() -> SmtpSettings | None:
    """The SMTP settings, or None when SMTP_HOST is unset (development: e-mails go to the log)."""
    cfg = current_app.config
    if not cfg.get("SMTP_HOST"):
        return None
    return SmtpSettings(
        host=cfg["SMTP_HOST"], port=int(cfg.get("SMTP_PORT") or 25), username=cfg.get("SMTP_USERNAME"),
        password=cfg.get("SMTP_PASSWORD"), security=(cfg.get("SMTP_SECURITY") or "none").lower(),
        timeout=float(setting("SMTP_TIMEOUT")), ca_file=cfg.get("SMTP_CA_FILE") or None,
    )


def email_for(notification: Notification, now: datetime) -> Any:
    """The e-mail of `notification`, identical on every attempt except its Date header."""
    sender = current_app.config["MAIL_FROM"]
    domain = mail_domain(sender)
    rendered = render(notification.kind, notification.payload)
    reference = notification.payload.get("reference")
    return build_email(EmailMessageSpec(
        sender=sender, to=notification.email or "", subject=notification.subject, text=rendered.text,
        html=rendered.html, message_id=message_id_for(notification.idempotency_key, domain), sent_at=now,
        thread_id=thread_id_for(reference, domain) if reference else None,
        headers={"X-SAU-Reference": reference} if reference else {},
    ))


def _deliver(notification: Notification, now: datetime) -> Outcome:
    started = time.monotonic()
    try:
        if notification.channel == CHANNEL_EMAIL:
            message = email_for(notification, now)
            settings = smtp_settings()
            if settings is None:
                log.info("E-mail (SMTP_HOST non défini, non envoyé) à %s : %s\n%s", message["To"], message["Subject"],
                         message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            else:
                send_email(settings, message)
            return Outcome(True, duration_ms=int((time.monotonic() - started) * 1000))
        if notification.channel == CHANNEL_WEBHOOK:
            endpoint = notification.endpoint
            if endpoint is None or not endpoint.is_active:
                return Outcome(False, "point de terminaison désactivé ou supprimé")
            result = post_webhook(endpoint.url, endpoint.secret, notification.payload["body"],
                                  delivery_id=notification.idempotency_key, event=notification.event_type,
                                  timeout=float(setting("NOTIFY_WEBHOOK_TIMEOUT")))
            return Outcome(result.ok, result.error, result.status_code, result.duration_ms)
        return Outcome(False, f"canal inconnu : {notification.channel}")
    except Exception as exc:  # noqa: BLE001 — a channel failure (network, SMTP refusal, template) is retried, never fatal
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:2000], duration_ms=int((time.monotonic() - started) * 1000))


def _claim(now: datetime) -> Notification | None:
    stmt = (
        sa.select(Notification)
        .where(Notification.status == PENDING, Notification.next_attempt_at <= now,
               Notification.channel.in_((CHANNEL_EMAIL, CHANNEL_WEBHOOK)))
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(1)
    )
    if on_postgresql():
        stmt = stmt.with_for_update(skip_locked=True)
    return db.session.scalars(stmt).first()


def deliver_one(notification: Notification, now: datetime) -> Outcome:
    """Attempt `notification` now and record the outcome on the row and in the delivery log (not committed)."""
    notification.attempts += 1
    outcome = _deliver(notification, now)
    db.session.add(DeliveryAttempt(notification_id=notification.id, attempt=notification.attempts, at=now,
                                   is_success=outcome.ok, status_code=outcome.status_code, error=outcome.error,
                                   duration_ms=outcome.duration_ms))
    if outcome.ok:
        notification.status, notification.sent_at, notification.last_error = SENT, now, None
    else:
        notification.last_error = outcome.error
        if notification.attempts >= int(setting("NOTIFY_MAX_ATTEMPTS")):
            notification.status = DEAD
            log.warning("notification %s dead after %s attempts: %s", notification.id, notification.attempts,
                        outcome.error)
        else:
            notification.next_attempt_at = now + next_attempt_delay(
                notification.attempts, base_seconds=float(setting("NOTIFY_BACKOFF_SECONDS")),
                max_seconds=float(setting("NOTIFY_BACKOFF_MAX_SECONDS")))
    return outcome


def dispatch_due(now: datetime, *, limit: int | None = None) -> DispatchResult:
    """Deliver the rows due at `now` (at most `limit`), committing after each one. Returns the counts."""
    limit = int(limit if limit is not None else setting("NOTIFY_BATCH_SIZE"))
    sent = failed = dead = 0
    seen: set[int] = set()
    db.session.commit()  # start from a clean transaction: each row is its own
    from sau.notify.operations import expand_fanouts

    expand_fanouts()  # new requests' notifications first (sau.notify.models.NotificationFanout)
    for _ in range(limit):
        notification = _claim(now)
        if notification is None or notification.id in seen:
            db.session.rollback()
            break
        seen.add(notification.id)
        outcome = deliver_one(notification, now)
        if outcome.ok:
            sent += 1
        elif notification.status == DEAD:
            dead += 1
        else:
            failed += 1
        db.session.commit()
    return DispatchResult(sent, failed, dead)
