"""Incident tickets opened by a commune and security alerts (convention art. 6.1; Toodego annex § 6.1.a, § 8).

An incident is a ticket of kind "incident" created by `sau.tickets.operations.create_request`, which routes
every incident to the Métropole's support (level 1) whatever the routing rules say; the Métropole then
diagnoses and sets the priority (the ordinary workflow, with its SLA). A security alert is an incident whose
priority is set to "bloquant" by the system at creation (a "priority.set" event, so the SLA clock starts),
plus a `SecurityAlert` record with the detection time; the "security.alert" event notifies the Métropole's
security contacts (`sau.notify.operations`). Functions take the actor and `now`, flush; the caller commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sau.auth import policy
from sau.auth.models import User
from sau.errors import NotFound, PermissionDenied, ValidationFailed
from sau.extensions import db
from sau.incidents.models import SecurityAlert
from sau.incidents.schemas import DESCRIPTION_MAX, SUBJECT_MAX
from sau.orgs.models import ORG_COMMUNE, Organisation, Service, Subscription
from sau.tickets import operations as ops
from sau.tickets.models import BLOQUANT, KIND_INCIDENT, Ticket

PARIS = ZoneInfo("Europe/Paris")
NOT_YOUR_COMMUNE = "Vous n'êtes ni référent ni agent de cette commune."
FIELD_LABELS = {"commune": "commune", "service": "service", "subject": "objet", "description": "description",
                "detected_at": "date de détection"}


def _invalid(errors: dict[str, str]) -> ValidationFailed:
    names = ", ".join(FIELD_LABELS.get(f, f) for f in errors)
    return ValidationFailed(f"Certains champs sont invalides : {names}.", errors)


@dataclass(frozen=True)
class NewIncident:
    commune_code: str | None
    service_code: str | None
    subject: str
    description: str


def communes_of(user: User) -> list[Organisation]:
    ids = policy.incident_commune_ids(user)
    if not ids:
        return []
    return list(db.session.scalars(sa.select(Organisation).where(Organisation.id.in_(ids)).order_by(Organisation.name)))


def subscriptions_of(commune: Organisation, now: datetime) -> list[Subscription]:
    """The commune's subscriptions in force today, by service name."""
    today = now.astimezone(PARIS).date()
    subs = [s for s in commune.subscriptions if s.is_active_on(today)]
    return sorted(subs, key=lambda s: s.service.name)


def subscription_for(ticket: Ticket) -> Subscription | None:
    """The commune's subscription to the ticket's service when the ticket was opened."""
    if ticket.commune is None:
        return None
    return ticket.commune.active_subscription(ticket.service, ticket.created_at.astimezone(PARIS).date())


def _resolve(actor: User, new: NewIncident, now: datetime, errors: dict[str, str]) -> tuple[Organisation, Service]:
    """The commune (one of the actor's) and a service it subscribes to. Raises PermissionDenied/ValidationFailed."""
    if not policy.can_open_incident(actor):
        raise PermissionDenied("Seuls les référents et agents d'une commune peuvent signaler un incident.")
    mine = communes_of(actor)
    commune: Organisation | None = None
    if new.commune_code:
        commune = next((c for c in mine if c.code == new.commune_code), None)
        if commune is None:
            exists = db.session.scalar(sa.select(Organisation.id).where(Organisation.code == new.commune_code,
                                                                         Organisation.kind == ORG_COMMUNE))
            if exists is not None:
                raise PermissionDenied(NOT_YOUR_COMMUNE)
            errors["commune"] = "Commune inconnue."
    elif len(mine) == 1:
        commune = mine[0]
    else:
        errors["commune"] = "Choisissez la commune concernée."
    service = None
    if not new.service_code:
        errors["service"] = "Choisissez le service concerné."
    elif commune is not None:
        sub = next((s for s in subscriptions_of(commune, now) if s.service.code == new.service_code), None)
        if sub is None:
            errors["service"] = f"{commune.name} n'adhère pas à ce service : choisissez un service de ses adhésions."
        else:
            service = sub.service
    subject, description = new.subject.strip(), new.description.strip()
    if not subject:
        errors["subject"] = "Indiquez l'objet de l'incident."
    elif len(subject) > SUBJECT_MAX:
        errors["subject"] = f"L'objet ne doit pas dépasser {SUBJECT_MAX} caractères."
    if len(description) < 10 or len(description) > DESCRIPTION_MAX:
        errors["description"] = f"La description doit compter entre 10 et {DESCRIPTION_MAX} caractères."
    if errors:
        raise _invalid(errors)
    assert commune is not None and service is not None
    return commune, service


