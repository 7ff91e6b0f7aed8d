"""Retention (issue 8, point 2), run by the scheduler once a day and by `sau retention-run`.

1. Inactive accounts (Toodego annex § 8: "La Métropole s'engage à supprimer l'ensemble des données d'un usager
   après deux ans de non-utilisation de son compte portant ses données personnelles"). An account unused for
   ACCOUNT_INACTIVITY_DAYS (730) — its last sign-in, or its creation if it never signed in — is erased
   (sau/privacy/erasure.py). ACCOUNT_DELETION_WARNING_DAYS (30) before, one warning e-mail goes to the outbox and
   a marker row records it: the warning is sent once; signing in after it cancels the deletion (the marker goes,
   and a new warning will precede any later deletion). An account without an e-mail address is deleted on the
   same schedule (the marker still holds the date). Staff accounts (with a membership or a school to administer)
   and API token accounts are managed by administrators, not by this rule.
2. Closed tickets (convention art. 7.1: usage data "font l'objet d'une anonymisation"): RETENTION_CLOSED_TICKETS_DAYS
   (default 365) after a ticket is closed, rejected or marked duplicate, its personal data is anonymised:
   - the link to the requester (account, e-mail address, secret tracking link) is removed;
   - the requester's name and addresses, and any e-mail address or phone number, are masked in its free text
     (subject, description, comments, resolution, event data, notifications);
   - the requester's labels in the log become "Demandeur";
   - the files the requester attached are deleted (an image or a PDF cannot be anonymised).
   Kept: the service, commune, category, priority, statuses, dates and SLA fields, and the text of the request
   and answers once masked — the service data the SLA reports and the commune's data return (art. 12.3) need.
   Usage statistics (sau/reports) only ever count tickets by commune, service and priority: they hold no personal
   data.
3. The deleted-accounts list keeps an (issuer, sub) DELETED_ACCOUNTS_RETENTION_DAYS (365): long enough for every
   connector to have read it.

Idempotent: each step works from markers or from data it has already changed, so a second run the same day
deletes, warns and anonymises nothing more.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from notifications.render import render_subject
from sau.auth.models import ApiToken, Membership, User
from sau.extensions import db
from sau.notify.models import CHANNEL_EMAIL, PENDING, DeliveryAttempt, Notification
from sau.orgs.models import SchoolAdministrator
from sau.privacy.erasure import Scrubber, _scrub_rows, _update, erase_account
from sau.privacy.models import (
    SOURCE_INACTIVITY,
    AccountDeletionWarning,
    DeletedAccount,
    ErasedAccount,
    TicketAnonymisation,
)
from sau.tickets.models import FINAL_STATUSES, Attachment, Comment, Ticket, TicketEvent

PARIS = ZoneInfo("Europe/Paris")
DEFAULTS = {
    "ACCOUNT_INACTIVITY_DAYS": 730,
    "ACCOUNT_DELETION_WARNING_DAYS": 30,
    "RETENTION_CLOSED_TICKETS_DAYS": 365,
    "DELETED_ACCOUNTS_RETENTION_DAYS": 365,
}
WARNING_KIND = "account_deletion_warning"
REQUESTER_LABEL = "Demandeur"
MASK = "[donnée masquée]"
EMAIL_RE = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
# French phone numbers: 0X XX XX XX XX or +33 X XX XX XX XX, with spaces, dots or dashes.
PHONE_RE = r"(?<!\d)(?:\+33\s?|0033\s?|0)[1-9](?:[\s.-]?\d{2}){4}(?!\d)"


def setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


@dataclass
class RetentionResult:
    warned: int = 0
    warnings_cancelled: int = 0
    accounts_deleted: int = 0
    tickets_anonymised: int = 0
    deleted_records_purged: int = 0

    def summary(self) -> str:
        return (f"{self.warned} avertissement(s) envoyé(s), {self.warnings_cancelled} suppression(s) annulée(s) "
                f"(compte réutilisé), {self.accounts_deleted} compte(s) supprimé(s), {self.tickets_anonymised} "
                f"ticket(s) clos anonymisé(s), {self.deleted_records_purged} ancienne(s) suppression(s) purgée(s)")


def last_activity(user: User) -> datetime:
    return user.last_seen_at or user.created_at


def _ordinary_accounts() -> sa.Select[tuple[User]]:
    """Usager accounts: not erased, no membership, no school to administer, not an API token's account."""
    return sa.select(User).where(
        ~sa.exists().where(ErasedAccount.user_id == User.id),
        ~sa.exists().where(Membership.user_id == User.id),
        ~sa.exists().where(SchoolAdministrator.user_id == User.id),
        ~sa.exists().where(ApiToken.user_id == User.id),
    )


