"""Business first-response and resolution times stored on tickets (what the workload report aggregates):
equal to the support calendar's business time, cleared on reopening, checked and refilled by
`sau sla-recompute`; the report gives the same figures from the stored numbers as from the calendar."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.reports import workload
from sau.tickets import operations as ops
from sau.tickets.models import Ticket
from sau.tickets.sla import calendar
from tests.conftest import DEMO_EMAILS

PARIS = ZoneInfo("Europe/Paris")


def _agent() -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))


def _answered_and_resolved(clock, make_request) -> str:
    """Created Friday 6 March 16:00, answered Monday 9 March 10:30 (2 h 30 ouvrées), resolved Tuesday 10 March
    09:15 (9 h 15 ouvrées)."""
    clock.set(datetime(2026, 3, 6, 16, tzinfo=PARIS))
    ticket = ops.get_ticket(make_request())
    clock.set(datetime(2026, 3, 9, 10, 30, tzinfo=PARIS))
    ops.add_comment(ticket, _agent(), "Nous regardons votre demande.", clock.now(), internal=False)
    db.session.commit()
    clock.set(datetime(2026, 3, 10, 9, 15, tzinfo=PARIS))
    ops.resolve(ticket, _agent(), "Corrigé.", clock.now())
    db.session.commit()
    return ticket.reference


def test_stored_durations_equal_the_calendar(app, ctx, clock, make_request) -> None:
    ticket = ops.get_ticket(_answered_and_resolved(clock, make_request))
    cal = calendar()
    assert ticket.first_response_business_seconds == cal.business_time_between(
        ticket.created_at, ticket.first_response_at).total_seconds() == timedelta(hours=2, minutes=30).total_seconds()
    assert ticket.resolution_business_seconds == timedelta(hours=9, minutes=15).total_seconds()


def test_not_answered_yet_is_null_and_reopening_clears_the_resolution(app, ctx, clock, make_request) -> None:
    clock.set(datetime(2026, 3, 9, 9, tzinfo=PARIS))
    fresh = ops.get_ticket(make_request())
    assert fresh.first_response_business_seconds is None and fresh.resolution_business_seconds is None
    ticket = ops.get_ticket(_answered_and_resolved(clock, make_request))
    clock.set(datetime(2026, 3, 10, 11, tzinfo=PARIS))
    ops.reopen_by_agent(ticket, _agent(), "Le problème revient.", clock.now())
    db.session.commit()
    assert ticket.resolution_business_seconds is None
    assert ticket.first_response_business_seconds == 9000.0


def test_report_is_the_same_from_stored_numbers_and_from_the_calendar(app, ctx, clock, make_request) -> None:
    _answered_and_resolved(clock, make_request)
    clock.set(datetime(2026, 3, 2, 14, tzinfo=PARIS))
    ops.get_ticket(make_request())  # never answered: counts nowhere
    start, end = datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS)
    stored = workload.speed(start, end)
    assert stored.overall.first_response.count == 1 and stored.overall.resolution.count == 1
    # Rows from before the columns existed: the report replays the calendar for them.
    db.session.execute(sa.update(Ticket).values(first_response_business_seconds=None,
                                                resolution_business_seconds=None))
    db.session.commit()
    replayed = workload.speed(start, end)
    assert replayed == stored
    assert replayed.overall.resolution.median == timedelta(hours=9, minutes=15)


def test_recompute_reports_and_refills_missing_durations(app, clock, make_request) -> None:
    with app.app_context():
        reference = _answered_and_resolved(clock, make_request)
        db.session.execute(sa.update(Ticket).where(Ticket.reference == reference)
                           .values(resolution_business_seconds=None))
        db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sla-recompute"])
    assert result.exit_code == 1 and f"{reference} resolution_business_seconds" in result.output
    assert runner.invoke(args=["sla-recompute", "--fix"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(sa.select(Ticket.resolution_business_seconds)
                                 .where(Ticket.reference == reference)) == 9.25 * 3600


def test_postgresql_aggregate_equals_the_python_percentiles(app, ctx, clock, make_request) -> None:
    """On PostgreSQL the report's percentiles come from one SQL aggregate; on random answer and resolution
    times they equal the Python computation over the same stored numbers (to the microsecond)."""
    import random

    if db.session.get_bind().dialect.name != "postgresql":
        import pytest

        pytest.skip("percentile_cont and grouping sets: the PostgreSQL path")
    rng = random.Random(7)
    for _ in range(12):
        clock.set(datetime(2026, 3, 2, 9, tzinfo=PARIS) + timedelta(minutes=rng.randint(0, 3000)))
        ticket = ops.get_ticket(make_request())
        if rng.random() < 0.5:
            ops.set_priority(ticket, _agent(), rng.choice(["bloquant", "majeur", "mineur"]), clock.now())
        clock.advance(timedelta(minutes=rng.randint(1, 2000)))
        ops.add_comment(ticket, _agent(), "Réponse.", clock.now(), internal=False)
        if rng.random() < 0.7:
            clock.advance(timedelta(minutes=rng.randint(1, 5000)))
            ops.resolve(ticket, _agent(), "Fait.", clock.now())
        db.session.commit()
    start, end = datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS)
    in_sql = workload._speed_in_sql(start, end, None, None)
    in_python = workload._speed_in_python(start, end, None, None, calendar())
    assert in_sql is not None and set(in_sql) == set(in_python)
    for group, items in in_python.items():
        assert set(in_sql[group]) == set(items), group
        for key, pair in items.items():
            for sql_stats, py_stats in zip(in_sql[group][key], pair, strict=True):
                assert sql_stats.count == py_stats.count
                for a, b in ((sql_stats.median, py_stats.median), (sql_stats.p90, py_stats.p90)):
                    assert (a is None) == (b is None) and (a is None or abs(a - b) <= timedelta(microseconds=1))
    assert in_python["all"][None][0].count == 12
    # A row without its stored duration sends the report back to the calendar replay.
    answered_in_march = sa.select(sa.func.min(Ticket.id)).where(Ticket.first_response_at >= start)
    db.session.execute(sa.update(Ticket).where(Ticket.id == db.session.scalar(answered_in_march))
                       .values(first_response_business_seconds=None))
    assert workload._speed_in_sql(start, end, None, None) is None
