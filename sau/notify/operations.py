"""Who is notified of what (issue 5, point 3), written to the outbox in the caller's transaction.

`enqueue_for_event` is called for every ticket event (from `sau.tickets.operations.record_event` and from the
SLA sweep). It only adds rows to the current session: they commit or roll back with the ticket change, and the
dispatcher delivers them after the commit. Nothing here talks to the network.
"""
from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from notifications.render import render_subject
from sau.auth.models import ROLE_AGENT, ROLE_MANAGER, ROLE_REFERENT, Membership, User
from sau.errors import NotFound, PermissionDenied, ValidationFailed, WorkflowError
from sau.extensions import db, on_postgresql
from sau.notify.models import (
    CHANNEL_EMAIL,
    CHANNEL_INAPP,
    CHANNEL_WEBHOOK,
    DEAD,
    PENDING,
    PREF_EMAIL,
    PREF_INAPP,
    SENT,
    DeliveryAttempt,
    Notification,
    NotificationPreference,
    WebhookEndpoint,
)
from sau.orgs.models import Organisation, SchoolAdministrator
from sau.tickets.models import KIND_INCIDENT, PRIORITIES, STATUSES, Comment, Ticket, TicketEvent

PARIS = ZoneInfo("Europe/Paris")

# The kinds a user may receive, with their label on the preferences page.
KIND_LABELS = {
    "request_received": "Ma demande a été reçue",
    "taken_in_charge": "Ma demande est prise en charge",
    "information_requested": "Le support me demande des informations",
    "answered": "Le support a répondu à ma demande",
    "resolved": "Ma demande est résolue",
    "reopened": "Une demande est rouverte",
    "closed": "Ma demande est close",
    "new_ticket": "Nouveau ticket dans la file de mon organisation",
    "requester_replied": "Un demandeur a répondu",
    "escalated": "Un ticket est transmis à mon organisation",
    "sla_at_risk": "Échéance SLA bientôt atteinte",
    "sla_breached": "Échéance SLA dépassée",
    "incident_resolved": "Incident de ma commune résolu",
    "security_alert": "Alerte de sécurité d'une commune (contacts sécurité de la Métropole)",
    "maintenance_announced": "Maintenance programmée d'un service de ma commune",
    "maintenance_changed": "Maintenance programmée modifiée",
    "maintenance_cancelled": "Maintenance programmée annulée",
    "maintenance_reminder": "Rappel avant une maintenance programmée",
}
log = logging.getLogger(__name__)

# Events a connector's webhook does not receive: internal notes and the SLA's internal alerts.
NOT_FOR_WEBHOOKS = frozenset({"comment.internal", "sla.at_risk", "sla.breached"})


@dataclass(frozen=True)
class Person:
    user: User | None
    email: str | None
    is_requester: bool = False

    @property
    def key(self) -> str:
        return f"u{self.user.id}" if self.user is not None and self.user.id else f"e{(self.email or '').lower()}"


@dataclass
class Plan:
    kind: str
    people: list[Person]
    extra: dict[str, Any] = field(default_factory=dict)


# --- who ------------------------------------------------------------------------------------------


def _requester(ticket: Ticket) -> list[Person]:
    if ticket.requester is not None:
        return [Person(ticket.requester, ticket.requester.email or ticket.requester_email, is_requester=True)]
    if ticket.requester_email:
        return [Person(None, ticket.requester_email, is_requester=True)]
    return []


def _members(organisation_id: int | None, roles: tuple[str, ...]) -> list[Person]:
    if organisation_id is None:
        return []
    users = db.session.scalars(
        sa.select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id == organisation_id, Membership.role.in_(roles),
               User.is_active_account.is_(True))
        .order_by(User.id).distinct()
    )
    return [Person(u, u.email) for u in users]


def _org_id(ticket: Ticket) -> int | None:
    # The relationship, not the column: an escalation or transfer changes it before the flush.
    return ticket.organisation.id if ticket.organisation is not None else ticket.organisation_id


