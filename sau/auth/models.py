"""Users, their external identities (issuer, sub) and their memberships (roles per organisation)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.extensions import db

ROLE_AGENT = "agent"
ROLE_REFERENT = "referent"
ROLE_MANAGER = "manager"
ROLE_ADMIN = "admin"
ROLES = {
    ROLE_AGENT: "Agent",
    ROLE_REFERENT: "Référent",
    ROLE_MANAGER: "Responsable",
    ROLE_ADMIN: "Administrateur",
}


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(sa.String(254), index=True)
    given_name: Mapped[str] = mapped_column(sa.String(100), default="")
    family_name: Mapped[str] = mapped_column(sa.String(100), default="")
    is_active_account: Mapped[bool] = mapped_column(default=True)
    is_identity_certified: Mapped[bool] = mapped_column(default=False)
    # Updated from the provider's `email_verified` claim at each sign-in.
    is_email_verified: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]

    identities: Mapped[list[Identity]] = relationship(back_populates="user", cascade="all, delete-orphan")
    memberships: Mapped[list[Membership]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_account

    @property
    def display_name(self) -> str:
        name = f"{self.given_name} {self.family_name}".strip()
        return name or (self.email or f"Utilisateur {self.id}")

    def __repr__(self) -> str:
        return f"<User {self.id} {self.display_name}>"


class Identity(db.Model):
    """An external identity: users are keyed by (issuer, sub), never by e-mail (sub may be pairwise)."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    issuer: Mapped[str] = mapped_column(sa.String(500))
    subject: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime]

    user: Mapped[User] = relationship(back_populates="identities")

    __table_args__ = (sa.UniqueConstraint("issuer", "subject", name="issuer_subject"),)


class Membership(db.Model):
    """A role held by a user in an organisation (optionally for one service, e.g. a référent Toodego)."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    service_id: Mapped[int | None] = mapped_column(sa.ForeignKey("services.id"))
    created_at: Mapped[datetime]

    user: Mapped[User] = relationship(back_populates="memberships")
    organisation: Mapped[Organisation] = relationship()
    service: Mapped[Service | None] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("user_id", "organisation_id", "role", "service_id", name="user_org_role_service"),
        sa.CheckConstraint("role IN ('agent', 'referent', 'manager', 'admin')", name="role"),
    )

    @property
    def role_label(self) -> str:
        return ROLES.get(self.role, self.role)


API_SCOPES = {
    "requests:write": "Créer des demandes d'aide",
    "tickets:read": "Lire les tickets de l'organisation",
    "tickets:write": "Traiter les tickets de l'organisation (priorité, commentaires, statut…)",
    "accounts:read": "Lister les comptes supprimés (issuer, sub — annexe Toodego § 8)",
    "accounts:write": "Signaler les comptes supprimés par GrandLyon Connect (jetons de la Métropole)",
}


class ApiToken(db.Model):
    """A machine client's credential (e.g. a Connecté commune's GRU connector), per organisation.

    The secret is shown once at creation; only its SHA-256 is stored (the secret is 256 random bits, so a
    plain hash is enough: no dictionary to attack). The token acts through its own technical account, an
    agent of the organisation, so the one policy layer applies to it as to anyone; scopes narrow it further.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scopes: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class LoginSession(db.Model):
    """A signed-in session, server side: lets the provider end it (front-channel logout by issuer and `sid`)
    even when the browser does not send our cookie, and lets us end every session of an account."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(sa.String(500))
    sid: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_login_sessions_issuer_sid", "issuer", "sid"),)


from sau.orgs.models import Organisation, Service
