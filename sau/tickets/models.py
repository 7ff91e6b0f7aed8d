"""Tickets (help requests and incidents), their immutable event log, comments and attachments."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Category, Organisation, School, Service

KIND_DEMANDE = "demande"  # a usager's help request (convention art. 3)
KIND_INCIDENT = "incident"  # a commune's incident ticket (Toodego annex § 6.1.a)
KINDS = {KIND_DEMANDE: "Demande d'aide", KIND_INCIDENT: "Incident"}

NOUVEAU = "nouveau"
EN_COURS = "en_cours"
EN_ATTENTE = "en_attente"
RESOLU = "resolu"
CLOS = "clos"
REJETE = "rejete"
DOUBLON = "doublon"
STATUSES = {
    NOUVEAU: "Nouveau",
    EN_COURS: "En cours",
    EN_ATTENTE: "En attente",
    RESOLU: "Résolu",
    CLOS: "Clos",
    REJETE: "Rejeté",
    DOUBLON: "Doublon",
}
OPEN_STATUSES = (NOUVEAU, EN_COURS, EN_ATTENTE)
FINAL_STATUSES = (CLOS, REJETE, DOUBLON)

# Priorities are set after diagnosis by the support (Toodego annex § 6.1.a).
BLOQUANT = "bloquant"
MAJEUR = "majeur"
MINEUR = "mineur"
PRIORITIES = {BLOQUANT: "Bloquant", MAJEUR: "Majeur", MINEUR: "Mineur"}
PRIORITY_DEFINITIONS = {
    BLOQUANT: "Indisponibilité totale du service numérique ou d'une fonction essentielle "
    "(niveau Urgent) — résolution en 8 h ouvrées (1 jour ouvré).",
    MAJEUR: "Indisponibilité sur une fonction non essentielle, ou incident bloquant disposant d'une "
    "possibilité de contournement (niveau Normal) — résolution en 24 h ouvrées (3 jours ouvrés).",
    MINEUR: "Anomalie ni bloquante ni majeure, ou demande d'information (niveau Bas) — pas d'engagement de délai.",
}


class Ticket(db.Model):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(20), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default=KIND_DEMANDE)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"))
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("categories.id"))
    commune_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    school_id: Mapped[int | None] = mapped_column(sa.ForeignKey("schools.id"), index=True)
    # The organisation whose queue holds the ticket, and the support level (1 or 2).
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    level: Mapped[int] = mapped_column(default=1)
    routing_reason: Mapped[str] = mapped_column(sa.Text, default="")
    needs_triage: Mapped[bool] = mapped_column(default=False)

    subject: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text)
    page_url: Mapped[str | None] = mapped_column(sa.String(2000))

    requester_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    requester_email: Mapped[str | None] = mapped_column(sa.String(254))
    # Anonymous requesters follow their request with a secret link; only its hash is stored.
    tracking_token_hash: Mapped[str | None] = mapped_column(sa.String(64))

    status: Mapped[str] = mapped_column(sa.String(20), default=NOUVEAU)
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id"))
    priority: Mapped[str | None] = mapped_column(sa.String(20))
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    resolution_note: Mapped[str | None] = mapped_column(sa.Text)

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # Business time (support calendar, seconds) from creation to the first public answer and to the resolution,
    # stored when they happen so the workload report aggregates numbers instead of replaying the calendar
    # over a year of tickets (sau.reports.workload). Null while not answered / not resolved.
    first_response_business_seconds: Mapped[float | None] = mapped_column(sa.Float)
    resolution_business_seconds: Mapped[float | None] = mapped_column(sa.Float)

    # SLA, derived from the event log by sla.compute_sla and stored for queries (recomputed on every event,
    # checked by `sau sla-recompute`). "Breached" is then a query: the sweep only records events.
    priority_set_at: Mapped[datetime | None]
    sla_deadline_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_at_risk_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_breach_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_state: Mapped[str | None] = mapped_column(sa.String(20))
    sla_met: Mapped[bool | None]
    sla_paused: Mapped[bool] = mapped_column(default=False)

    # Optimistic locking: every UPDATE checks and bumps it; a stale write raises StaleDataError.
    version: Mapped[int] = mapped_column(default=1)

    service: Mapped[Service] = relationship()
    category: Mapped[Category | None] = relationship()
    commune: Mapped[Organisation | None] = relationship(foreign_keys=[commune_id])
    school: Mapped[School | None] = relationship()
    organisation: Mapped[Organisation] = relationship(foreign_keys=[organisation_id])
    requester: Mapped[User | None] = relationship(foreign_keys=[requester_id])
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    duplicate_of: Mapped[Ticket | None] = relationship(remote_side=[id])
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all, delete-orphan"
    )
    comments: Mapped[list[Comment]] = relationship(
        back_populates="ticket", order_by="Comment.id", cascade="all, delete-orphan"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="ticket", order_by="Attachment.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read by SQLAlchemy at class creation)
    __table_args__ = (
        sa.Index("ix_tickets_queue", "organisation_id", "status", "created_at"),
        # Compliance reports (sau/reports/compliance.py) read committed tickets by deadline: on PostgreSQL a
        # partial covering index answers them with an index-only scan.
        sa.Index(
            "ix_tickets_compliance", "sla_deadline_at",
            postgresql_include=["commune_id", "service_id", "kind", "priority", "sla_met", "sla_paused",
                                "sla_breach_at", "sla_state"],
            postgresql_where=sa.text("priority IN ('bloquant', 'majeur') AND sla_state <> 'sans_engagement' "
                                     "AND commune_id IS NOT NULL"),
        ),
        # Agent queue (open tickets of an organisation, newest first or by deadline) and SLA sweep (running
        # clocks in due order): partial indexes on PostgreSQL (migration a7c3e9d21f04, bench/RESULTS.md).
        sa.Index("ix_tickets_open_recent", "organisation_id", "created_at",
                 postgresql_where=sa.text("status IN ('nouveau', 'en_cours', 'en_attente')")),
        sa.Index("ix_tickets_open_deadline", "organisation_id", "sla_deadline_at",
                 postgresql_where=sa.text("status IN ('nouveau', 'en_cours', 'en_attente')")),
        sa.Index("ix_tickets_sweep_breach", "sla_breach_at",
                 postgresql_where=sa.text("sla_met IS NULL AND sla_paused IS false AND sla_deadline_at IS NOT NULL")),
        sa.Index("ix_tickets_sweep_at_risk", "sla_at_risk_at",
                 postgresql_where=sa.text("sla_met IS NULL AND sla_paused IS false AND sla_deadline_at IS NOT NULL")),
        sa.CheckConstraint("level IN (1, 2)", name="level"),
        sa.CheckConstraint(
            "status IN ('nouveau', 'en_cours', 'en_attente', 'resolu', 'clos', 'rejete', 'doublon')", name="status"
        ),
        sa.CheckConstraint("priority IS NULL OR priority IN ('bloquant', 'majeur', 'mineur')", name="priority"),
    )

    @property
    def status_label(self) -> str:
        return STATUSES[self.status]

    @property
    def priority_label(self) -> str:
        return PRIORITIES.get(self.priority or "", "Non définie")

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def requester_label(self) -> str:
        if self.requester is not None:
            return self.requester.display_name
        return self.requester_email or "Demandeur anonyme"

    @property
    def requester_contact(self) -> str | None:
        return self.requester.email if self.requester is not None else self.requester_email

    def __repr__(self) -> str:
        return f"<Ticket {self.reference} {self.status}>"


class TicketEvent(db.Model):
    """One immutable entry of a ticket's log: who, when, what, before/after."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    type: Mapped[str] = mapped_column(sa.String(40))
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(sa.String(200), default="")
    is_public: Mapped[bool] = mapped_column(default=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()

    __table_args__ = (sa.Index("ix_ticket_events_type_at", "type", "at"),)


@event.listens_for(TicketEvent, "before_update")
def _events_are_immutable(mapper: Any, connection: Any, target: TicketEvent) -> None:
    raise RuntimeError("ticket events are immutable")


class Comment(db.Model):
    """A public reply (seen by the requester) or an internal note (agents only)."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    author_label: Mapped[str] = mapped_column(sa.String(200), default="")
    is_internal: Mapped[bool] = mapped_column(default=False)
    is_from_requester: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship(back_populates="comments")
    author: Mapped[User | None] = relationship()


class Attachment(db.Model):
    """A file attached to a ticket; the content lives on disk under ATTACHMENTS_DIR/storage_key."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    comment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("comments.id"))
    filename: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64))
    storage_key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    is_internal: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]

    ticket: Mapped[Ticket] = relationship(back_populates="attachments")


class SlaAlert(db.Model):
    """Marks that an at-risk or breach event was recorded for a ticket and deadline: exactly once, enforced
    by the unique constraint even if two sweepers race."""

    __tablename__ = "sla_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(sa.String(20))  # "at_risk" | "breached"
    deadline_at: Mapped[datetime]
    created_at: Mapped[datetime]

    __table_args__ = (sa.UniqueConstraint("ticket_id", "kind", "deadline_at", name="ticket_kind_deadline"),)


class ReferenceCounter(db.Model):
    """The last ticket number given per year, for references like SAU-2026-000123."""

    __tablename__ = "reference_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(default=0)