def _queue_people(ticket: Ticket) -> list[Person]:
    """Who works the ticket's queue: the organisation's agents (its managers if it has none), and for a
    level-1 laclasse.com ticket the school's administrators (laclasse annex)."""
    people = _members(_org_id(ticket), (ROLE_AGENT,))
    if not people:
        people = _members(_org_id(ticket), (ROLE_MANAGER,))
    school_id = ticket.school.id if ticket.school is not None else ticket.school_id
    if school_id is not None and ticket.level == 1:
        admins = db.session.scalars(
            sa.select(User).join(SchoolAdministrator, SchoolAdministrator.user_id == User.id)
            .where(SchoolAdministrator.school_id == school_id, User.is_active_account.is_(True))
        )
        people += [Person(u, u.email) for u in admins]
    return people


def _assignee_or_queue(ticket: Ticket) -> list[Person]:
    if ticket.assignee is not None:
        return [Person(ticket.assignee, ticket.assignee.email)]
    return _queue_people(ticket)


def _comment_body(ticket: Ticket, comment_id: Any) -> str:
    for comment in ticket.comments:
        if comment.id == comment_id:
            return comment.body
    found = db.session.get(Comment, comment_id) if comment_id else None
    return found.body if found is not None else ""


def _plans(ticket: Ticket, event: TicketEvent) -> list[Plan]:
    data = event.data or {}
    t = event.type
    if t == "ticket.created":
        return [Plan("request_received", _requester(ticket))]
    if t == "ticket.routed":
        return [Plan("new_ticket", _queue_people(ticket))]
    if t == "status.changed" and data.get("before") == "nouveau" and data.get("after") == "en_cours":
        return [Plan("taken_in_charge", _requester(ticket))]
    if t == "comment.public":
        return [Plan("answered", _requester(ticket), {"message": _comment_body(ticket, data.get("comment_id"))})]
    if t == "requester.replied":
        return [Plan("requester_replied", _assignee_or_queue(ticket),
                     {"message": _comment_body(ticket, data.get("comment_id"))})]
    if t == "ticket.resolved":
        plans = [Plan("resolved", _requester(ticket), {"message": data.get("resolution_note") or ""})]
        # "The commune is notified as soon as an incident is resolved" (Toodego annex § 6.1.a).
        if ticket.kind == KIND_INCIDENT and ticket.commune is not None:
            plans.append(Plan("incident_resolved", _members(ticket.commune.id, (ROLE_REFERENT,)),
                              {"message": data.get("resolution_note") or ""}))
        return plans
    if t == "ticket.reopened":
        by_requester = event.actor is None or (ticket.requester is not None and event.actor is ticket.requester)
        people = _assignee_or_queue(ticket) if by_requester else _requester(ticket)
        return [Plan("reopened", people, {"message": data.get("reason") or ""})]
    if t in ("ticket.closed", "ticket.rejected", "ticket.duplicate"):
        return [Plan("closed", _requester(ticket), {"message": data.get("reason") or ""})]
    if t in ("ticket.escalated", "ticket.transferred"):
        return [Plan("escalated", _queue_people(ticket), {"message": data.get("reason") or ""})]
    if t == "sla.at_risk":
        return [Plan("sla_at_risk", _assignee_or_queue(ticket), {"deadline": _deadline(data)})]
    if t == "security.alert":
        return [Plan("security_alert", security_contacts(), _alert_extra(data))]
    if t == "sla.breached":
        return [Plan("sla_breached", _members(_org_id(ticket), (ROLE_MANAGER,)), {"deadline": _deadline(data)})]
    return []


def security_contacts() -> list[Person]:
    """The Métropole's security contacts, who receive security alerts at once (Toodego annex § 8): the
    Métropole's managers (memberships granted by admins) and the shared mailboxes of the setting
    SECURITY_CONTACT_EMAILS (e-mail only)."""
    from sau.routing.operations import metropole

    people = _members(metropole().id, (ROLE_MANAGER,))
    people += [Person(None, email) for email in current_app.config.get("SECURITY_CONTACT_EMAILS") or ()]
    return people


def _alert_extra(data: dict[str, Any]) -> dict[str, Any]:
    detected = datetime.fromisoformat(data["detected_at"]).astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
    within = "oui" if data.get("within_8h") else "non (plus de 8 heures après la détection)"
    return {"message": f"Attaque détectée le {detected} ; alerte dans les 8 heures : {within}."}


def _deadline(data: dict[str, Any]) -> str:
    raw = data.get("deadline_at")
    if not raw:
        return "—"
    return datetime.fromisoformat(raw).astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


