"""Erase an account: the right to erasure (convention-cadre art. 7.2, "Garantir à l'utilisateur l'exercice effectif
de ses droits sur ses données à caractère personnel (accès, modification, suppression...)") and the deletion of
accounts GrandLyon Connect deleted (Toodego annex § 8, "Il est à la charge de la commune adhérente de supprimer les
données après réception de cette information").

What is erased, and why the rest stays:

- The person's identity (given name, family name, e-mail, the (issuer, sub) of their identities) is replaced,
  wherever it was copied, by one stable pseudonym, "Usager supprimé #<8 characters>" (an HMAC of the account id
  under SECRET_KEY: the same for every row of that person, not reversible without the key). Copies live in the
  tickets they made (requester e-mail, and whatever they typed in the subject, description, comments), the
  tickets' event log (actor label, event data such as attachment names or assignment names), the notifications
  outbox (recipient address, rendered subject and payload) and its delivery log, the administration journal,
  the access log and the idempotency records of the API.
- Free text is scrubbed of the identifying values we know (names as whole words, the e-mail addresses, the subs),
  case-insensitively. Other personal data a person may have typed (a phone number, an address) cannot be found
  reliably: agents mask it by hand (sau/privacy/redaction.py).
- Files the usager uploaded are deleted, file and row: an image or a PDF cannot be scrubbed and may show
  anything about them. Their names in the event log are scrubbed like any text.
- The `users` row stays as a tombstone holding only the pseudonym (no e-mail, no identity, no membership, no
  session, no preference, no token): tickets keep their requester, so "all tickets of this requester" still means
  one anonymous person, and nothing in the SLA figures changes — tickets, their status, priority, dates and SLA
  fields are not touched, so the compliance reports are identical before and after.
- The (issuer, sub) of each identity is written to `deleted_accounts` (sau/privacy/deleted_accounts.py): that is
  the one place the sub survives, on purpose — it is what the deleted-accounts API lists for connector clients.

The ticket event log is immutable (sau/tickets/models.py refuses ORM updates); erasure rewrites labels and data
with set-based statements on purpose: the right to erasure overrides the log's immutability, and only the
identifying values change, never the type, instant or meaning of an event.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from sau.admin.models import AuditEvent
from sau.api.idempotency import IdempotencyRecord
from sau.auth.models import ApiToken, Identity, LoginSession, Membership, User
from sau.extensions import db
from sau.notify.models import DeliveryAttempt, Notification, NotificationPreference
from sau.orgs.models import SchoolAdministrator
from sau.privacy.models import AccountDeletionWarning, ErasedAccount
from sau.tickets.models import Attachment, Comment, Ticket, TicketEvent

PSEUDONYM_PREFIX = "Usager supprimé"
MIN_NAME_LENGTH = 2  # a one-letter "name" would scrub every word containing it


def pseudonym_for(user_id: int) -> str:
    """The stable pseudonym of an erased account: "Usager supprimé #1a2b3c4d" (HMAC-SHA256 of the id under
    SECRET_KEY, 8 hex characters)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, f"sau-erasure:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"{PSEUDONYM_PREFIX} #{digest[:8]}"


def is_erased(user: User) -> bool:
    return db.session.get(ErasedAccount, user.id) is not None


# --- scrubbing free text --------------------------------------------------------------------------------------