def open_incident(actor: User, new: NewIncident, now: datetime) -> Ticket:
    """Create an incident ticket for one of the actor's communes about a service it subscribes to, routed to the
    Métropole's support. Raises PermissionDenied (not a référent/agent of that commune) or ValidationFailed."""
    commune, service = _resolve(actor, new, now, {})
    created = ops.create_request(
        ops.NewRequest(service=service, subject=new.subject.strip(), description=new.description.strip(),
                       commune=commune, kind=KIND_INCIDENT),
        actor, now,
    )
    return created.ticket


def parse_detected_at(value: str | None) -> datetime | None:
    """A `datetime-local` value (Paris time) or an ISO 8601 instant; None when unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PARIS)
    return parsed


def report_security_alert(actor: User, new: NewIncident, detected_at: datetime | None, now: datetime) -> SecurityAlert:
    """Report an attack or compromise detected at `detected_at`: an incident ticket with priority "bloquant"
    (set by the system, logged), the alert record, and the "security.alert" event that notifies the
    Métropole's security contacts at once. Raises PermissionDenied or ValidationFailed (French messages)."""
    errors: dict[str, str] = {}
    if detected_at is None:
        errors["detected_at"] = "Indiquez la date et l'heure de détection (par exemple 10/03/2026 08:30)."
    elif detected_at > now:
        errors["detected_at"] = "La date de détection ne peut pas être dans le futur."
    commune, service = _resolve(actor, new, now, errors)
    assert detected_at is not None
    ticket = ops.create_request(
        ops.NewRequest(service=service, subject=new.subject.strip(), description=new.description.strip(),
                       commune=commune, kind=KIND_INCIDENT),
        actor, now,
    ).ticket
    ticket.priority = BLOQUANT
    ticket.priority_set_at = now
    ops.record_event(ticket, "priority.set", now, None,
                     {"before": None, "after": BLOQUANT,
                      "justification": "Alerte de sécurité : priorité bloquante par défaut (annexe Toodego § 8)."},
                     is_public=False)
    alert = SecurityAlert(ticket=ticket, commune=commune, service=service, reported_by=actor,
                          detected_at=detected_at, reported_at=now)
    db.session.add(alert)
    ops.record_event(ticket, "security.alert", now, actor,
                     {"detected_at": detected_at.isoformat(), "reported_at": now.isoformat(),
                      "within_8h": alert.within_deadline},
                     is_public=False)
    ops._finish(ticket, now)
    return alert


def alert_of(ticket: Ticket) -> SecurityAlert | None:
    return db.session.scalar(sa.select(SecurityAlert).where(SecurityAlert.ticket_id == ticket.id))


def incidents_for(user: User, limit: int = 200) -> list[Ticket]:
    """The incidents of the user's communes, newest first."""
    ids = policy.incident_commune_ids(user)
    if not ids:
        return []
    return list(db.session.scalars(
        sa.select(Ticket).where(Ticket.kind == KIND_INCIDENT, Ticket.commune_id.in_(ids))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)))


def alerts_by_ticket(tickets: list[Ticket]) -> dict[int, SecurityAlert]:
    if not tickets:
        return {}
    rows = db.session.scalars(sa.select(SecurityAlert).where(SecurityAlert.ticket_id.in_([t.id for t in tickets])))
    return {a.ticket_id: a for a in rows}


def visible_incident(user: User | None, reference: str) -> Ticket:
    """An incident the user may see (staff of the ticket, or référent/agent of its commune). Raises NotFound."""
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
    if ticket is None or ticket.kind != KIND_INCIDENT or not policy.can_view_incident(user, ticket):
        raise NotFound("Aucun incident visible ne porte cette référence.")
    return ticket