# --- what -----------------------------------------------------------------------------------------


def _public_url(path: str) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def _ticket_url(ticket: Ticket, person: Person) -> str:
    if not person.is_requester:
        return _public_url(f"/agent/tickets/{ticket.reference}")
    # The plain tracking token exists only while the request is being created (only its hash is stored):
    # the first e-mail carries the anonymous requester's secret link.
    token = getattr(ticket, "new_tracking_token", None)
    return _public_url(f"/suivi/{ticket.reference}" + (f"?jeton={token}" if token and person.user is None else ""))


def _context(ticket: Ticket, person: Person, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "subject": ticket.subject,
        "organisation_name": ticket.organisation.name if ticket.organisation else "",
        "service_name": ticket.service.name if ticket.service else "",
        "commune_name": ticket.commune.name if ticket.commune else "",
        "status_label": STATUSES.get(ticket.status, ticket.status),
        "priority_label": PRIORITIES.get(ticket.priority or "", "non définie"),
        "level": ticket.level,
        "recipient_name": person.user.display_name if person.user is not None else "",
        "ticket_url": _ticket_url(ticket, person),
        "preferences_url": _public_url("/notifications/preferences"),
        "message": "",
        **extra,
    }


def _preferences(user_ids: set[int]) -> dict[tuple[int, str], str]:
    if not user_ids:
        return {}
    rows = db.session.execute(sa.select(NotificationPreference.user_id, NotificationPreference.kind,
                                        NotificationPreference.channel)
                              .where(NotificationPreference.user_id.in_(user_ids)))
    return {(uid, kind): channel for uid, kind, channel in rows}


def _new_key() -> str:
    return uuid.uuid4().hex


def _add(ticket: Ticket, event_type: str, channel: str, kind: str, subject: str, payload: dict[str, Any],
         now: datetime, *, user: User | None = None, email: str | None = None,
         endpoint: WebhookEndpoint | None = None) -> Notification:
    is_inapp = channel == CHANNEL_INAPP
    notification = Notification(
        idempotency_key=_new_key(), channel=channel, kind=kind, event_type=event_type, user=user, email=email,
        endpoint=endpoint, ticket=ticket, subject=subject[:300], payload=payload,
        # In-app notifications are delivered by being stored; the others wait for the dispatcher.
        status=SENT if is_inapp else PENDING, sent_at=now if is_inapp else None,
        attempts=0, next_attempt_at=now, created_at=now,
    )
    db.session.add(notification)
    return notification


def enqueue_for_event(ticket: Ticket, event: TicketEvent, now: datetime) -> list[Notification]:
    """Add to the session the notifications caused by `event` on `ticket`: e-mail and/or in-app per person
    (each user's preference), and a signed webhook per active endpoint of the ticket's organisation.
    Returns them (not flushed)."""
    return enqueue_for_events(ticket, [event], now)


def enqueue_for_events(ticket: Ticket, events: list[TicketEvent], now: datetime) -> list[Notification]:
    """`enqueue_for_event` for several events of one ticket recorded together (e.g. "created" then "routed"):
    same notifications in the same order, the webhook endpoints of an organisation looked up once."""
    endpoints: dict[frozenset[int], list[WebhookEndpoint]] = {}
    added: list[Notification] = []
    with db.session.no_autoflush:
        for event in events:
            added += _enqueue_people(ticket, event, now)
            added += _enqueue_webhooks(ticket, event, now, endpoints)
    return added


def _locked_fanouts(stmt: Any, *, skip_locked: bool) -> list[Any]:
    if on_postgresql():
        stmt = stmt.with_for_update(skip_locked=skip_locked)
    return list(db.session.scalars(stmt))


