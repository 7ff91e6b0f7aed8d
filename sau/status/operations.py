"""Outages, scheduled maintenance and the figures of the public status page (issue 6, points 2–4).

Changes take the acting Métropole agent or admin (`actor`) and the instant (`now`), validate before changing
anything (ValidationFailed with French messages per field), flush, write an audit event and, for maintenance,
the notifications to the référents of the subscribed communes (same transaction). The caller commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sau.admin.operations import record
from sau.auth import policy
from sau.auth.models import User
from sau.errors import PermissionDenied, ValidationFailed, WorkflowError
from sau.extensions import db
from sau.notify.operations import enqueue_maintenance
from sau.orgs.models import Service
from sau.status.models import (
    MAINTENANCE_ANNOUNCED,
    MAINTENANCE_CANCELLED,
    MAINTENANCE_CHANGED,
    OUTAGE_KINDS,
    OUTAGE_PARTIAL,
    Maintenance,
    Outage,
)
from sau.tickets.models import Ticket
from sla.availability import AVAILABILITY_TARGET, Availability, OutageSpan, daily_availability, monthly_availability

PARIS = ZoneInfo("Europe/Paris")
HISTORY_DAYS = 90
DESCRIPTION_MAX = 5000
FORM_ERROR = "Le formulaire contient des erreurs : corrigez les champs signalés."

STATE_OPERATIONAL = "operationnel"
STATE_MAINTENANCE = "maintenance"
STATE_DEGRADED = "perturbe"
STATE_DOWN = "indisponible"
STATE_LABELS = {STATE_OPERATIONAL: "Opérationnel", STATE_MAINTENANCE: "Maintenance en cours",
                STATE_DEGRADED: "Perturbé (indisponibilité partielle)", STATE_DOWN: "Indisponible"}


def can_manage_status(user: User | None) -> bool:
    """Outages and maintenance are recorded by the Métropole's agents and admins."""
    return policy.is_admin(user) or policy.is_metropole_agent(user)


def _require(actor: User) -> None:
    if not can_manage_status(actor):
        raise PermissionDenied("Réservé aux agents et administrateurs de la Métropole.")


def _label(value: datetime | None) -> str | None:
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M") if value is not None else None


# --- outages ------------------------------------------------------------------------------------------------

def _outage_snapshot(outage: Outage) -> dict[str, Any]:
    return {"service": outage.service.code, "started_at": _label(outage.started_at), "ended_at": _label(outage.ended_at),
            "kind": outage.kind, "is_planned": outage.is_planned, "description": outage.description,
            "tickets": [t.reference for t in outage.tickets]}


def _tickets(references: list[str], errors: dict[str, str]) -> list[Ticket]:
    refs = sorted({r.strip().upper() for r in references if r.strip()})
    found = list(db.session.scalars(sa.select(Ticket).where(Ticket.reference.in_(refs)))) if refs else []
    missing = sorted(set(refs) - {t.reference for t in found})
    if missing:
        errors["tickets"] = "Ticket introuvable : " + ", ".join(missing) + "."
    return found


def _check_outage(started_at: datetime | None, ended_at: datetime | None, kind: str, description: str,
                  now: datetime, errors: dict[str, str]) -> None:
    if started_at is None:
        errors.setdefault("started_at", "Indiquez le début de l'indisponibilité.")
    elif started_at > now:
        errors.setdefault("started_at", "Le début ne peut pas être dans le futur.")
    if ended_at is not None and started_at is not None and ended_at <= started_at:
        errors.setdefault("ended_at", "La fin doit être postérieure au début.")
    if ended_at is not None and ended_at > now:
        errors.setdefault("ended_at", "La fin ne peut pas être dans le futur : laissez vide si l'indisponibilité dure.")
    if kind not in OUTAGE_KINDS:
        errors.setdefault("kind", "Choisissez une indisponibilité totale ou partielle.")
    if len(description) > DESCRIPTION_MAX:
        errors.setdefault("description", f"{DESCRIPTION_MAX} caractères au plus.")


