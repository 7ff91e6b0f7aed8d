"""Routing rules: (service, category, commune, offer) → competent organisation and support level."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.extensions import db
from sau.orgs.models import Organisation, Service

TARGET_METROPOLE = "metropole"  # the Métropole's support
TARGET_COMMUNE = "commune"  # the commune named in the request
TARGET_SCHOOL = "school"  # the administrators of the usager's school (laclasse.com level 1)
TARGET_ORGANISATION = "organisation"  # a fixed organisation
TARGETS = {
    TARGET_METROPOLE: "Support de la Métropole",
    TARGET_COMMUNE: "Commune de la demande",
    TARGET_SCHOOL: "Administrateurs de l'établissement",
    TARGET_ORGANISATION: "Organisation désignée",
}


class RoutingRule(db.Model):
    """A rule matches when every criterion it sets equals the request's; the first match by position wins."""

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(default=100)
    name: Mapped[str] = mapped_column(sa.String(200))
    service_id: Mapped[int | None] = mapped_column(sa.ForeignKey("services.id"))
    category_code: Mapped[str | None] = mapped_column(sa.String(40))
    commune_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    # "none" matches a commune without an offer for the service (not subscribed).
    offer: Mapped[str | None] = mapped_column(sa.String(20))
    target: Mapped[str] = mapped_column(sa.String(20))
    target_organisation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"))
    level: Mapped[int] = mapped_column(default=1)
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    is_active: Mapped[bool] = mapped_column(default=True)

    service: Mapped[Service | None] = relationship()
    commune: Mapped[Organisation | None] = relationship(foreign_keys=[commune_id])
    target_organisation: Mapped[Organisation | None] = relationship(foreign_keys=[target_organisation_id])

    __table_args__ = (
        sa.CheckConstraint("level IN (1, 2)", name="level"),
        sa.CheckConstraint("target IN ('metropole', 'commune', 'school', 'organisation')", name="target"),
    )
