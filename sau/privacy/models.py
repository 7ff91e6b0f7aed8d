"""Personal data (issue 8, points 1 to 3): erased accounts, deleted accounts for the connector API, the inactivity
warnings and the markers of anonymised closed tickets.

Convention-cadre, art. 7.2: the parties commit to "garantir à l'utilisateur l'exercice effectif de ses droits sur
ses données à caractère personnel (accès, modification, suppression...)". Toodego annex § 8: "La Métropole
s'engage à supprimer l'ensemble des données d'un usager après deux ans de non-utilisation de son compte portant
ses données personnelles. La Métropole fournit une API (Web Service) permettant à la commune adhérente de lister
les comptes GLC qui ont été supprimés. Il est à la charge de la commune adhérente de supprimer les données après
réception de cette information."
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from sau.extensions import db

SOURCE_USAGER = "usager"  # the usager deleted their own account (« Mes données »)
SOURCE_INACTIVITY = "inactivite"  # two years without use (annex § 8), by the retention job
SOURCE_GLC_API = "glc_api"  # GrandLyon Connect reported it through POST /api/v1/deleted-accounts
SOURCE_GLC_IMPORT = "glc_import"  # an admin imported GrandLyon Connect's list
SOURCES = {
    SOURCE_USAGER: "Demande de l'usager",
    SOURCE_INACTIVITY: "Inactivité de deux ans",
    SOURCE_GLC_API: "Signalé par GrandLyon Connect (API)",
    SOURCE_GLC_IMPORT: "Liste GrandLyon Connect importée",
}


class ErasedAccount(db.Model):
    """Marks a `users` row whose identity was erased: the row stays as a tombstone (every ticket, comment and
    event keeps pointing at the same anonymous person) but holds nothing but the pseudonym."""

    __tablename__ = "erased_accounts"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), primary_key=True, autoincrement=False)
    pseudonym: Mapped[str] = mapped_column(sa.String(60))
    source: Mapped[str] = mapped_column(sa.String(20))
    erased_at: Mapped[datetime]


class DeletedAccount(db.Model):
    """The (issuer, sub) of an account deleted here, listed by GET /api/v1/deleted-accounts so that connector
    clients delete their copies (annex § 8). Nothing else about the person is kept: no name, no e-mail."""

    __tablename__ = "deleted_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(sa.String(500))
    subject: Mapped[str] = mapped_column(sa.String(255))
    deleted_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(sa.String(20))

    __table_args__ = (sa.UniqueConstraint("issuer", "subject", name="deleted_issuer_subject"),)


class AccountDeletionWarning(db.Model):
    """The warning e-mail sent before an inactive account is deleted: sent once (one row per account); the
    account's activity after `warned_at` cancels the deletion (the row is then removed)."""

    __tablename__ = "account_deletion_warnings"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    warned_at: Mapped[datetime]
    deletion_due_at: Mapped[datetime] = mapped_column(index=True)


class TicketAnonymisation(db.Model):
    """Marks a closed ticket whose personal data was anonymised after the retention period: the job is idempotent
    (a marked ticket is never processed again)."""

    __tablename__ = "ticket_anonymisations"

    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True,
                                           autoincrement=False)
    anonymised_at: Mapped[datetime]