def _expand(fanout: Any) -> bool:
    """Claim a fan-out row (delete it) and enqueue the notifications of its events, dated at the events' time so
    that they are delivered in the order things happened, in the caller's transaction. False when another
    dispatcher or request claimed it first (the row was gone): nothing is enqueued. The DELETE comes first, so the
    claim holds the row (PostgreSQL) or the database (SQLite) until the caller's commit."""
    from sau.notify.models import NotificationFanout

    table = NotificationFanout.__table__
    ticket, first, last, token, at = (fanout.ticket, fanout.first_event_id, fanout.last_event_id,
                                      fanout.tracking_token, fanout.created_at)
    claimed = db.session.connection().execute(sa.delete(table).where(table.c.id == fanout.id)).rowcount
    db.session.expunge(fanout)
    if claimed != 1:
        return False
    events = [e for e in ticket.events if e.id is not None and first <= e.id <= last]
    ticket.new_tracking_token = token  # the receipt's secret link, for these events only
    try:
        enqueue_for_events(ticket, events, at)
    finally:
        ticket.new_tracking_token = None
    return True


def expand_fanouts_of(ticket: Ticket) -> None:
    """Before a new event of a ticket is notified: the ticket's pending fan-out first, in this transaction (its
    notifications come first; PostgreSQL: waits for a dispatcher expanding it at that moment, then finds none)."""
    from sau.notify.models import NotificationFanout

    if ticket.id is None:
        return
    with db.session.no_autoflush:  # the caller's changes are flushed by the caller, once (the ticket's version)
        rows = _locked_fanouts(sa.select(NotificationFanout).where(NotificationFanout.ticket_id == ticket.id)
                               .order_by(NotificationFanout.id), skip_locked=False)
        for fanout in rows:
            _expand(fanout)


def expand_all_fanouts() -> int:
    """Every pending fan-out, in this transaction: before a change that must not apply to events that already
    happened (an endpoint disabled: the requests it was subscribed to are still queued for it)."""
    from sau.notify.models import NotificationFanout

    rows = _locked_fanouts(sa.select(NotificationFanout).order_by(NotificationFanout.id), skip_locked=False)
    return sum(_expand(fanout) for fanout in rows)


def expand_fanouts(limit: int = 500, *, seconds: float | None = None, batch: int = 50) -> int:
    """Turn pending `NotificationFanout` rows (new requests) into notifications, oldest first, `batch` rows per
    transaction, each row claimed with its deletion: a row is expanded exactly once, even with several
    dispatchers (PostgreSQL: the rows are locked, and a dispatcher skips the rows another one holds). Stops after
    `limit` rows or `seconds` (wall clock), whichever comes first. Returns how many rows were expanded. When a
    batch fails, the run goes on one row per transaction: the failing row is logged, left in place and retried at
    the next run, the others are expanded. Run by the dispatcher before it delivers, and by the scheduler's
    `notify-fanout` job every NOTIFY_FANOUT_SECONDS (a rush of requests is expanded without waiting for the
    deliveries)."""
    from sau.notify.models import NotificationFanout

    done = 0
    failed: set[int] = set()
    deadline = time.monotonic() + seconds if seconds is not None else None
    while done + len(failed) < limit and (deadline is None or time.monotonic() < deadline):
        # The batch's tickets, their logs and what the messages name are loaded in a few queries, not per ticket.
        stmt = sa.select(NotificationFanout).order_by(NotificationFanout.id).options(
            selectinload(NotificationFanout.ticket).selectinload(Ticket.events),
            *(selectinload(NotificationFanout.ticket).selectinload(rel) for rel in (
                Ticket.service, Ticket.organisation, Ticket.commune, Ticket.school, Ticket.requester,
                Ticket.assignee)),
        )
        stmt = stmt.limit(min(batch, limit - done - len(failed)))
        if failed:
            stmt = stmt.where(NotificationFanout.id.not_in(failed))
        found = _locked_fanouts(stmt, skip_locked=True)
        if not found:
            db.session.rollback()
            break
        ids = [f.id for f in found]
        try:
            with db.session.no_autoflush:  # one flush for the batch, at the commit
                claimed = sum(_expand(f) for f in found)  # a row claimed first by another dispatcher counts 0
            db.session.commit()
            done += claimed
        except Exception:
            db.session.rollback()
            if len(ids) > 1:
                batch = 1  # find the row that fails, expand the others
                continue
            log.exception("notification fan-out %s failed; retried at the next run", ids[0])
            failed.add(ids[0])
    return done


