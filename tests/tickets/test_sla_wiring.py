"""SLA on tickets: stored figures derive from the event log, the sweep records at-risk and breach events
exactly once per ticket and deadline, the queue and ticket page show them, recompute finds drift."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import SlaAlert, Ticket, TicketEvent
from sau.tickets.sweeps import sweep
from tests.conftest import DEMO_EMAILS

PARIS = ZoneInfo("Europe/Paris")


def _agent() -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))


def _events(ticket: Ticket, type_: str) -> list[TicketEvent]:
    return list(db.session.scalars(sa.select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                                TicketEvent.type == type_)))


def test_priority_sets_the_stored_deadline_in_business_hours(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    assert ticket.sla_deadline_at is None and ticket.sla_state == "sans_engagement"
    # Tuesday 10 March 2026, 10:00 Paris + 8 business hours → Wednesday 10:00.
    ops.set_priority(ticket, _agent(), "bloquant", clock.now())
    db.session.commit()
    assert ticket.sla_deadline_at == datetime(2026, 3, 11, 10, 0, tzinfo=PARIS)
    assert ticket.sla_at_risk_at == datetime(2026, 3, 10, 16, 0, tzinfo=PARIS)
    assert ticket.sla_state == "dans_les_temps" and ticket.sla_met is None
    # A change to majeur keeps the start (first assignment) and applies 24 h → Friday 10:00.
    ops.set_priority(ticket, _agent(), "majeur", clock.now() + timedelta(hours=1))
    assert ticket.sla_deadline_at == datetime(2026, 3, 13, 10, 0, tzinfo=PARIS)


def test_resolution_stores_met_and_reopen_resumes(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    agent = _agent()
    ops.set_priority(ticket, agent, "bloquant", clock.now())
    clock.advance(timedelta(hours=3))
    ops.resolve(ticket, agent, "Corrigé", clock.now())
    assert ticket.sla_met is True and ticket.sla_state == "respecte"
    clock.advance(timedelta(days=1))  # not counted: between resolution and reopening
    ops.reopen_by_agent(ticket, agent, "Revient", clock.now())
    assert ticket.sla_met is None
    # 3 h consumed, 5 h left from Wednesday 13:00 → Wednesday 17:00 + 1 h → Thursday 10:00.
    assert ticket.sla_deadline_at == datetime(2026, 3, 12, 10, 0, tzinfo=PARIS)


def test_sweep_records_at_risk_then_breach_exactly_once(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    ops.set_priority(ticket, _agent(), "bloquant", clock.now())
    db.session.commit()
    assert sweep(clock.now()).at_risk == 0
    assert _events(ticket, "sla.at_risk") == []
    clock.set(datetime(2026, 3, 10, 16, 0, tzinfo=PARIS))  # 6 h of 8 consumed: 75 %
    result = sweep(clock.now())
    assert (result.at_risk, result.breached) == (1, 0)
    assert sweep(clock.now()).at_risk == 0  # exactly once
    clock.set(datetime(2026, 3, 11, 10, 0, tzinfo=PARIS))  # deadline reached exactly: still on time
    assert sweep(clock.now()).breached == 0
    clock.advance(timedelta(minutes=1))
    assert sweep(clock.now()).breached == 1
    clock.advance(timedelta(hours=5))
    assert (sweep(clock.now()).at_risk, sweep(clock.now()).breached) == (0, 0)
    db.session.expire_all()
    assert len(_events(ticket, "sla.at_risk")) == 1 and len(_events(ticket, "sla.breached")) == 1
    assert ops.get_ticket(ticket.reference).version == ticket.version  # the sweep does not bump the version
    breached = _events(ticket, "sla.breached")[0]
    assert breached.data["deadline_at"] == "2026-03-11T09:00:00+00:00" and breached.is_public is False


def test_sweep_catches_up_after_downtime(app, ctx, clock, make_request):
    tickets = [ops.get_ticket(make_request()) for _ in range(3)]
    for t in tickets:
        ops.set_priority(t, _agent(), "majeur", clock.now())
    db.session.commit()
    clock.advance(timedelta(days=10))  # the scheduler was down for days
    result = sweep(clock.now())
    assert result.breached == 3
    assert result.at_risk == 0  # missed at-risk windows are marked, not announced after the breach
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SlaAlert)) == 6
    assert sweep(clock.now()) == type(result)(0, 0)


def test_new_deadline_after_priority_change_gets_its_own_alert(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    ops.set_priority(ticket, _agent(), "majeur", clock.now())
    db.session.commit()
    clock.set(datetime(2026, 3, 13, 9, 30, tzinfo=PARIS))  # 18.5 h of 24: at risk
    assert sweep(clock.now()).at_risk == 1
    ops.set_priority(ticket, _agent(), "bloquant", clock.now())  # 18.5 h > 8 h: breached at once
    db.session.commit()
    clock.advance(timedelta(minutes=1))
    assert sweep(clock.now()).breached == 1


def test_queue_and_ticket_page_show_sla(app, clock, make_request, login_as):
    with app.app_context():
        ticket = ops.get_ticket(make_request())
        ops.set_priority(ticket, _agent(), "bloquant", clock.now())
        db.session.commit()
        ref = ticket.reference
    clock.set(datetime(2026, 3, 10, 16, 30, tzinfo=PARIS))
    client = login_as("agent_ecully")
    html = client.get("/agent/?tri=echeance").get_data(as_text=True)
    assert "11/03/2026 10:00" in html and "à risque" in html and "1 h 30" in html
    page = client.get(f"/agent/tickets/{ref}").get_data(as_text=True)
    assert "heures ouvrées comptées" in page and "Consommé" in page
    assert "6 h 30" in page  # consumed from 10:00 to 16:30


def test_recompute_reports_and_fixes_drift(app, clock, make_request):
    with app.app_context():
        ticket = ops.get_ticket(make_request())
        ops.set_priority(ticket, _agent(), "bloquant", clock.now())
        db.session.commit()
        db.session.execute(sa.update(Ticket).values(sla_deadline_at=datetime(2030, 1, 1, tzinfo=PARIS)))
        db.session.commit()
        ref = ticket.reference
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sla-recompute"])
    assert result.exit_code == 1 and f"{ref} sla_deadline_at" in result.output
    assert runner.invoke(args=["sla-recompute", "--fix"]).exit_code == 0
    result = runner.invoke(args=["sla-recompute"])
    assert result.exit_code == 0 and "0 écart" in result.output


def test_live_state_matches_a_full_replay(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    ops.set_priority(ticket, _agent(), "majeur", clock.now())
    db.session.commit()
    cal = ticket_sla.calendar()
    for hours in range(0, 120, 7):
        now = clock.now() + timedelta(hours=hours)
        assert ticket_sla.live(ticket, now, cal).state == ticket_sla.compute(ticket, now).state, hours



def test_a_new_ticket_stores_what_its_log_gives(app, ctx, clock):
    """A new ticket is written from plain values (ops.create_request): its stored SLA figures and business durations
    are those `refresh` derives from its log read back, whether it is committed on its own (one statement on
    PostgreSQL) or in the session's transaction; and the copy an answer reads (`view`) is the ticket as stored."""
    from sau.help import intake

    service = intake.require_sau_service("toodego")
    fields = (*ticket_sla.STORED_FIELDS, "first_response_business_seconds", "resolution_business_seconds")
    for standalone in (False, True):
        now = clock.now()
        category, commune, _school = intake.resolve_fields(service, "teleservice-communal", "69081", None, now.date())
        created = ops.create_request(
            ops.NewRequest(service=service, subject="Démarche bloquée", description="Je ne peux pas valider.",
                           category=category, commune=commune, email="demandeur@example.org"),
            None, now, standalone=standalone)
        db.session.commit()
        db.session.expire_all()
        ticket = db.session.get(Ticket, created.ticket_id)
        stored = {name: getattr(ticket, name) for name in fields}
        assert stored["sla_state"] is not None
        ticket_sla.refresh(ticket, now)
        assert {name: getattr(ticket, name) for name in fields} == stored
        db.session.rollback()
        view = created.view
        assert (view.reference, view.status, view.sla_state, view.created_at) == (
            ticket.reference, ticket.status, ticket.sla_state, ticket.created_at)
        assert [(e.type, e.actor_label, e.is_public) for e in view.events] == [
            (e.type, e.actor_label, e.is_public) for e in ticket.events]
