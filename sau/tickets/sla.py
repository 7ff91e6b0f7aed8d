"""Wiring between tickets and the pure SLA engine (`sla/`).

The SLA state of a ticket is a pure function of its event log (`sla.compute_sla`); the figures that queues,
sweeps and reports query (deadline, at-risk and breach instants, met, paused, state) are stored on the ticket
and recomputed after every event. `sau sla-recompute` checks that every stored value still equals the log's.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from sau.extensions import db
from sau.orgs.models import CalendarClosure
from sau.tickets.models import Ticket
from sla import (
    A_RISQUE,
    DANS_LES_TEMPS,
    DEPASSE,
    SANS_ENGAGEMENT,
    STATE_LABELS,
    BusinessCalendar,
    SlaEvent,
    SlaPolicy,
    SlaState,
    compute_sla,
)

# Ticket event type → SLA clock event kind (the other events do not move the clock).
CLOCK_EVENTS = {
    "priority.set": "priority_set",
    "ticket.waiting": "waiting",
    "ticket.waiting_ended": "waiting_ended",
    "ticket.resolved": "resolved",
    "ticket.reopened": "reopened",
    "ticket.closed": "closed",
    "ticket.rejected": "rejected",
    "ticket.duplicate": "rejected",
}
STORED_FIELDS = ("sla_deadline_at", "sla_at_risk_at", "sla_breach_at", "sla_state", "sla_met", "sla_paused")

_calendars: dict[tuple[Any, ...], BusinessCalendar] = {}
_policies: dict[tuple[Any, ...], SlaPolicy] = {}


def calendar() -> BusinessCalendar:
    """The Métropole's business calendar with the closures and exceptional hours configured by admins
    (cached per configuration)."""
    rows = db.session.execute(
        sa.select(CalendarClosure.day, CalendarClosure.opens_at, CalendarClosure.closes_at).order_by(CalendarClosure.day)
    ).all()
    key = tuple(rows)
    cal = _calendars.get(key)
    if cal is None:
        closures = [r.day for r in rows if r.opens_at is None]
        exceptional = {r.day: ((r.opens_at, r.closes_at),) for r in rows if r.opens_at is not None}
        cal = _calendars[key] = BusinessCalendar(extra_closures=closures, exceptional_hours=exceptional)
    return cal


def recompute_open(now: datetime) -> int:
    """After a change of calendar or targets: store the new SLA figures of every open ticket."""
    count = 0
    for ticket in db.session.scalars(sa.select(Ticket).where(Ticket.sla_met.is_(None),
                                                             Ticket.sla_deadline_at.is_not(None))):
        values = stored_values(compute(ticket, now, explain=False))
        db.session.execute(sa.update(Ticket).where(Ticket.id == ticket.id).values(**values)
                           .execution_options(synchronize_session=False))
        count += 1
    return count


def policy_for(service: Any) -> SlaPolicy:
    """The convention's policy (Toodego annex § 6.1.a) with the app's settings (SLA_AT_RISK_RATIO,
    SLA_PAUSE_WHILE_WAITING, SLA_PRIORITY_CHANGE) and the service's own targets where an admin set them."""
    cfg = current_app.config
    key = (cfg["SLA_AT_RISK_RATIO"], cfg["SLA_PAUSE_WHILE_WAITING"], cfg["SLA_PRIORITY_CHANGE"],
           service.sla_bloquant_hours, service.sla_majeur_hours)
    policy = _policies.get(key)
    if policy is None:
        targets: dict[str, timedelta | None] = {}
        if service.sla_bloquant_hours:
            targets["bloquant"] = timedelta(hours=service.sla_bloquant_hours)
        if service.sla_majeur_hours:
            targets["majeur"] = timedelta(hours=service.sla_majeur_hours)
        policy = _policies[key] = SlaPolicy().with_overrides(
            targets=targets, at_risk_ratio=float(key[0]), pause_while_waiting=bool(key[1]), priority_change=key[2]
        )
    return policy


def clock_events(ticket: Ticket) -> list[SlaEvent]:
    return log_clock_events((event.type, event.at, event.data) for event in ticket.events)


def log_clock_events(log: Iterable[tuple[str, datetime, dict[str, Any]]]) -> list[SlaEvent]:
    """The SLA clock's events among a log's entries, each (type, at, data), in the log's order."""
    events = []
    for type_, at, data in log:
        kind = CLOCK_EVENTS.get(type_)
        if kind is None:
            continue
        priority = data.get("after") if kind == "priority_set" else None
        events.append(SlaEvent(at=at, kind=kind, priority=priority))
    events.sort(key=lambda e: e.at)  # stable: ties keep the log's order
    return events


def compute(ticket: Ticket, now: datetime, *, explain: bool = True, cal: BusinessCalendar | None = None,
            service: Any = None) -> SlaState:
    """The ticket's SLA state from its log; `cal`: the calendar when the caller already has it (a sweep over
    thousands of tickets reads it once, not once per ticket); `service`: its SLA targets, likewise."""
    return compute_sla(clock_events(ticket), now, cal or calendar(), policy_for(service or ticket.service),
                       explain=explain)


