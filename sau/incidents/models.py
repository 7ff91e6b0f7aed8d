"""Security alerts: a commune reports an attack or compromise to the Métropole (Toodego annex § 8: "en cas
d'attaque, la commune adhérente s'engage à alerter La Métropole de Lyon sous un délai de huit heures après la
détection"). Each alert has its incident ticket, which carries the workflow and the SLA."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Organisation, Service
from sau.tickets.models import Ticket

# Wall-clock delay within which a commune must alert the Métropole after detecting an attack.
ALERT_DEADLINE = timedelta(hours=8)


class SecurityAlert(db.Model):
    __tablename__ = "security_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), unique=True)
    commune_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"))
    reported_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    detected_at: Mapped[datetime]
    reported_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship()
    commune: Mapped[Organisation] = relationship()
    service: Mapped[Service] = relationship()
    reported_by: Mapped[User | None] = relationship()

    __table_args__ = (sa.CheckConstraint("detected_at <= reported_at", name="detected_before_reported"),)

    @property
    def delay(self) -> timedelta:
        # In UTC: two datetimes sharing a tzinfo (Europe/Paris) subtract naively, ignoring a DST change.
        return self.reported_at.astimezone(UTC) - self.detected_at.astimezone(UTC)

    @property
    def within_deadline(self) -> bool:
        """True when the commune alerted within 8 hours (wall-clock) of the detection."""
        return self.delay <= ALERT_DEADLINE

    @property
    def delay_label(self) -> str:
        minutes = int(self.delay.total_seconds() // 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min"
