"""The transactional outbox (`notifications`), users' preferences, organisations' webhook endpoints and the
delivery log."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Organisation

CHANNEL_EMAIL = "email"
CHANNEL_INAPP = "inapp"
CHANNEL_WEBHOOK = "webhook"
CHANNELS = (CHANNEL_EMAIL, CHANNEL_INAPP, CHANNEL_WEBHOOK)

PENDING = "pending"
SENT = "sent"
DEAD = "dead"
STATUSES = {PENDING: "En attente", SENT: "Envoyée", DEAD: "Abandonnée"}

PREF_EMAIL = "email"  # e-mail and in-app (the default)
PREF_INAPP = "inapp"  # in-app only


class Notification(db.Model):
    """One message to deliver on one channel to one recipient, written in the same transaction as the change
    that causes it (a rolled-back change leaves no row) and delivered after commit by the dispatcher."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable per notification: the e-mail Message-ID and the webhook delivery id are derived from it.
    idempotency_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    kind: Mapped[str] = mapped_column(sa.String(40))  # the message template, e.g. "request_received"
    event_type: Mapped[str] = mapped_column(sa.String(40))  # the ticket event that caused it
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    endpoint_id: Mapped[int | None] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(sa.String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]

    user: Mapped[User | None] = relationship()
    endpoint: Mapped[WebhookEndpoint | None] = relationship()
    ticket: Mapped[Ticket | None] = relationship()  # noqa: F821

    __table_args__ = (
        # The dispatcher's query: due pending rows, oldest first.
        sa.Index("ix_notifications_due", "status", "next_attempt_at"),
        sa.Index("ix_notifications_inbox", "user_id", "channel", "read_at"),
        sa.CheckConstraint("channel IN ('email', 'inapp', 'webhook')", name="channel"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')", name="status"),
    )

    @property
    def status_label(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def recipient_label(self) -> str:
        if self.channel == CHANNEL_WEBHOOK:
            return self.endpoint.url if self.endpoint is not None else "webhook"
        if self.user is not None:
            return f"{self.user.display_name} <{self.email}>" if self.email else self.user.display_name
        return self.email or "—"


class NotificationPreference(db.Model):
    """A user's choice for one event kind: e-mail (and in-app), or in-app only. No row: e-mail."""

    __tablename__ = "notification_preferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    channel: Mapped[str] = mapped_column(sa.String(10), default=PREF_EMAIL)
    updated_at: Mapped[datetime]

    __table_args__ = (
        sa.UniqueConstraint("user_id", "kind", name="user_kind"),
        sa.CheckConstraint("channel IN ('email', 'inapp')", name="channel"),
    )


class WebhookEndpoint(db.Model):
    """Where an organisation's connector (e.g. a Connecté commune's GRU) receives our ticket changes."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret: Mapped[str] = mapped_column(sa.String(200))  # HMAC key; the receiver holds the same one
    is_active: Mapped[bool] = mapped_column(default=True)
    # The event types sent to this endpoint (see operations.WEBHOOK_EVENTS); None: every event.
    events: Mapped[list[str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    secret_rotated_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship()

    def is_subscribed(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events


class DeliveryAttempt(db.Model):
    """The delivery log: one row per attempt, with its outcome."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(sa.ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    at: Mapped[datetime]
    is_success: Mapped[bool]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int] = mapped_column(default=0)


class NotificationFanout(db.Model):
    """Events whose notifications are still to be worked out: who is told, by which channel, with which text.

    A new request records its two events (created, routed) and one of these rows in its own transaction; the
    dispatcher turns the row into `notifications` rows (the same `enqueue_for_events` as every other change)
    before it delivers, then deletes it, in one transaction. The request does not look up the queue's agents,
    their preferences and the webhook endpoints (issue 9: a third of a submission's work), and nothing is lost:
    the row commits with the ticket. `tracking_token` is an anonymous requester's secret link, which only the
    receipt e-mail carries (only its hash is kept on the ticket); it is deleted with the row.
    """

    __tablename__ = "notification_fanouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    first_event_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket_events.id", ondelete="CASCADE"))
    last_event_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket_events.id", ondelete="CASCADE"))
    tracking_token: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship()  # noqa: F821
    first_event: Mapped[TicketEvent] = relationship(foreign_keys=[first_event_id])  # noqa: F821
    last_event: Mapped[TicketEvent] = relationship(foreign_keys=[last_event_id])  # noqa: F821