def outage_errors(started_at: datetime | None, ended_at: datetime | None, kind: str, description: str,
                  now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    _check_outage(started_at, ended_at, kind, (description or "").strip(), now, errors)
    return errors


def _validated_outage(started_at: datetime | None, ended_at: datetime | None, kind: str, description: str,
                      ticket_references: list[str], now: datetime) -> tuple[str, list[Any]]:
    """The outage's cleaned description and linked tickets. Raises ValidationFailed naming every bad field."""
    description = (description or "").strip()
    errors: dict[str, str] = {}
    _check_outage(started_at, ended_at, kind, description, now, errors)
    tickets = _tickets(ticket_references, errors)
    if errors:
        raise ValidationFailed(FORM_ERROR, errors)
    return description, tickets


def record_outage(actor: User, now: datetime, service: Service, started_at: datetime | None,
                  ended_at: datetime | None, kind: str, is_planned: bool, description: str,
                  ticket_references: list[str]) -> Outage:
    """Record an outage (`ended_at` None: ongoing), linked to the given tickets."""
    _require(actor)
    description, tickets = _validated_outage(started_at, ended_at, kind, description, ticket_references, now)
    assert started_at is not None
    outage = Outage(service=service, started_at=started_at, ended_at=ended_at, kind=kind, is_planned=is_planned,
                    description=description, created_at=now, created_by=actor, tickets=tickets)
    db.session.add(outage)
    db.session.flush()
    record(actor, now, "outage.recorded", "outage", outage.id, f"{service.name} — {_label(started_at)}",
           after=_outage_snapshot(outage))
    return outage


def update_outage(actor: User, now: datetime, outage: Outage, service: Service, started_at: datetime | None,
                  ended_at: datetime | None, kind: str, is_planned: bool, description: str,
                  ticket_references: list[str]) -> Outage:
    """Correct an outage or record its end."""
    _require(actor)
    description, tickets = _validated_outage(started_at, ended_at, kind, description, ticket_references, now)
    before = _outage_snapshot(outage)
    assert started_at is not None
    outage.service, outage.started_at, outage.ended_at, outage.kind = service, started_at, ended_at, kind
    outage.is_planned, outage.description, outage.tickets = is_planned, description, tickets
    db.session.flush()
    record(actor, now, "outage.updated", "outage", outage.id, f"{outage.service.name} — {_label(started_at)}",
           before=before, after=_outage_snapshot(outage))
    return outage


# --- maintenance -------------------------------------------------------------------------------------------

def _maintenance_snapshot(m: Maintenance) -> dict[str, Any]:
    return {"service": m.service.code, "starts_at": _label(m.starts_at), "ends_at": _label(m.ends_at),
            "impact": m.impact, "status": m.status, "version": m.version}


def _check_window(starts_at: datetime | None, ends_at: datetime | None, impact: str, now: datetime,
                  errors: dict[str, str]) -> None:
    if starts_at is None:
        errors["starts_at"] = "Indiquez le début de la maintenance."
    elif starts_at <= now:
        errors["starts_at"] = "Une maintenance s'annonce avant son début : choisissez une date future."
    if ends_at is None:
        errors["ends_at"] = "Indiquez la fin de la maintenance."
    elif starts_at is not None and ends_at <= starts_at:
        errors["ends_at"] = "La fin doit être postérieure au début."
    if not impact:
        errors["impact"] = "Décrivez l'impact prévu pour les communes et les usagers."
    elif len(impact) > DESCRIPTION_MAX:
        errors["impact"] = f"{DESCRIPTION_MAX} caractères au plus."


def window_errors(starts_at: datetime | None, ends_at: datetime | None, impact: str, now: datetime) -> dict[str, str]:
    errors: dict[str, str] = {}
    _check_window(starts_at, ends_at, (impact or "").strip(), now, errors)
    return errors


def announce_maintenance(actor: User, now: datetime, service: Service, starts_at: datetime | None,
                         ends_at: datetime | None, impact: str) -> Maintenance:
    """Announce a maintenance window; the référents of the subscribed communes are notified."""
    _require(actor)
    impact = (impact or "").strip()
    errors: dict[str, str] = {}
    _check_window(starts_at, ends_at, impact, now, errors)
    if errors:
        raise ValidationFailed(FORM_ERROR, errors)
    assert starts_at is not None and ends_at is not None
    m = Maintenance(service=service, starts_at=starts_at, ends_at=ends_at, impact=impact,
                    status=MAINTENANCE_ANNOUNCED, version=1, created_at=now, updated_at=now, created_by=actor)
    db.session.add(m)
    db.session.flush()
    enqueue_maintenance(m, "announced", now)
    record(actor, now, "maintenance.announced", "maintenance", m.id, f"{service.name} — {_label(starts_at)}",
           after=_maintenance_snapshot(m))
    return m


def change_maintenance(actor: User, now: datetime, m: Maintenance, starts_at: datetime | None,
                       ends_at: datetime | None, impact: str) -> Maintenance:
    """Change the window or the impact of a maintenance not yet started; the référents are notified again
    (and reminded again before the new start)."""
    _require(actor)
    if m.is_cancelled:
        raise WorkflowError("Cette maintenance est annulée.")
    if m.starts_at <= now:
        raise WorkflowError("Cette maintenance a commencé : elle ne peut plus être modifiée.")
    impact = (impact or "").strip()
    errors: dict[str, str] = {}
    _check_window(starts_at, ends_at, impact, now, errors)
    if errors:
        raise ValidationFailed(FORM_ERROR, errors)
    assert starts_at is not None and ends_at is not None
    if (starts_at, ends_at, impact) == (m.starts_at, m.ends_at, m.impact):
        return m  # nothing changed: nobody is told again
    before = _maintenance_snapshot(m)
    m.starts_at, m.ends_at, m.impact = starts_at, ends_at, impact
    m.status, m.version, m.updated_at = MAINTENANCE_CHANGED, m.version + 1, now
    db.session.flush()
    enqueue_maintenance(m, "changed", now)
    record(actor, now, "maintenance.changed", "maintenance", m.id, f"{m.service.name} — {_label(starts_at)}",
           before=before, after=_maintenance_snapshot(m))
    return m


def cancel_maintenance(actor: User, now: datetime, m: Maintenance) -> Maintenance:
    _require(actor)
    if m.is_cancelled:
        raise WorkflowError("Cette maintenance est déjà annulée.")
    if m.ends_at <= now:
        raise WorkflowError("Cette maintenance est terminée.")
    before = _maintenance_snapshot(m)
    m.status, m.updated_at = MAINTENANCE_CANCELLED, now
    db.session.flush()
    enqueue_maintenance(m, "cancelled", now)
    record(actor, now, "maintenance.cancelled", "maintenance", m.id, f"{m.service.name} — {_label(m.starts_at)}",
           before=before, after=_maintenance_snapshot(m))
    return m


def send_maintenance_reminders(now: datetime, hours: float) -> int:
    """Remind the référents of every maintenance starting within `hours` that has not been reminded at its
    current version (a changed window is reminded again). Returns how many maintenance were reminded. Running
    it twice sends nothing more (and the notifications' idempotency keys are unique)."""
    due = list(db.session.scalars(
        sa.select(Maintenance).where(
            Maintenance.status != MAINTENANCE_CANCELLED, Maintenance.starts_at > now,
            Maintenance.starts_at <= now + timedelta(hours=hours),
            sa.or_(Maintenance.reminder_version.is_(None), Maintenance.reminder_version != Maintenance.version))
        .order_by(Maintenance.starts_at).with_for_update(skip_locked=True)))
    for m in due:
        enqueue_maintenance(m, "reminder", now)
        m.reminder_sent_at, m.reminder_version = now, m.version
    db.session.flush()
    return len(due)


def remind_due_maintenance(now: datetime, hours: float) -> int:
    """The scheduler's job (every few minutes, MAINTENANCE_REMINDER_HOURS before the start): remind, commit."""
    count = send_maintenance_reminders(now, hours)
    db.session.commit()
    return count


# --- reading: the status page -------------------------------------------------------------------------------

def under_way(service: Service, now: datetime) -> list[Maintenance]:
    """Maintenance of `service` under way at `now` (for the help form's banner)."""
    return list(db.session.scalars(sa.select(Maintenance).where(
        Maintenance.service_id == service.id, Maintenance.status != MAINTENANCE_CANCELLED,
        Maintenance.starts_at <= now, Maintenance.ends_at > now).order_by(Maintenance.starts_at)))


@dataclass
class ServiceStatus:
    service: Service
    state: str
    ongoing_outages: list[Outage]
    maintenance_now: list[Maintenance]
    upcoming: list[Maintenance]
    month: Availability | None = None
    days: list[tuple[date, Availability, int]] | None = None  # (day, figure, number of outages that day)

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def target_percent(self) -> float:
        return AVAILABILITY_TARGET * 100


def _state(outages: list[Outage], maintenance_now: list[Maintenance]) -> str:
    if any(o.kind != OUTAGE_PARTIAL and not o.is_planned for o in outages):
        return STATE_DOWN
    if maintenance_now:
        return STATE_MAINTENANCE
    if outages:
        return STATE_DEGRADED
    return STATE_OPERATIONAL


def overview(now: datetime) -> list[ServiceStatus]:
    """Current state and ongoing/upcoming maintenance of every service."""
    services = list(db.session.scalars(sa.select(Service).order_by(Service.name)))
    ongoing = list(db.session.scalars(sa.select(Outage).where(
        Outage.started_at <= now, sa.or_(Outage.ended_at.is_(None), Outage.ended_at > now))))
    maintenance = list(db.session.scalars(sa.select(Maintenance).where(
        Maintenance.status != MAINTENANCE_CANCELLED, Maintenance.ends_at > now).order_by(Maintenance.starts_at)))
    result = []
    for s in services:
        outs = [o for o in ongoing if o.service_id == s.id]
        now_m = [m for m in maintenance if m.service_id == s.id and m.starts_at <= now]
        upcoming = [m for m in maintenance if m.service_id == s.id and m.starts_at > now]
        result.append(ServiceStatus(s, _state(outs, now_m), outs, now_m, upcoming))
    return result


def service_status(service: Service, now: datetime, *, partial_weight: float) -> ServiceStatus:
    """The service's state, maintenance, its month's availability and the last 90 local days."""
    status = next(s for s in overview(now) if s.service.id == service.id)
    today = now.astimezone(PARIS).date()
    first = today - timedelta(days=HISTORY_DAYS - 1)
    month_start = today.replace(day=1)
    since = datetime.combine(min(first, month_start), datetime.min.time(), tzinfo=PARIS)
    outages = list(db.session.scalars(sa.select(Outage).where(
        Outage.service_id == service.id, Outage.started_at <= now,
        sa.or_(Outage.ended_at.is_(None), Outage.ended_at > since)).order_by(Outage.started_at)))
    windows = [(m.starts_at, m.ends_at) for m in db.session.scalars(sa.select(Maintenance).where(
        Maintenance.service_id == service.id, Maintenance.status != MAINTENANCE_CANCELLED,
        Maintenance.ends_at > since, Maintenance.starts_at <= now))]
    spans = [OutageSpan(o.started_at, o.ended_at, partial=o.kind == OUTAGE_PARTIAL, planned=o.is_planned)
             for o in outages]
    status.month = monthly_availability(spans, windows, today.year, today.month, now, partial_weight=partial_weight)
    days = daily_availability(spans, windows, first, today, now, partial_weight=partial_weight)
    status.days = []
    for day, figure in reversed(days):  # newest first
        count = sum(1 for o in outages if o.started_at < figure.end and (o.ended_at or now) > figure.start)
        status.days.append((day, figure, count))
    return status


def recent_outages(limit: int = 100) -> list[Outage]:
    return list(db.session.scalars(sa.select(Outage).order_by(Outage.started_at.desc()).limit(limit)))


def maintenance_list(limit: int = 100) -> list[Maintenance]:
    return list(db.session.scalars(sa.select(Maintenance).order_by(Maintenance.starts_at.desc()).limit(limit)))
