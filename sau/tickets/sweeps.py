"""The SLA sweep: record `sla.at_risk` and `sla.breached` events exactly once per ticket and deadline.

The truth is in the data: due instants are stored on tickets (sau.tickets.sla), so the sweep is a query
for what became due and has no marker yet. It catches up by itself after downtime (whatever is due and
unmarked is handled, however late). Only one process sweeps at a time on PostgreSQL (a transaction-level
advisory lock: the others wait their turn, then find nothing left to do); the unique `sla_alerts` constraint makes a second record impossible even if two raced.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import selectinload

from sau.extensions import db, on_postgresql
from sau.notify.operations import enqueue_for_event
from sau.tickets import sla as ticket_sla
from sau.tickets.models import OPEN_STATUSES, SlaAlert, Ticket, TicketEvent
from sla import BusinessCalendar

log = logging.getLogger(__name__)
ADVISORY_LOCK_KEY = 0x5A5_51A  # "SAU SLA"
SYSTEM_LABEL = "SAU (automatique)"
AT_RISK = "at_risk"
BREACHED = "breached"


@dataclass(frozen=True)
class SweepResult:
    at_risk: int
    breached: int
    skipped: bool = False


def _acquire_lock() -> bool:
    """Wait (30 s at most) for the sweep lock: a second sweeper runs after the first, on what is left."""
    if not on_postgresql():
        return True  # SQLite serialises writers; one process owns the embedded database
    db.session.execute(sa.text("SET LOCAL lock_timeout = '30s'"))
    try:
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    except OperationalError:
        log.warning("SLA sweep lock not obtained within 30 s; skipping this tick")
        return False
    return True


def _due(kind: str, now: datetime, limit: int) -> list[Ticket]:
    instant = Ticket.sla_at_risk_at if kind == AT_RISK else Ticket.sla_breach_at
    already = sa.exists().where(
        SlaAlert.ticket_id == Ticket.id, SlaAlert.kind == kind, SlaAlert.deadline_at == Ticket.sla_deadline_at
    )
    due = instant <= now if kind == AT_RISK else instant < now
    stmt = (
        sa.select(Ticket)
        .where(
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.sla_met.is_(None),
            Ticket.sla_paused.is_(False),
            Ticket.sla_deadline_at.is_not(None),
            due,
            ~already,
        )
        .order_by(instant, Ticket.id)
        .limit(limit)
        # Each due ticket's state is recomputed from its log: load the logs of the batch at once.
        .options(selectinload(Ticket.events))
    )
    return list(db.session.scalars(stmt))


def _record_due(kind: str, tickets: list[Ticket], now: datetime, cal: BusinessCalendar,
                counts: dict[str, int]) -> None:
    """Record the `kind` alerts of `tickets` (a batch from `_due`). Without autoflush, the alerts, events and
    notifications of the whole batch are inserted together at the next flush, not one ticket at a time."""
    with db.session.no_autoflush:
        for ticket in tickets:
            state = ticket_sla.compute(ticket, now, explain=False, cal=cal)
            reached = state.state == "depasse" if kind == BREACHED else state.state in ("a_risque", "depasse")
            if not reached or state.deadline_at != ticket.sla_deadline_at:
                # The stored projection is stale: store the log's truth; the next sweep decides.
                db.session.execute(sa.update(Ticket).where(Ticket.id == ticket.id)
                                   .values(**ticket_sla.stored_values(state))
                                   .execution_options(synchronize_session=False))
                continue
            due_at = ticket.sla_breach_at if kind == BREACHED else ticket.sla_at_risk_at
            db.session.add(SlaAlert(ticket_id=ticket.id, kind=kind, deadline_at=ticket.sla_deadline_at,
                                    created_at=now))
            if kind == AT_RISK and state.state == "depasse":
                continue  # already breached (e.g. a raised priority): the marker only, no late "at risk" event
            sla_event = TicketEvent(
                ticket_id=ticket.id, type=f"sla.{kind}", at=now, actor_id=None, actor_label=SYSTEM_LABEL,
                is_public=False,
                data={"deadline_at": ticket.sla_deadline_at.isoformat(), "due_at": due_at.isoformat() if due_at else None,
                      "consumed_minutes": int(state.consumed.total_seconds() // 60),
                      "remaining": ticket_sla.format_duration(
                          cal.business_time_between(now, state.deadline_at) if now < state.deadline_at else None)},
            )
            db.session.add(sla_event)
            enqueue_for_event(ticket, sla_event, now)  # at risk → assignee, breached → managers (same transaction)
            # A plain UPDATE: the sweep must not bump the ticket's version (an agent editing it is not in conflict).
            db.session.execute(sa.update(Ticket).where(Ticket.id == ticket.id)
                               .values(sla_state="depasse" if kind == BREACHED else state.state)
                               .execution_options(synchronize_session=False))
            counts[kind] += 1


def sweep(now: datetime, *, limit: int = 5000) -> SweepResult:
    """Record the SLA events that became due up to `now`, then commit. Returns what was recorded."""
    if not _acquire_lock():
        db.session.rollback()
        return SweepResult(0, 0, skipped=True)
    counts = {AT_RISK: 0, BREACHED: 0}
    cal = ticket_sla.calendar()
    try:
        for kind in (BREACHED, AT_RISK):
            _record_due(kind, _due(kind, now, limit), now, cal, counts)
        db.session.commit()
    except IntegrityError:
        # Another sweeper recorded the same alert first (no advisory lock on this database): nothing to add.
        db.session.rollback()
        log.warning("SLA sweep lost a race; its alerts were already recorded")
        return SweepResult(0, 0, skipped=True)
    if counts[AT_RISK] or counts[BREACHED]:
        log.info("SLA sweep at %s: %s at risk, %s breached", now.isoformat(), counts[AT_RISK], counts[BREACHED])
    return SweepResult(counts[AT_RISK], counts[BREACHED])