def _enqueue_people(ticket: Ticket, event: TicketEvent, now: datetime) -> list[Notification]:
    if event.type == "ticket.waiting":
        return _upgrade_to_question(ticket, now)
    plans = _plans(ticket, event)
    if not plans:
        return []
    actor = event.actor
    users = {p.user.id for plan in plans for p in plan.people if p.user is not None and p.user.id}
    prefs = _preferences(users)
    added: list[Notification] = []
    seen: set[tuple[str, str]] = set()
    for plan in plans:
        for person in plan.people:
            # Nobody is told about their own action, except the requester's receipt of a new request.
            if actor is not None and person.user is actor and plan.kind != "request_received":
                continue
            if (person.key, plan.kind) in seen or (person.user is None and not person.email):
                continue
            seen.add((person.key, plan.kind))
            context = _context(ticket, person, plan.extra)
            subject = render_subject(plan.kind, context)
            if person.user is not None:
                added.append(_add(ticket, event.type, CHANNEL_INAPP, plan.kind, subject, context, now, user=person.user))
            wants_email = person.user is None or prefs.get((person.user.id, plan.kind), PREF_EMAIL) == PREF_EMAIL
            if wants_email and person.email:
                added.append(_add(ticket, event.type, CHANNEL_EMAIL, plan.kind, subject, context, now,
                                  user=person.user, email=person.email))
    return added


def _upgrade_to_question(ticket: Ticket, now: datetime) -> list[Notification]:
    """A question to the requester is a public reply followed by "waiting": the reply's pending notifications
    (same transaction) become one "information requested" message instead of two messages."""
    changed = []
    candidates = [obj for obj in db.session.new if isinstance(obj, Notification) and obj.ticket is ticket]
    if ticket.id is not None:  # already flushed with the reply
        candidates += db.session.scalars(sa.select(Notification).where(
            Notification.ticket_id == ticket.id, Notification.event_type == "comment.public",
            Notification.created_at == now, Notification.status.in_((PENDING, SENT)), Notification.sent_at.is_(None)
            | (Notification.channel == CHANNEL_INAPP)))
    for obj in candidates:
        if obj.kind == "answered":
            obj.kind = "information_requested"
            obj.payload = {**obj.payload}
            obj.subject = render_subject(obj.kind, obj.payload)[:300]
            changed.append(obj)
    return changed


def _enqueue_webhooks(ticket: Ticket, event: TicketEvent, now: datetime,
                      cache: dict[frozenset[int], list[WebhookEndpoint]] | None = None) -> list[Notification]:
    if event.type in NOT_FOR_WEBHOOKS:
        return []
    org_ids = {_org_id(ticket)}
    before = (event.data or {}).get("before")
    if event.type in ("ticket.escalated", "ticket.transferred") and isinstance(before, dict):
        previous = db.session.scalar(sa.select(Organisation.id).where(Organisation.code == before.get("organisation")))
        org_ids.add(previous)
    org_ids.discard(None)
    if not org_ids:
        return []
    key = frozenset(org_ids)
    endpoints = cache.get(key) if cache is not None else None
    if endpoints is None:
        endpoints = list(db.session.scalars(sa.select(WebhookEndpoint).where(
            WebhookEndpoint.organisation_id.in_(org_ids), WebhookEndpoint.is_active.is_(True))))
        if cache is not None:
            cache[key] = endpoints
    added = []
    for endpoint in endpoints:
        if not endpoint.is_subscribed(event.type):
            continue
        key = _new_key()
        body = _webhook_body(key, ticket, event, now)
        notification = _add(ticket, event.type, CHANNEL_WEBHOOK, "webhook", f"{event.type} {ticket.reference}",
                            {"body": body}, now, endpoint=endpoint)
        notification.idempotency_key = key
        added.append(notification)
    return added


def _webhook_body(key: str, ticket: Ticket, event: TicketEvent, now: datetime) -> dict[str, Any]:
    data = dict(event.data or {})
    body: dict[str, Any] = {
        "id": key,
        "type": event.type,
        "occurred_at": now.isoformat(),
        "actor": event.actor_label,
        "ticket": {
            "reference": ticket.reference,
            "kind": ticket.kind,
            "status": ticket.status,
            "priority": ticket.priority,
            "level": ticket.level,
            "subject": ticket.subject,
            "service": ticket.service.code if ticket.service else None,
            "organisation": ticket.organisation.code if ticket.organisation else None,
            "commune": ticket.commune.code if ticket.commune else None,
            "url": _public_url(f"/agent/tickets/{ticket.reference}"),
        },
        "data": data,
    }
    if event.type in ("comment.public", "requester.replied") and data.get("comment_id"):
        body["comment"] = {"id": data["comment_id"], "body": _comment_body(ticket, data["comment_id"])}
    return body


