"""Scheduled ticket work: close resolved tickets once the requester's reopen window has passed."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm.exc import StaleDataError

from sau.extensions import db
from sau.tickets import operations as ops
from sau.tickets.models import RESOLU, Ticket

log = logging.getLogger(__name__)


def close_resolved_after_window(now: datetime, window_days: int, *, limit: int = 500) -> int:
    """Close (as the system) every ticket resolved more than `window_days` ago; returns how many were closed.

    Each ticket is closed in its own transaction: one that an agent changed meanwhile (optimistic locking) is
    simply left for the next run.
    """
    cutoff = now - timedelta(days=window_days)
    ids = list(db.session.scalars(
        sa.select(Ticket.id).where(Ticket.status == RESOLU, Ticket.resolved_at <= cutoff).order_by(Ticket.id)
        .limit(limit)
    ))
    closed = 0
    for ticket_id in ids:
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is None or ticket.status != RESOLU:
            continue
        try:
            ops.close(ticket, None, now, ticket.version)
            db.session.commit()
            closed += 1
        except StaleDataError:
            db.session.rollback()
            log.info("auto-close: %s changed meanwhile, left for the next run", ticket.reference)
    return closed
