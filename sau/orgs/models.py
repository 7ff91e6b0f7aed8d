"""Reference data: organisations (the Métropole, communes), services, subscriptions, schools, categories."""
from __future__ import annotations

from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.extensions import db

ORG_METROPOLE = "metropole"
ORG_COMMUNE = "commune"
ORG_KINDS = (ORG_METROPOLE, ORG_COMMUNE)
METROPOLE_CODE = "metropole"

# Toodego offers (Toodego annex § 4): the commune runs its own téléservices (Partenaire), exchanges
# requests with its own GRU through a connector (Connecté), or uses the catalogue (Abonné).
OFFER_PARTENAIRE = "partenaire"
OFFER_CONNECTE = "connecte"
OFFER_ABONNE = "abonne"
OFFERS = {OFFER_PARTENAIRE: "Partenaire", OFFER_CONNECTE: "Connecté", OFFER_ABONNE: "Abonné"}


class Organisation(db.Model):
    """The Métropole or a commune (identified by its INSEE code)."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)  # INSEE code, or "metropole"
    name: Mapped[str] = mapped_column(sa.String(200))
    population: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True)

    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="organisation")
    schools: Mapped[list[School]] = relationship(back_populates="commune", order_by="School.name")

    __table_args__ = (sa.CheckConstraint("kind IN ('metropole', 'commune')", name="kind"),)

    @property
    def is_metropole(self) -> bool:
        return self.kind == ORG_METROPOLE

    def active_subscription(self, service: Service, on: date) -> Subscription | None:
        for sub in self.subscriptions:
            if sub.service_id == service.id and sub.is_active_on(on):
                return sub
        return None

    def __repr__(self) -> str:
        return f"<Organisation {self.code} {self.name}>"


class Service(db.Model):
    """A shared digital service. Geonet is known but has no SAU (convention, Geonet annex)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    has_sau: Mapped[bool] = mapped_column(default=True)
    # Why a service without SAU is refused, shown to the user.
    no_sau_reason: Mapped[str] = mapped_column(sa.Text, default="")
    # Whether a request for this service names a commune (communal téléservices, schools…).
    asks_commune: Mapped[bool] = mapped_column(default=True)
    asks_school: Mapped[bool] = mapped_column(default=False)
    # Per-service SLA targets in business hours, overriding the convention's defaults (bloquant 8, majeur 24).
    sla_bloquant_hours: Mapped[float | None]
    sla_majeur_hours: Mapped[float | None]

    categories: Mapped[list[Category]] = relationship(
        back_populates="service", order_by="Category.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Service {self.code}>"


class CalendarClosure(db.Model):
    """A day of the business calendar that differs from the usual Monday–Friday 9:00–17:00 (on top of French
    public holidays): closed all day (e.g. a bridge day) when no hours are set, or open at exceptional hours."""

    __tablename__ = "calendar_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(unique=True)
    label: Mapped[str] = mapped_column(sa.String(200), default="")
    opens_at: Mapped[time | None]
    closes_at: Mapped[time | None]

    @property
    def is_closed(self) -> bool:
        return self.opens_at is None


class Category(db.Model):
    """A category of request for one service (drives routing)."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"))
    code: Mapped[str] = mapped_column(sa.String(40))
    label: Mapped[str] = mapped_column(sa.String(200))
    position: Mapped[int] = mapped_column(default=0)
    # e.g. a communal téléservice: the commune must be named so the request reaches it.
    requires_commune: Mapped[bool] = mapped_column(default=False)

    service: Mapped[Service] = relationship(back_populates="categories")

    __table_args__ = (sa.UniqueConstraint("service_id", "code", name="service_code"),)


class Subscription(db.Model):
    """A commune's adhésion to a service, with its Toodego offer and dates."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"), index=True)
    offer: Mapped[str | None] = mapped_column(sa.String(20))
    starts_on: Mapped[date]
    ends_on: Mapped[date | None]

    organisation: Mapped[Organisation] = relationship(back_populates="subscriptions")
    service: Mapped[Service] = relationship()

    __table_args__ = (
        sa.CheckConstraint("offer IS NULL OR offer IN ('partenaire', 'connecte', 'abonne')", name="offer"),
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates"),
    )

    def is_active_on(self, on: date) -> bool:
        return self.starts_on <= on and (self.ends_on is None or on <= self.ends_on)

    @property
    def offer_label(self) -> str:
        return OFFERS.get(self.offer or "", "—")


class School(db.Model):
    """A school (établissement) of a commune subscribed to laclasse.com, identified by its UAI code."""

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    uai: Mapped[str] = mapped_column(sa.String(8), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    commune_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)

    commune: Mapped[Organisation] = relationship(back_populates="schools")
    administrators: Mapped[list[SchoolAdministrator]] = relationship(
        back_populates="school", cascade="all, delete-orphan"
    )


class SchoolAdministrator(db.Model):
    """The person named for a school who gives first-level laclasse.com support (laclasse.com annex)."""

    __tablename__ = "school_administrators"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(sa.ForeignKey("schools.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]

    school: Mapped[School] = relationship(back_populates="administrators")
    user: Mapped[User] = relationship()

    __table_args__ = (sa.UniqueConstraint("school_id", "user_id", name="school_user"),)


from sau.auth.models import User
