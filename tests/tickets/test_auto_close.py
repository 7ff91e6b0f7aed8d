"""Resolved tickets are closed by the system once the requester's reopen window has passed."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from sau.tickets.jobs import close_resolved_after_window
from tests.conftest import DEMO_EMAILS


def test_resolved_tickets_close_after_the_reopen_window(app, ctx, clock, make_request):
    agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))
    old, recent, still_open = (ops.get_ticket(make_request()) for _ in range(3))
    ops.resolve(old, agent, "Fait", clock.now())
    clock.advance(timedelta(days=10))
    ops.resolve(recent, agent, "Fait aussi", clock.now())
    db.session.commit()
    clock.advance(timedelta(days=5, minutes=1))  # old: 15 days + 1 min; recent: 5 days
    assert close_resolved_after_window(clock.now(), 15) == 1
    db.session.expire_all()
    assert old.status == "clos" and old.closed_at == clock.now()
    assert recent.status == "resolu" and still_open.status == "nouveau"
    closed = next(e for e in old.events if e.type == "ticket.closed")
    assert closed.actor_id is None and closed.actor_label == "SAU (automatique)"
    assert close_resolved_after_window(clock.now(), 15) == 0  # idempotent


def test_a_reopened_ticket_is_not_closed(app, ctx, clock, make_request):
    agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))
    ticket = ops.get_ticket(make_request())
    ops.resolve(ticket, agent, "Fait", clock.now())
    clock.advance(timedelta(days=3))
    ops.reopen_by_agent(ticket, agent, "Revient", clock.now())
    db.session.commit()
    clock.advance(timedelta(days=30))
    assert close_resolved_after_window(clock.now(), 15) == 0
