"""Helpers of the personal-data tests (issue 8, points 1–3): a person with a full history, and a scan of every
text column of every table."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

ISSUER = "https://connect.grandlyon.example"


@dataclass(frozen=True)
class Person:
    user_id: int
    given_name: str
    family_name: str
    email: str
    sub: str
    references: tuple[str, ...]
    attachment_keys: tuple[str, ...]

    @property
    def values(self) -> dict[str, str]:
        return {"given_name": self.given_name, "family_name": self.family_name, "email": self.email, "sub": self.sub}


def create_person(now: datetime, *, given: str = "Zéphirine", family: str = "Quastenbrook",
                  email: str = "zephirine.quastenbrook@example.net", sub: str = "glc-7f3a9c2e-sub-4411",
                  with_history: bool = True) -> Person:
    """A usager with an identity, a session, a preference, and (with_history) a signed-in request with an attachment
    named after her, agent replies that name her, her reply, the resolution and closing; an anonymous request made
    with her (verified) address; notifications and events for all of it. Must run in an app context; commits."""
    from sau.auth import policy
    from sau.auth.models import Identity, LoginSession, User
    from sau.extensions import db
    from sau.help import intake
    from sau.notify.operations import set_preferences
    from sau.tickets import attachments as att
    from sau.tickets import operations as ops
    from tests.conftest import DEMO_EMAILS

    user = User(given_name=given, family_name=family, email=email, is_email_verified=True, created_at=now,
                last_seen_at=now)
    db.session.add(user)
    db.session.flush()
    db.session.add(Identity(user_id=user.id, issuer=ISSUER, subject=sub, created_at=now))
    db.session.add(LoginSession(key_hash="k" * 64, user_id=user.id, issuer=ISSUER, sid="sid-1", created_at=now))
    set_preferences(user, {"answered": "email"}, now)
    references: list[str] = []
    keys: list[str] = []
    if with_history:
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_metropole"]))
        svc = intake.require_sau_service("toodego")
        cat, com, _ = intake.resolve_fields(svc, "compte", "69081", None, now.date())
        created = ops.create_request(ops.NewRequest(
            service=svc, subject=f"Démarche bloquée pour {given} {family}",
            description=f"Bonjour, je suis {given} {family} ({email}). Ma démarche de cantine est bloquée.",
            category=cat, commune=com), user, now)
        ticket = created.ticket
        stored = att.store(ticket, [att.Upload(f"attestation-{family.lower()}.pdf", "application/pdf",
                                               b"%PDF-1.4 attestation")], now)
        ops.record_event(ticket, "attachment.added", now, user, {"files": [a.filename for a in stored]})
        db.session.flush()
        keys += [a.storage_key for a in stored]
        ops.set_priority(ticket, agent, "bloquant", now, justification=f"Usager {family} bloqué")
        later = now + timedelta(hours=1)
        ops.add_comment(ticket, agent, f"Bonjour {given} {family}, pouvez-vous préciser l'erreur ?", later,
                        internal=False)
        ops.requester_reply(ticket, policy.Principal(user=user), f"Merci. Signé : {given}.", later)
        ops.resolve(ticket, agent, f"Compte de {given} {family} débloqué.", later)
        ops.close(ticket, agent, later)
        references.append(ticket.reference)
        anonymous = ops.create_request(ops.NewRequest(
            service=svc, subject="Question sur mon compte", description="Demande envoyée sans être connectée.",
            category=cat, commune=com, email=email), None, now)
        references.append(anonymous.ticket.reference)
    db.session.commit()
    return Person(user.id, given, family, email, sub, tuple(references), tuple(keys))


def text_columns(metadata: sa.MetaData) -> list[tuple[sa.Table, sa.Column[Any]]]:
    """Every text, varchar and JSON column of every table."""
    return [(table, column) for table in metadata.sorted_tables for column in table.columns
            if isinstance(column.type, (sa.String, sa.JSON))]


def scan(values: dict[str, str]) -> list[tuple[str, str, str]]:
    """Where the values occur (case-insensitively) in any text or JSON column of any table, as (table.column, value
    name, excerpt). JSON is read back and dumped as text. Must run in an app context."""
    from sau.extensions import db

    wanted = {name: value.lower() for name, value in values.items()}
    found = []
    for table, column in text_columns(db.metadata):
        for (raw,) in db.session.execute(sa.select(column).select_from(table)):
            if raw is None:
                continue
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            lowered = text.lower()
            for name, value in wanted.items():
                if value in lowered:
                    found.append((f"{table.name}.{column.name}", name, text[:120]))
    return found


def table_rows(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for "nothing changed" assertions."""
    rows = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        rows[table.name] = [tuple(r) for r in db.session.execute(sa.select(table).order_by(*order))]
    return rows