def stored_values(state: SlaState) -> dict[str, Any]:
    return {
        "sla_deadline_at": state.deadline_at,
        "sla_at_risk_at": state.at_risk_at,
        "sla_breach_at": state.breach_at,
        "sla_state": state.state,
        "sla_met": state.met,
        # A paused ticket with time left cannot breach (sla.compliance.ComplianceTicket.from_state).
        "sla_paused": state.is_paused and state.state != DEPASSE,
    }


def business_seconds(cal: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Business time between two instants in seconds (0 when the second is not after the first)."""
    return cal.business_time_between(start, end).total_seconds() if end > start else 0.0


def business_durations(ticket: Ticket, cal: BusinessCalendar | None = None) -> dict[str, float | None]:
    """First-response and resolution times of the ticket in business seconds (the stored columns; None while it
    has not happened)."""
    return _durations(cal or calendar(), ticket.created_at, ticket.first_response_at, ticket.resolved_at)


def _durations(cal: BusinessCalendar, created_at: datetime, first_response_at: datetime | None,
               resolved_at: datetime | None) -> dict[str, float | None]:
    def since_creation(at: datetime | None) -> float | None:
        return None if at is None else business_seconds(cal, created_at, at)

    return {
        "first_response_business_seconds": since_creation(first_response_at),
        "resolution_business_seconds": since_creation(resolved_at),
    }


def new_ticket_values(log: Iterable[tuple[str, datetime, dict[str, Any]]], now: datetime, *, cal: BusinessCalendar,
                      service: Any) -> dict[str, Any]:
    """What `refresh` would store on a ticket created at `now` whose log so far is `log` (entries as
    `log_clock_events` takes them): a new ticket is written from plain values, not built as an ORM object
    (issue 9)."""
    state = compute_sla(log_clock_events(log), now, cal, policy_for(service), explain=False)
    return {**stored_values(state), **_durations(cal, now, None, None)}


def refresh(ticket: Ticket, now: datetime, *, cal: BusinessCalendar | None = None, service: Any = None) -> SlaState:
    """Recompute the ticket's stored SLA fields from its events, and its business durations. `cal` and `service`
    (anything with the service's SLA targets): when the caller already has them (a new ticket, sau.refdata)."""
    cal = cal or calendar()
    state = compute(ticket, now, explain=False, cal=cal, service=service)
    for name, value in {**stored_values(state), **business_durations(ticket, cal)}.items():
        setattr(ticket, name, value)
    return state


@dataclass(frozen=True)
class LiveSla:
    state: str
    label: str
    remaining: timedelta | None


def live(ticket: Ticket, now: datetime, cal: BusinessCalendar | None = None) -> LiveSla:
    """The SLA state as of `now` from the stored fields (no replay), for queues and lists."""
    state = ticket.sla_state or SANS_ENGAGEMENT
    remaining = None
    running = ticket.sla_met is None and state != SANS_ENGAGEMENT and not ticket.sla_paused
    if running and ticket.sla_deadline_at is not None:
        breach_at = ticket.sla_breach_at or ticket.sla_deadline_at
        if now > breach_at:
            state = DEPASSE
        elif ticket.sla_at_risk_at is not None and now >= ticket.sla_at_risk_at:
            state = A_RISQUE
        else:
            state = DANS_LES_TEMPS
        cal = cal or calendar()
        remaining = cal.business_time_between(now, ticket.sla_deadline_at) if now < ticket.sla_deadline_at \
            else timedelta(0)
    return LiveSla(state, STATE_LABELS.get(state, state), remaining)


def format_duration(value: timedelta | None) -> str:
    """Business time as "3 h 05" (hours may exceed a day: 24 h ouvrées = 3 jours ouvrés)."""
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d}"


@dataclass(frozen=True)
class Mismatch:
    reference: str
    field: str
    stored: Any
    computed: Any


def recompute_all(now: datetime, *, fix: bool, batch: int = 500) -> tuple[int, list[Mismatch]]:
    """Recompute every ticket's SLA from its log; report (and with `fix`, correct) stored values that differ."""
    mismatches: list[Mismatch] = []
    count = 0
    last_id = 0
    cal = calendar()
    while True:
        tickets = db.session.scalars(
            sa.select(Ticket).where(Ticket.id > last_id).order_by(Ticket.id).limit(batch)
        ).all()
        if not tickets:
            break
        for ticket in tickets:
            count += 1
            last_id = ticket.id
            values = stored_values(compute(ticket, now, explain=False, cal=cal))
            changed: dict[str, Any] = {}
            for name, value in business_durations(ticket, cal).items():
                stored = getattr(ticket, name)
                if (stored is None) != (value is None) or (value is not None and abs(stored - value) > 1e-3):
                    mismatches.append(Mismatch(ticket.reference, name, stored, value))
                    changed[name] = value
            for name in STORED_FIELDS:
                stored = getattr(ticket, name)
                # The stored state of a running clock is the one of its last event; the live state derives
                # from the stored instants, so only the instants, met, paused and "no commitment" must match.
                if name == "sla_state" and stored not in (None, SANS_ENGAGEMENT) and values[name] != SANS_ENGAGEMENT:
                    continue
                if stored != values[name]:
                    mismatches.append(Mismatch(ticket.reference, name, stored, values[name]))
                    changed[name] = values[name]
            if fix and changed:
                db.session.execute(sa.update(Ticket).where(Ticket.id == ticket.id).values(**changed)
                                   .execution_options(synchronize_session=False))
        if fix:
            db.session.commit()
        db.session.expunge_all()
    return count, mismatches
