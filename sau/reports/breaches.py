"""Breached deadlines and priority changes behind the compliance figures.

A breach is a committed ticket counted as "dépassé" by `compliance_by_commune` for the same period and filters
(same SQL conditions), so the list adds up to the dashboard's "Dépassés". A priority change is a `priority.set`
event (sau.tickets.operations.set_priority) of a commune's ticket in the period; its effect on the deadline is
the SLA engine's projection just before and just after the change.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from sau.extensions import db
from sau.orgs.models import Service
from sau.reports.compliance import breached_condition, committed_conditions
from sau.tickets import sla as ticket_sla
from sau.tickets.models import PRIORITIES, Ticket, TicketEvent
from sla import compute_sla
from sla.clock import SlaEvent

PRIORITY_EVENT = "priority.set"


@dataclass(frozen=True)
class Breach:
    reference: str
    commune_code: str
    commune: str
    service: str
    priority: str
    deadline_at: datetime | None
    resolved_at: datetime | None  # None: still open
    breach_at: datetime | None
    late: timedelta  # business time beyond the target (the SLA engine's overrun)

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


def _breach_stmt(start: datetime, end: datetime, now: datetime, **filters: object) -> sa.Select:
    return (
        sa.select(Ticket)
        .where(*committed_conditions(start, end, **filters), breached_condition(now))  # type: ignore[arg-type]
        # still open past the deadline first (the worst: still running late), then the latest deadline first
        .order_by(sa.case((Ticket.sla_met.is_(None), 0), else_=1), Ticket.sla_deadline_at.desc(), Ticket.id.desc())
    )


def count_breaches(start: datetime, end: datetime, now: datetime, **filters: object) -> int:
    stmt = _breach_stmt(start, end, now, **filters).order_by(None).with_only_columns(sa.func.count())
    return int(db.session.scalar(stmt) or 0)


def _breach(ticket: Ticket, now: datetime) -> Breach:
    state = ticket_sla.compute(ticket, now, explain=False)
    return Breach(
        ticket.reference, ticket.commune.code, ticket.commune.name, ticket.service.name,
        ticket.priority or "", ticket.sla_deadline_at, state.resolved_at, ticket.sla_breach_at or ticket.sla_deadline_at,
        state.overrun,
    )


def _load(stmt: sa.Select) -> list[Ticket]:
    return list(db.session.scalars(stmt.options(
        selectinload(Ticket.events), selectinload(Ticket.service), selectinload(Ticket.commune))))


def breaches_page(start: datetime, end: datetime, now: datetime, *, page: int, per_page: int,
                  **filters: object) -> list[Breach]:
    stmt = _breach_stmt(start, end, now, **filters).limit(per_page).offset((page - 1) * per_page)
    return [_breach(t, now) for t in _load(stmt)]


def iter_breaches(start: datetime, end: datetime, now: datetime, *, batch: int = 500,
                  **filters: object) -> Iterator[Breach]:
    """Every breach, in list order, loaded by batches (exports)."""
    ids = list(db.session.scalars(_breach_stmt(start, end, now, **filters).with_only_columns(Ticket.id)))
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        tickets = {t.id: t for t in _load(sa.select(Ticket).where(Ticket.id.in_(chunk)))}
        for ticket_id in chunk:
            yield _breach(tickets[ticket_id], now)
        db.session.expunge_all()


@dataclass(frozen=True)
class PriorityChange:
    reference: str
    commune_code: str
    commune: str
    service: str
    at: datetime
    actor: str
    before: str | None
    after: str
    justification: str
    deadline_before: datetime | None  # projected just before the change (None: no deadline, clock not running)
    deadline_after: datetime | None

    @property
    def effect(self) -> str:
        """French description of the change's effect on the deadline."""
        b, a = self.deadline_before, self.deadline_after
        if b is None and a is None:
            return "aucune échéance (sans engagement)"
        if b is None:
            return "échéance fixée (le délai démarre)"
        if a is None:
            return "échéance supprimée (plus d'engagement)"
        if a == b:
            return "échéance inchangée"
        return "échéance avancée" if a < b else "échéance repoussée"


def _priority_stmt(start: datetime, end: datetime, *, service: str | None = None, priority: str | None = None,
                   kind: str | None = None, communes: set[int] | None = None) -> sa.Select:
    stmt = (
        sa.select(TicketEvent.id, TicketEvent.ticket_id)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(TicketEvent.type == PRIORITY_EVENT, TicketEvent.at >= start, TicketEvent.at < end,
               Ticket.commune_id.is_not(None))
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
    )
    if service:
        stmt = stmt.join(Service, Service.id == Ticket.service_id).where(Service.code == service)
    if kind:
        stmt = stmt.where(Ticket.kind == kind)
    if communes is not None:
        stmt = stmt.where(Ticket.commune_id.in_(communes))
    if priority:
        # a change from or to that priority
        stmt = stmt.where(sa.or_(
            TicketEvent.data["after"].as_string() == priority, TicketEvent.data["before"].as_string() == priority))
    return stmt


def count_priority_changes(start: datetime, end: datetime, **filters: object) -> int:
    sub = _priority_stmt(start, end, **filters).order_by(None).subquery()  # type: ignore[arg-type]
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(sub)) or 0)


def _sla_events(events: list[TicketEvent]) -> list[SlaEvent]:
    result = []
    for event in events:
        kind = ticket_sla.CLOCK_EVENTS.get(event.type)
        if kind is not None:
            result.append(SlaEvent(at=event.at, kind=kind,
                                   priority=event.data.get("after") if kind == "priority_set" else None))
    result.sort(key=lambda e: e.at)
    return result


def _changes(pairs: list[tuple[int, int]]) -> list[PriorityChange]:
    if not pairs:
        return []
    tickets = {t.id: t for t in _load(sa.select(Ticket).where(Ticket.id.in_({tid for _, tid in pairs})))}
    cal = ticket_sla.calendar()
    result = []
    for event_id, ticket_id in pairs:
        ticket = tickets[ticket_id]
        events = list(ticket.events)
        index = next(i for i, e in enumerate(events) if e.id == event_id)
        event = events[index]
        policy = ticket_sla.policy_for(ticket.service)
        before = compute_sla(_sla_events(events[:index]), event.at, cal, policy, explain=False)
        after = compute_sla(_sla_events(events[:index + 1]), event.at, cal, policy, explain=False)
        result.append(PriorityChange(
            ticket.reference, ticket.commune.code, ticket.commune.name, ticket.service.name, event.at,
            event.actor_label or "", event.data.get("before"), event.data.get("after", ""),
            event.data.get("justification", ""),
            before.deadline_at if before.state != "sans_engagement" else None,
            after.deadline_at if after.state != "sans_engagement" else None,
        ))
    return result


def priority_changes_page(start: datetime, end: datetime, *, page: int, per_page: int,
                          **filters: object) -> list[PriorityChange]:
    stmt = _priority_stmt(start, end, **filters).limit(per_page).offset((page - 1) * per_page)  # type: ignore[arg-type]
    return _changes([(r.id, r.ticket_id) for r in db.session.execute(stmt)])


def iter_priority_changes(start: datetime, end: datetime, *, batch: int = 500,
                          **filters: object) -> Iterator[PriorityChange]:
    pairs = [(r.id, r.ticket_id) for r in db.session.execute(_priority_stmt(start, end, **filters))]  # type: ignore[arg-type]
    for i in range(0, len(pairs), batch):
        yield from _changes(pairs[i:i + batch])
        db.session.expunge_all()


def priority_label(code: str | None) -> str:
    return PRIORITIES.get(code, "non définie") if code else "non définie"