def _warning_notification(user: User, now: datetime, due_at: datetime) -> Notification:
    context: dict[str, Any] = {
        "reference": "Compte SAU",
        "recipient_name": user.display_name,
        "message": f"Sans connexion de votre part, il sera supprimé le {due_at.astimezone(PARIS).strftime('%d/%m/%Y')}.",
        "ticket_url": current_app.config["PUBLIC_URL"].rstrip("/") + "/auth/login",
        "preferences_url": current_app.config["PUBLIC_URL"].rstrip("/") + "/notifications/preferences",
    }
    return Notification(
        idempotency_key=f"account-warning-u{user.id}-{int(now.timestamp())}", channel=CHANNEL_EMAIL, kind=WARNING_KIND,
        event_type="account.deletion_warning", user=user, email=user.email, ticket=None,
        subject=render_subject(WARNING_KIND, context)[:300], payload=context, status=PENDING, attempts=0,
        next_attempt_at=now, created_at=now,
    )


def process_inactive_accounts(now: datetime, result: RetentionResult) -> None:
    inactivity = timedelta(days=setting("ACCOUNT_INACTIVITY_DAYS"))
    notice = timedelta(days=setting("ACCOUNT_DELETION_WARNING_DAYS"))
    # Activity after the warning cancels the deletion.
    for warning, user in db.session.execute(sa.select(AccountDeletionWarning, User)
                                            .join(User, User.id == AccountDeletionWarning.user_id)).all():
        if user.last_seen_at is not None and user.last_seen_at > warning.warned_at:
            db.session.delete(warning)
            result.warnings_cancelled += 1
    db.session.flush()
    # Warned long enough ago, still unused: deleted.
    due = db.session.scalars(_ordinary_accounts().join(AccountDeletionWarning, AccountDeletionWarning.user_id == User.id)
                             .where(AccountDeletionWarning.deletion_due_at <= now).order_by(User.id)).all()
    for user in due:
        erase_account(user, now, source=SOURCE_INACTIVITY)
        result.accounts_deleted += 1
    # Unused for (inactivity - notice): warned once, deletion due `notice` later.
    threshold = now - (inactivity - notice)
    activity = sa.func.coalesce(User.last_seen_at, User.created_at)
    candidates = db.session.scalars(_ordinary_accounts().where(
        activity <= threshold, ~sa.exists().where(AccountDeletionWarning.user_id == User.id)).order_by(User.id)).all()
    for user in candidates:
        due_at = max(now + notice, last_activity(user) + inactivity)
        db.session.add(AccountDeletionWarning(user_id=user.id, warned_at=now, deletion_due_at=due_at))
        if user.email:
            db.session.add(_warning_notification(user, now, due_at))
        result.warned += 1
    db.session.flush()


def ticket_scrubber(ticket: Ticket) -> Scrubber:
    """What identifies a ticket's requester in its text: their account's names and address, the address they
    typed; plus any e-mail address or French phone number."""
    names: list[str] = []
    literals = [ticket.requester_email or ""]
    requester = ticket.requester
    if requester is not None and db.session.get(ErasedAccount, requester.id) is None:
        names += [requester.given_name, requester.family_name, f"{requester.given_name} {requester.family_name}"]
        literals += [requester.email or ""] + [i.subject for i in requester.identities]
    scrub = Scrubber(names, literals, MASK)
    extra = re.compile(f"{EMAIL_RE}|{PHONE_RE}", re.IGNORECASE)
    base = scrub.pattern
    scrub.pattern = re.compile(f"{base.pattern}|{extra.pattern}", re.IGNORECASE) if base is not None else extra
    return scrub


