"""Service outages and scheduled maintenance (convention art. 6.1; Toodego annex § 6.1.a: 99.9 % availability,
scheduled interruptions excluded, communes informed before any scheduled interruption)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Service
from sau.tickets.models import Ticket

OUTAGE_TOTAL = "total"
OUTAGE_PARTIAL = "partial"
OUTAGE_KINDS = {OUTAGE_TOTAL: "Indisponibilité totale", OUTAGE_PARTIAL: "Indisponibilité partielle"}

MAINTENANCE_ANNOUNCED = "announced"
MAINTENANCE_CHANGED = "changed"
MAINTENANCE_CANCELLED = "cancelled"
MAINTENANCE_STATUSES = {MAINTENANCE_ANNOUNCED: "Annoncée", MAINTENANCE_CHANGED: "Modifiée",
                        MAINTENANCE_CANCELLED: "Annulée"}

outage_tickets = sa.Table(
    "outage_tickets",
    db.metadata,
    sa.Column("outage_id", sa.ForeignKey("outages.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ticket_id", sa.ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
)


class Outage(db.Model):
    """A period during which a service was (or is: `ended_at` None) unavailable, totally or partially."""

    __tablename__ = "outages"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(sa.String(10), default=OUTAGE_TOTAL)
    is_planned: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    service: Mapped[Service] = relationship()
    created_by: Mapped[User | None] = relationship()
    tickets: Mapped[list[Ticket]] = relationship(secondary=outage_tickets, order_by="Ticket.reference")

    __table_args__ = (
        sa.CheckConstraint("kind IN ('total', 'partial')", name="kind"),
        sa.CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="dates"),
    )

    @property
    def is_ongoing(self) -> bool:
        return self.ended_at is None

    @property
    def kind_label(self) -> str:
        return OUTAGE_KINDS.get(self.kind, self.kind)


class Maintenance(db.Model):
    """A scheduled maintenance window, announced to the référents of the subscribed communes. `version`
    counts the announcements (1 at the announcement, +1 at each change), so that each step is notified once."""

    __tablename__ = "maintenances"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    impact: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(10), default=MAINTENANCE_ANNOUNCED)
    version: Mapped[int] = mapped_column(default=1)
    reminder_sent_at: Mapped[datetime | None]
    reminder_version: Mapped[int | None]  # the version the reminder was about
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    service: Mapped[Service] = relationship()
    created_by: Mapped[User | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint("status IN ('announced', 'changed', 'cancelled')", name="status"),
        sa.CheckConstraint("ends_at > starts_at", name="dates"),
        sa.Index("ix_maintenances_window", "starts_at", "ends_at"),
    )

    @property
    def status_label(self) -> str:
        return MAINTENANCE_STATUSES.get(self.status, self.status)

    @property
    def is_cancelled(self) -> bool:
        return self.status == MAINTENANCE_CANCELLED

    def is_under_way(self, now: datetime) -> bool:
        return not self.is_cancelled and self.starts_at <= now < self.ends_at
