"""The monthly figures (dashboard trend, annual report) equal the pure reference (sla.compliance) month by month on
random data sets, and month buckets follow Paris months (a deadline at 00:30 Paris on the 1st belongs to that
month although it is the previous day in UTC)."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sau.extensions import db
from sau.reports.annual import annual_report
from sau.reports.compliance import compliance_by_commune
from sau.reports.trend import monthly_compliance, months_ending, period_and_trend
from sau.tickets import sla as ticket_sla
from sau.tickets.models import Ticket
from sla import ComplianceTicket, compliance_by, compute_compliance
from tests.reports.test_compliance_sql import _random_history

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize("seed", [4, 5])
def test_monthly_figures_equal_pure_reference(app, ctx, clock, make_request, seed):
    rng = random.Random(seed)
    _random_history(rng, clock, make_request, 40)
    tickets = db.session.scalars(sa.select(Ticket)).all()
    last_event = max(e.at for t in tickets for e in t.events)
    now = last_event + timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23))
    pure = [ComplianceTicket.from_state(t.commune.code, t.service.code, ticket_sla.compute(t, now, explain=False))
            for t in tickets]
    months = months_ending(datetime(2026, 7, 1, tzinfo=PARIS))
    assert months[0].key == "2025-07" and months[-1].key == "2026-06"
    trend = monthly_compliance(months, now)
    assert len(trend.communes) == 58
    by_code = trend.by_code()
    checked = 0
    for i, month in enumerate(months):
        reference = compliance_by(pure, start=month.start, end=month.end, now=now)
        for code, figures in reference.items():
            assert by_code[code].months[i] == figures, (seed, month.key, code)
            checked += figures.committed
        assert trend.total[i] == compute_compliance(pure, month.start, month.end, now), (seed, month.key)
    assert checked > 0
    # the annual report: the year is the sum of its months, and equals the pure reference over the year
    report = annual_report(2026, now)
    year = compliance_by(pure, start=datetime(2026, 1, 1, tzinfo=PARIS), end=datetime(2027, 1, 1, tzinfo=PARIS), now=now)
    for commune in report.communes:
        if commune.code in year:
            assert commune.year == year[commune.code], (seed, commune.code)
    assert report.total == compute_compliance(pure, datetime(2026, 1, 1, tzinfo=PARIS),
                                              datetime(2027, 1, 1, tzinfo=PARIS), now)


def test_month_buckets_are_paris_months(app, ctx, clock, make_request):
    """Deadlines moved by hand to both sides of a Paris month boundary."""
    refs = [make_request(commune="69081") for _ in range(2)]
    first_april_paris = datetime(2026, 4, 1, 0, 30, tzinfo=PARIS)  # 31 March 22:30 UTC
    assert first_april_paris.astimezone(UTC).day == 31
    for ref, deadline in zip(refs, (first_april_paris, first_april_paris - timedelta(hours=1)), strict=True):
        db.session.execute(sa.update(Ticket).where(Ticket.reference == ref).values(
            priority="bloquant", sla_state="respecte", sla_met=True, sla_deadline_at=deadline, sla_breach_at=deadline))
    db.session.commit()
    months = months_ending(datetime(2026, 5, 1, tzinfo=PARIS), count=2)
    trend = monthly_compliance(months, datetime(2026, 5, 1, tzinfo=PARIS))
    ecully = trend.by_code()["69081"]
    assert [m.key for m in months] == ["2026-03", "2026-04"]
    assert [f.committed for f in ecully.months] == [1, 1]


@pytest.mark.parametrize("seed", [6, 7])
def test_dashboard_single_scan_equals_separate_queries(app, ctx, clock, make_request, seed):
    """period_and_trend (the dashboard's one query) gives the figures of compliance_by_commune for the period and of
    monthly_compliance for the months, for periods not aligned on months too."""
    rng = random.Random(seed)
    _random_history(rng, clock, make_request, 30)
    now = clock.now() + timedelta(days=rng.randint(0, 30))
    seen = 0
    for start, end in [(datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS)),
                       (datetime(2026, 3, 12, tzinfo=PARIS), datetime(2026, 5, 3, tzinfo=PARIS)),
                       (datetime(2024, 11, 1, tzinfo=PARIS), datetime(2026, 11, 20, tzinfo=PARIS))]:
        months = months_ending(end)
        for filters in ({}, {"priority": "bloquant"}, {"communes": {db.session.scalar(
                sa.select(Ticket.commune_id).where(Ticket.commune_id.is_not(None)).limit(1))}}):
            period, trend = period_and_trend(start, end, months, now, **filters)
            assert period == compliance_by_commune(start, end, now, **filters), (start, filters)
            assert trend == monthly_compliance(months, now, **filters), (start, filters)
            seen += sum(r.figures.committed for r in period)
    assert seen > 0