# --- in-app, preferences, dead letters ------------------------------------------------------------


def unread_count(user: User) -> int:
    return db.session.scalar(sa.select(sa.func.count(Notification.id)).where(
        Notification.user_id == user.id, Notification.channel == CHANNEL_INAPP, Notification.read_at.is_(None))) or 0


def inbox(user: User, limit: int = 100) -> list[Notification]:
    return list(db.session.scalars(
        sa.select(Notification).where(Notification.user_id == user.id, Notification.channel == CHANNEL_INAPP)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)))


def mark_read(user: User, notification_id: int | None, now: datetime) -> int:
    """Mark one of `user`'s in-app notifications (or all of them when `notification_id` is None) as read.
    Returns how many changed. Raises NotFound for someone else's notification."""
    if notification_id is not None:
        notification = db.session.get(Notification, notification_id)
        if notification is None or notification.user_id != user.id or notification.channel != CHANNEL_INAPP:
            raise NotFound("Notification introuvable.")
        if notification.read_at is not None:
            return 0
        notification.read_at = now
        db.session.flush()
        return 1
    result = db.session.execute(
        sa.update(Notification).where(Notification.user_id == user.id, Notification.channel == CHANNEL_INAPP,
                                      Notification.read_at.is_(None)).values(read_at=now)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def preferences_of(user: User) -> dict[str, str]:
    """Every kind with the user's choice (e-mail by default)."""
    stored = _preferences({user.id})
    return {kind: stored.get((user.id, kind), PREF_EMAIL) for kind in KIND_LABELS}


def set_preferences(user: User, choices: dict[str, str], now: datetime) -> None:
    """Store the user's choice per kind. Raises ValidationFailed for an unknown kind or channel."""
    bad = {k: "Choix invalide." for k, v in choices.items() if k not in KIND_LABELS or v not in (PREF_EMAIL, PREF_INAPP)}
    if bad:
        raise ValidationFailed("Préférences invalides.", bad)
    existing = {p.kind: p for p in db.session.scalars(
        sa.select(NotificationPreference).where(NotificationPreference.user_id == user.id))}
    for kind, channel in choices.items():
        pref = existing.get(kind)
        if pref is None:
            db.session.add(NotificationPreference(user_id=user.id, kind=kind, channel=channel, updated_at=now))
        elif pref.channel != channel:
            pref.channel, pref.updated_at = channel, now
    db.session.flush()


def dead_letters(limit: int = 200) -> list[Notification]:
    return list(db.session.scalars(sa.select(Notification).where(Notification.status == DEAD)
                                   .order_by(Notification.id.desc()).limit(limit)))


def retry(actor: User, notification_id: int, now: datetime) -> Notification:
    """Put a dead notification back in the queue (its idempotency key, hence Message-ID, is kept).
    Raises PermissionDenied, NotFound or WorkflowError."""
    from sau.auth.policy import is_admin

    if not is_admin(actor):
        raise PermissionDenied("Réservé aux administrateurs de la Métropole.")
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        raise NotFound("Notification introuvable.")
    if notification.status != DEAD:
        raise WorkflowError("Seule une notification abandonnée peut être relancée.")
    notification.status = PENDING
    notification.attempts = 0
    notification.next_attempt_at = now
    db.session.flush()
    return notification


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# The ticket events a connector may subscribe to (the others never leave the SAU: NOT_FOR_WEBHOOKS).
WEBHOOK_EVENTS = {
    "ticket.created": "Demande créée",
    "ticket.routed": "Demande orientée",
    "ticket.assigned": "Demande attribuée",
    "priority.set": "Priorité modifiée",
    "status.changed": "Statut modifié",
    "comment.public": "Réponse publique",
    "requester.replied": "Réponse du demandeur",
    "attachment.added": "Pièce jointe ajoutée",
    "ticket.waiting": "Information demandée",
    "ticket.waiting_ended": "Information reçue",
    "ticket.resolved": "Demande résolue",
    "ticket.closed": "Demande close",
    "ticket.reopened": "Demande rouverte",
    "ticket.rejected": "Demande rejetée",
    "ticket.duplicate": "Demande marquée en doublon",
    "ticket.escalated": "Demande escaladée",
    "ticket.transferred": "Demande transférée",
}


def validate_webhook_url(url: str) -> str:
    """The URL, stripped, if it is https (or http to the loopback interface, for local tests and tunnels).
    Raises ValidationFailed otherwise."""
    url = (url or "").strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    ok = bool(host) and len(url) <= 2000 and (
        parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS))
    if not ok:
        raise ValidationFailed("Adresse de webhook invalide.",
                               {"url": "Une adresse https://… est attendue (http:// seulement vers 127.0.0.1)."})
    return url