class Scrubber:
    """Replaces known identifying values in text and JSON. Names are matched as whole words, addresses and subs
    anywhere, all case-insensitively; longer values first (an e-mail before the name it contains)."""

    def __init__(self, names: Iterable[str], literals: Iterable[str], replacement: str) -> None:
        self.replacement = replacement
        parts: list[tuple[int, str]] = []
        for value in {v.strip() for v in literals if v and len(v.strip()) >= 3}:
            parts.append((len(value), re.escape(value)))
        for value in {v.strip() for v in names if v and len(v.strip()) >= MIN_NAME_LENGTH}:
            parts.append((len(value), r"(?<!\w)" + re.escape(value) + r"(?!\w)"))
        parts.sort(key=lambda p: -p[0])
        self.pattern = re.compile("|".join(p for _, p in parts), re.IGNORECASE) if parts else None

    def text(self, value: str | None) -> str | None:
        if value is None or self.pattern is None:
            return value
        return self.pattern.sub(self.replacement, value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value

    def matches(self, value: Any) -> bool:
        if self.pattern is None or value is None:
            return False
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return self.pattern.search(text) is not None


def scrubber_for(user: User, extra_literals: Iterable[str] = ()) -> Scrubber:
    """What identifies `user`: their names (and full name), their e-mail and the subs of their identities."""
    names = [user.given_name or "", user.family_name or "",
             f"{user.given_name or ''} {user.family_name or ''}".strip(),
             f"{user.family_name or ''} {user.given_name or ''}".strip()]
    literals = [user.email or ""] + [i.subject for i in user.identities] + list(extra_literals)
    return Scrubber(names, literals, pseudonym_for(user.id))


def _update(table: sa.Table, row_id: Any, values: dict[str, Any], key: str = "id") -> None:
    # Core statements: no ORM version bump on tickets, no immutability listener on events (see module docstring).
    db.session.execute(table.update().where(table.c[key] == row_id).values(**values))


def _scrub_rows(model: Any, where: Any, text_columns: tuple[str, ...], json_columns: tuple[str, ...],
                scrub: Scrubber, fixed: dict[str, Any] | None = None) -> int:
    """Scrub the text and JSON columns of the rows of `model` selected by `where`; returns how many changed."""
    table = model.__table__
    columns = [table.c.id, *(table.c[c] for c in text_columns + json_columns)]
    changed = 0
    for row in db.session.execute(sa.select(*columns).where(where)).all():
        values: dict[str, Any] = {}
        for name in text_columns:
            new = scrub.text(row._mapping[name])
            if new != row._mapping[name]:
                values[name] = new
        for name in json_columns:
            old = row._mapping[name]
            new = scrub.json(old)
            if new != old:
                values[name] = new
        if fixed:
            values.update(fixed)
        if values:
            _update(table, row.id, values)
            changed += 1
    return changed


# --- the erasure ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureResult:
    user_id: int
    pseudonym: str
    tickets: int
    attachments_deleted: int
    identities: list[tuple[str, str]]


def tickets_of(user: User) -> list[int]:
    """The tickets `user` made: signed in, or anonymously with their verified e-mail address."""
    condition = Ticket.requester_id == user.id
    if user.email and user.is_email_verified:
        condition = sa.or_(condition, sa.func.lower(Ticket.requester_email) == user.email.lower())
    return list(db.session.scalars(sa.select(Ticket.id).where(condition).order_by(Ticket.id)))


def erase_account(user: User, now: datetime, *, source: str, actor: User | None = None) -> ErasureResult:
    """Erase `user`'s identity everywhere (see the module docstring), record their (issuer, sub) as deleted and
    append an access-log entry. Idempotent: an already erased account is left as it is (its result has no
    identities). Flushes; the caller commits. Attachment files are removed from disk after the flush — a rollback
    of the caller would leave the rows pointing at missing files, so callers commit right after."""
    from sau.privacy.access_log import log_access, pseudonymise_actor
    from sau.privacy.deleted_accounts import record_deleted
    from sau.tickets.attachments import path_of

    pseudonym = pseudonym_for(user.id)
    if is_erased(user):
        return ErasureResult(user.id, pseudonym, 0, 0, [])
    db.session.flush()
    identities = [(i.issuer, i.subject) for i in user.identities]
    ticket_ids = tickets_of(user)
    requester_emails = {e for e in db.session.scalars(
        sa.select(Ticket.requester_email).where(Ticket.id.in_(ticket_ids), Ticket.requester_email.is_not(None)))}
    scrub = scrubber_for(user, extra_literals=requester_emails)
    # Tickets whose text or log may carry the person: those they made, those assigned to them, those where they
    # wrote a comment or acted.
    acted_on = set(ticket_ids)
    acted_on |= set(db.session.scalars(sa.select(Ticket.id).where(Ticket.assignee_id == user.id)))
    acted_on |= set(db.session.scalars(sa.select(Comment.ticket_id).where(Comment.author_id == user.id)))
    acted_on |= set(db.session.scalars(sa.select(TicketEvent.ticket_id).where(TicketEvent.actor_id == user.id)))
    # Assignment events name the assignee in their data, possibly on tickets no longer theirs. Only staff can be
    # assigned (policy.can_work), so a usager's erasure skips this scan of every assignment.
    if user.memberships or db.session.scalar(sa.select(SchoolAdministrator.id)
                                             .where(SchoolAdministrator.user_id == user.id).limit(1)):
        for ticket_id, data in db.session.execute(
                sa.select(TicketEvent.ticket_id, TicketEvent.data).where(TicketEvent.type == "ticket.assigned")):
            if scrub.matches(data):
                acted_on.add(ticket_id)

    # Requester-uploaded files: deleted (row now, file after the flush).
    attachments = list(db.session.scalars(sa.select(Attachment).where(
        Attachment.ticket_id.in_(ticket_ids), Attachment.is_internal.is_(False))))
    paths = [path_of(a) for a in attachments]
    for attachment in attachments:
        db.session.delete(attachment)
    db.session.flush()

    # Tickets: the requester's address goes; free text is scrubbed. Status, dates and SLA fields are untouched.
    tickets = Ticket.__table__
    for ticket_id in ticket_ids:
        _update(tickets, ticket_id, {"requester_email": None})
    _scrub_rows(Ticket, Ticket.id.in_(acted_on),
                ("subject", "description", "page_url", "status_reason", "resolution_note", "routing_reason"), (),
                scrub)
    _scrub_rows(Attachment, Attachment.ticket_id.in_(acted_on), ("filename",), (), scrub)
    # Comments and events: the person's own rows get the pseudonym as label; every text is scrubbed.
    _scrub_rows(Comment, Comment.author_id == user.id, (), (), scrub, fixed={"author_label": pseudonym})
    _scrub_rows(Comment, Comment.ticket_id.in_(acted_on), ("author_label", "body"), (), scrub)
    _scrub_rows(TicketEvent, TicketEvent.actor_id == user.id, (), (), scrub, fixed={"actor_label": pseudonym})
    _scrub_rows(TicketEvent, TicketEvent.ticket_id.in_(acted_on), ("actor_label",), ("data",), scrub)
    # The outbox: their address and everything rendered for or about them.
    notification_scope = sa.or_(Notification.user_id == user.id, Notification.ticket_id.in_(acted_on))
    if requester_emails or user.email:
        addresses = {e.lower() for e in requester_emails | ({user.email} if user.email else set())}
        notification_scope = sa.or_(notification_scope, sa.func.lower(Notification.email).in_(addresses))
        db.session.execute(sa.update(Notification).where(sa.func.lower(Notification.email).in_(addresses))
                           .values(email=None).execution_options(synchronize_session=False))
    db.session.execute(sa.update(Notification).where(Notification.user_id == user.id).values(email=None)
                       .execution_options(synchronize_session=False))
    notification_ids = list(db.session.scalars(sa.select(Notification.id).where(notification_scope)))
    _scrub_rows(Notification, Notification.id.in_(notification_ids), ("subject", "last_error"), ("payload",), scrub)
    _scrub_rows(DeliveryAttempt, DeliveryAttempt.notification_id.in_(notification_ids), ("error",), (), scrub)
    # The administration journal: rows they wrote, and rows naming them (a membership granted to them…).
    _scrub_rows(AuditEvent, AuditEvent.actor_id == user.id, (), (), scrub, fixed={"actor_label": pseudonym})
    journal = [row.id for row in db.session.execute(sa.select(AuditEvent.id, AuditEvent.actor_label,
                                                              AuditEvent.object_label, AuditEvent.data))
               if scrub.matches(row.actor_label) or scrub.matches(row.object_label) or scrub.matches(row.data)]
    _scrub_rows(AuditEvent, AuditEvent.id.in_(journal), ("actor_label", "object_label"), ("data",), scrub)
    pseudonymise_actor(user.id, pseudonym)
    # API answers kept for retries: theirs are dropped, those about their tickets scrubbed.
    db.session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.client == f"user:{user.id}")
                       .execution_options(synchronize_session=False))
    references = list(db.session.scalars(sa.select(Ticket.reference).where(Ticket.id.in_(acted_on))))
    _scrub_rows(IdempotencyRecord, IdempotencyRecord.resource_ref.in_(references), ("response_body",), (), scrub)

    # The account itself: sessions, identities, memberships, preferences, warnings, tokens go; the row stays.
    for model, column in ((LoginSession, LoginSession.user_id), (Identity, Identity.user_id),
                          (Membership, Membership.user_id), (NotificationPreference, NotificationPreference.user_id),
                          (SchoolAdministrator, SchoolAdministrator.user_id),
                          (AccountDeletionWarning, AccountDeletionWarning.user_id)):
        db.session.execute(sa.delete(model).where(column == user.id).execution_options(synchronize_session=False))
    db.session.execute(sa.update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                       .values(revoked_at=now).execution_options(synchronize_session=False))
    db.session.execute(sa.update(ApiToken).where(ApiToken.user_id == user.id)
                       .values(name=pseudonym[:100]).execution_options(synchronize_session=False))
    given, _, family = pseudonym.partition(" #")
    _update(User.__table__, user.id, {"given_name": given, "family_name": f"#{family}", "email": None,
                                      "is_active_account": False, "is_email_verified": False,
                                      "is_identity_certified": False, "last_seen_at": None})
    db.session.add(ErasedAccount(user_id=user.id, pseudonym=pseudonym, source=source, erased_at=now))
    for issuer, subject in identities:
        record_deleted(issuer, subject, now, source)
    if actor is None:
        actor_label = "Système (effacement)"
    elif actor.id == user.id:
        actor_label = pseudonym  # the person erasing their own account: never their name in the log
    else:
        actor_label = actor.display_name
    log_access(actor, "user.erasure", user.id, detail=f"source : {source}", actor_label=actor_label)
    db.session.flush()
    db.session.expire_all()
    for path in paths:
        path.unlink(missing_ok=True)
    return ErasureResult(user.id, pseudonym, len(ticket_ids), len(attachments), identities)