def anonymise_ticket(ticket: Ticket, now: datetime) -> int:
    """Anonymise one closed ticket (see the module docstring); returns how many files were deleted. Flushes."""
    from sau.tickets.attachments import path_of

    scrub = ticket_scrubber(ticket)
    requester_id = ticket.requester_id
    addresses = {a.lower() for a in (ticket.requester_email, ticket.requester.email if ticket.requester else None) if a}
    attachments = [a for a in ticket.attachments if not a.is_internal]
    paths = [path_of(a) for a in attachments]
    for attachment in attachments:
        db.session.delete(attachment)
    db.session.flush()
    _scrub_rows(Ticket, Ticket.id == ticket.id,
                ("subject", "description", "page_url", "status_reason", "resolution_note"), (), scrub,
                fixed={"requester_id": None, "requester_email": None, "tracking_token_hash": None})
    _scrub_rows(Attachment, Attachment.ticket_id == ticket.id, ("filename",), (), scrub)
    for model, who, label in ((Comment, "author_id", "author_label"), (TicketEvent, "actor_id", "actor_label")):
        table = model.__table__
        for row in db.session.execute(sa.select(table.c.id, table.c[who], table.c[label])
                                      .where(table.c.ticket_id == ticket.id)):
            is_requester = (requester_id is not None and row[1] == requester_id) or (row[1] is None and scrub.matches(row[2]))
            if is_requester:
                _update(table, row.id, {who: None, label: REQUESTER_LABEL})
    _scrub_rows(Comment, Comment.ticket_id == ticket.id, ("author_label", "body"), (), scrub)
    _scrub_rows(TicketEvent, TicketEvent.ticket_id == ticket.id, ("actor_label",), ("data",), scrub)
    notifications = Notification.__table__
    if addresses:
        db.session.execute(notifications.update().where(notifications.c.ticket_id == ticket.id,
                                                        sa.func.lower(notifications.c.email).in_(addresses))
                           .values(email=None))
    if requester_id is not None:
        db.session.execute(notifications.update().where(notifications.c.ticket_id == ticket.id,
                                                        notifications.c.user_id == requester_id)
                           .values(user_id=None, email=None))
    ids = list(db.session.scalars(sa.select(Notification.id).where(Notification.ticket_id == ticket.id)))
    _scrub_rows(Notification, Notification.id.in_(ids), ("subject", "last_error"), ("payload",), scrub)
    _scrub_rows(DeliveryAttempt, DeliveryAttempt.notification_id.in_(ids), ("error",), (), scrub)
    db.session.add(TicketAnonymisation(ticket_id=ticket.id, anonymised_at=now))
    db.session.flush()
    for path in paths:
        path.unlink(missing_ok=True)
    return len(paths)


def process_closed_tickets(now: datetime, result: RetentionResult, batch: int = 500) -> None:
    cutoff = now - timedelta(days=setting("RETENTION_CLOSED_TICKETS_DAYS"))
    while True:
        tickets = db.session.scalars(sa.select(Ticket).where(
            Ticket.status.in_(FINAL_STATUSES), Ticket.closed_at.is_not(None), Ticket.closed_at <= cutoff,
            ~sa.exists().where(TicketAnonymisation.ticket_id == Ticket.id)).order_by(Ticket.id).limit(batch)).all()
        if not tickets:
            return
        for ticket in tickets:
            anonymise_ticket(ticket, now)
            result.tickets_anonymised += 1
        db.session.expire_all()


def purge_deleted_records(now: datetime, result: RetentionResult) -> None:
    cutoff = now - timedelta(days=setting("DELETED_ACCOUNTS_RETENTION_DAYS"))
    deleted = db.session.execute(sa.delete(DeletedAccount).where(DeletedAccount.deleted_at < cutoff)
                                 .execution_options(synchronize_session=False))
    result.deleted_records_purged += int(deleted.rowcount or 0)  # type: ignore[attr-defined]


def run_retention(now: datetime) -> RetentionResult:
    """Run the three retention rules at `now`, committing once at the end (the job's boundary). Returns counts."""
    result = RetentionResult()
    process_inactive_accounts(now, result)
    process_closed_tickets(now, result)
    purge_deleted_records(now, result)
    db.session.commit()
    return result