def _endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    # Never the secret: the journal is read by every admin.
    return {"organisation": endpoint.organisation.code, "url": endpoint.url, "events": endpoint.events,
            "is_active": endpoint.is_active}


def _endpoint_label(endpoint: WebhookEndpoint) -> str:
    return f"{endpoint.organisation.name} — {endpoint.url}"


def _require_admin(actor: User) -> None:
    from sau.auth.policy import is_admin

    if not is_admin(actor):
        raise PermissionDenied("Réservé aux administrateurs de la Métropole.")


def add_webhook_endpoint(organisation: Organisation, url: str, now: datetime, secret: str | None = None,
                         events: list[str] | None = None) -> WebhookEndpoint:
    """Register a connector endpoint for `organisation`; returns it (the secret is shared with the receiver).
    Raises ValidationFailed for a URL that is neither https nor loopback http, or an unknown event."""
    url = validate_webhook_url(url)
    if events is not None:
        unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
        if unknown or not events:
            raise ValidationFailed("Événements invalides.", {"events": "Choisissez au moins un événement connu."})
        events = [e for e in WEBHOOK_EVENTS if e in events]  # stable order
    endpoint = WebhookEndpoint(organisation=organisation, url=url, secret=secret or secrets.token_urlsafe(32),
                               is_active=True, events=events, created_at=now)
    db.session.add(endpoint)
    db.session.flush()
    return endpoint


def create_webhook_endpoint(actor: User, organisation: Organisation, url: str, events: list[str],
                            now: datetime) -> WebhookEndpoint:
    """An admin registers an endpoint (secret generated; show it once). Journaled without the secret.
    Raises PermissionDenied or ValidationFailed."""
    from sau.admin.operations import record

    _require_admin(actor)
    endpoint = add_webhook_endpoint(organisation, url, now, events=events)
    record(actor, now, "webhook_endpoint.created", "webhook_endpoint", endpoint.id, _endpoint_label(endpoint),
           after=_endpoint_snapshot(endpoint))
    return endpoint


def set_webhook_endpoint_active(actor: User, endpoint: WebhookEndpoint, is_active: bool,
                                now: datetime) -> WebhookEndpoint:
    """Disable (no new deliveries, pending ones are not sent) or re-enable an endpoint. Journaled.
    Raises PermissionDenied."""
    from sau.admin.operations import record

    _require_admin(actor)
    if endpoint.is_active == is_active:
        return endpoint
    if not is_active:
        expand_all_fanouts()  # requests made before this change stay queued for the endpoint
    before = _endpoint_snapshot(endpoint)
    endpoint.is_active = is_active
    db.session.flush()
    record(actor, now, "webhook_endpoint.enabled" if is_active else "webhook_endpoint.disabled", "webhook_endpoint", endpoint.id,
           _endpoint_label(endpoint), before=before, after=_endpoint_snapshot(endpoint))
    return endpoint


def rotate_webhook_secret(actor: User, endpoint: WebhookEndpoint, now: datetime) -> str:
    """Replace the endpoint's HMAC secret; returns the new one (show it once). Deliveries still pending are
    signed with the new secret. Journaled without the secret. Raises PermissionDenied."""
    from sau.admin.operations import record

    _require_admin(actor)
    endpoint.secret = secrets.token_urlsafe(32)
    endpoint.secret_rotated_at = now
    db.session.flush()
    record(actor, now, "webhook_endpoint.secret_rotated", "webhook_endpoint", endpoint.id, _endpoint_label(endpoint),
           after={"secret_rotated_at": now.isoformat()})
    return endpoint.secret


