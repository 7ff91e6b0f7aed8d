"""Notification channels and delivery logic, on plain values (no Flask, no database session).

The application side (sau.notify) owns the outbox table and decides who gets what; this package knows how to
render a French message (templates/), send it by e-mail over SMTP or by signed webhook, and when to retry.
Dependencies point one way: `sau` imports `notifications`, never the reverse.
"""
from notifications.backoff import next_attempt_delay
from notifications.email import EmailMessageSpec, SmtpSettings, build_email, message_id_for, send_email, thread_id_for
from notifications.render import Rendered, render
from notifications.webhook import WebhookResult, post_webhook, sign, verify

__all__ = [
    "EmailMessageSpec", "Rendered", "SmtpSettings", "WebhookResult", "build_email", "message_id_for",
    "next_attempt_delay", "post_webhook", "render", "send_email", "sign", "thread_id_for", "verify",
]
