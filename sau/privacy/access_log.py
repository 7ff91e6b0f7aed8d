"""The access log: who read or exported which personal data, when (issue 8, point 5).

Convention-cadre, art. 7.2: the parties commit to "mettre en œuvre les mesures techniques et organisationnelles
nécessaires pour minimiser les risques de perte d'intégrité, et garantir la confidentialité et la disponibilité
des données". Every time a staff member reads personal data (a ticket page, a list of accounts with their
e-mail addresses) or exports it (a usager's data, a commune's full export), one row is appended here, in the
caller's transaction: a read that is rolled back leaves no row, a committed one always has its row.

The log is append-only: the ORM refuses to update or delete a row. Two deliberate exceptions, both set-based
statements outside the ORM: `purge_expired` (retention, ACCESS_LOG_RETENTION_DAYS, default 365 days) and
`pseudonymise_actor` (the right to erasure of art. 7.2: an erased account's name must not survive in the log).
Entries never hold the personal data itself: ids, a reference, a short description ("détail") only.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from sau.auth.models import User
from sau.clock import now_utc
from sau.extensions import db
from sau.modelbase import append_only

DEFAULT_RETENTION_DAYS = 365
DETAIL_MAX = 300

# French labels of the actions, for the admin page and the CSV export. Other actions are shown as they are.
ACTION_LABELS = {
    "ticket.view": "Consultation d'un ticket",
    "user.list": "Consultation de comptes (adresses e-mail)",
    "user.data_export": "Export des données d'un usager",
    "user.data_view": "Consultation des données d'un usager",
    "user.erasure": "Effacement d'un compte",
    "ticket.redaction": "Masquage de données personnelles",
    "commune.export": "Export complet d'une commune",
    "access_log.export": "Export du journal des accès",
}


class AccessLogEntry(db.Model):
    """One read or export of personal data. Append-only."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    # The actor's label is copied so the entry stays readable after the account is gone; None: the system or
    # the command line (the label then says which).
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_label: Mapped[str] = mapped_column(sa.String(200), default="")
    action: Mapped[str] = mapped_column(sa.String(60))
    # Whose personal data was read (the requester of a ticket, the usager exported…), when one person.
    subject_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    commune_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id", ondelete="SET NULL"),
                                                   index=True)
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(sa.String(DETAIL_MAX), default="")

    @property
    def action_label(self) -> str:
        return ACTION_LABELS.get(self.action, self.action)


append_only(AccessLogEntry, "access log entries", delete_note=" (retention: purge_expired)")


def log_access(actor: User | None, action: str, subject_user_id: int | None = None, *, commune_id: int | None = None,
               ticket_id: int | None = None, detail: str = "", actor_label: str | None = None) -> None:
    """Append an entry to the current session; it is committed (or rolled back) with the caller's transaction.

    `actor` None is the system or the command line: give `actor_label` then (e.g. "Ligne de commande").
    `detail` is a short description, never personal data itself (it is cut at 300 characters)."""
    if actor is not None and actor_label is None:
        actor_label = actor.display_name
    db.session.add(AccessLogEntry(
        at=now_utc(), actor_id=actor.id if actor is not None else None,
        actor_label=(actor_label or "Système")[:200], action=action[:60], subject_user_id=subject_user_id,
        commune_id=commune_id, ticket_id=ticket_id, detail=(detail or "")[:DETAIL_MAX],
    ))


def retention_days() -> int:
    return int(current_app.config.get("ACCESS_LOG_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))


def purge_expired(now: datetime, days: int | None = None) -> int:
    """Delete the entries older than the retention period (ACCESS_LOG_RETENTION_DAYS). Returns how many.
    Running it twice deletes nothing more the second time. The caller commits."""
    days = retention_days() if days is None else days
    if days <= 0:
        return 0  # 0 or less: keep everything
    cutoff = now - timedelta(days=days)
    result = db.session.execute(sa.delete(AccessLogEntry).where(AccessLogEntry.at < cutoff)
                                .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def pseudonymise_actor(user_id: int, pseudonym: str) -> int:
    """Replace an erased account's name in the entries it wrote (right to erasure, convention art. 7.2).
    Returns how many entries changed. The caller commits."""
    result = db.session.execute(sa.update(AccessLogEntry).where(AccessLogEntry.actor_id == user_id)
                                .values(actor_label=pseudonym[:200]).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