def webhook_endpoints() -> list[WebhookEndpoint]:
    """Every endpoint, grouped by organisation (name), oldest first within one."""
    return list(db.session.scalars(sa.select(WebhookEndpoint).join(WebhookEndpoint.organisation)
                                   .order_by(Organisation.name, WebhookEndpoint.id)))


def endpoint_deliveries(endpoint: WebhookEndpoint, limit: int = 100) -> list[tuple[DeliveryAttempt, Notification]]:
    """The endpoint's last `limit` delivery attempts, newest first, with their notification."""
    stmt = (sa.select(DeliveryAttempt, Notification).join(Notification, DeliveryAttempt.notification_id == Notification.id)
            .where(Notification.endpoint_id == endpoint.id)
            .order_by(DeliveryAttempt.at.desc(), DeliveryAttempt.id.desc()).limit(limit))
    return [(attempt, notification) for attempt, notification in db.session.execute(stmt)]


# --- scheduled maintenance (issue 6, point 3) -----------------------------------------------------------

MAINTENANCE_STEPS = ("announced", "changed", "cancelled", "reminder")


def maintenance_recipients(service_id: int, on: Any) -> list[User]:
    """Every active référent (for every service, or for this one) of every active commune with a subscription to
    the service active on `on` (a date)."""
    from sau.orgs.models import ORG_COMMUNE, Subscription

    active = sa.and_(Subscription.starts_on <= on, sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= on))
    org_ids = sa.select(Subscription.organisation_id).join(Organisation, Organisation.id == Subscription.organisation_id) \
        .where(Subscription.service_id == service_id, active, Organisation.kind == ORG_COMMUNE,
               Organisation.is_active.is_(True))
    return list(db.session.scalars(
        sa.select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.organisation_id.in_(org_ids), Membership.role == ROLE_REFERENT,
               # A référent named for one service hears only of that service.
               sa.or_(Membership.service_id.is_(None), Membership.service_id == service_id),
               User.is_active_account.is_(True))
        .order_by(User.id).distinct()))


def enqueue_maintenance(maintenance: Any, step: str, now: datetime) -> list[Notification]:
    """Tell every référent of every commune subscribed to the maintenance's service about `step` (announced,
    changed, cancelled, reminder) of `maintenance` (a sau.status.models.Maintenance, flushed). Exactly once per
    (maintenance, step, version, user, channel): the idempotency key is derived from them, and a key already in
    the outbox is skipped. Adds to the session (not flushed) and returns the new rows."""
    if step not in MAINTENANCE_STEPS:
        raise ValueError(f"unknown maintenance step {step!r}")
    kind = f"maintenance_{step}"
    people = maintenance_recipients(maintenance.service_id, now.astimezone(PARIS).date())
    prefix = f"maint-{maintenance.id}-{step}-v{maintenance.version}-"
    existing = set(db.session.scalars(sa.select(Notification.idempotency_key)
                                      .where(Notification.idempotency_key.like(prefix + "%"))))
    existing |= {o.idempotency_key for o in db.session.new if isinstance(o, Notification)}
    prefs = _preferences({u.id for u in people})
    window = "du {} au {}".format(maintenance.starts_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M"),
                                  maintenance.ends_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M"))
    added: list[Notification] = []
    for user in people:
        context = {
            "reference": f"MAINT-{maintenance.id}", "subject": window, "message": maintenance.impact or "",
            "service_name": maintenance.service.name, "recipient_name": user.display_name,
            "ticket_url": _public_url(f"/statut/{maintenance.service.code}"),
            "preferences_url": _public_url("/notifications/preferences"),
        }
        subject = render_subject(kind, context)
        channels = [CHANNEL_INAPP]
        if prefs.get((user.id, kind), PREF_EMAIL) == PREF_EMAIL and user.email:
            channels.append(CHANNEL_EMAIL)
        for channel in channels:
            key = f"{prefix}u{user.id}-{channel}"
            if key in existing:
                continue
            existing.add(key)
            notification = _add(None, f"maintenance.{step}", channel, kind, subject, context, now,  # type: ignore[arg-type]
                                user=user, email=user.email if channel == CHANNEL_EMAIL else None)
            notification.idempotency_key = key
            added.append(notification)
    return added
