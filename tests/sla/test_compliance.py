"""Compliance: deadlines met in 95 % of cases for each commune (Toodego annex § 6.1.a)."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sla import (
    BusinessCalendar,
    ComplianceFigures,
    ComplianceTicket,
    SlaEvent,
    SlaPolicy,
    compliance_by,
    compute_compliance,
    compute_sla,
    figures_from_counts,
)

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2025, 1, 1, tzinfo=PARIS)
END = datetime(2025, 2, 1, tzinfo=PARIS)
NOW = datetime(2025, 1, 20, 12, tzinfo=PARIS)
ECULLY = "69081"
TASSIN = "69244"


def ticket(
    met: bool | None,
    deadline_at: datetime = datetime(2025, 1, 15, 12, tzinfo=PARIS),
    *,
    commune: str = ECULLY,
    service: str = "toodego",
    priority: str | None = "bloquant",
    **extra: Any,
) -> ComplianceTicket:
    return ComplianceTicket(commune, service, priority, deadline_at, met, **extra)


def figures(met: int, breached: int, still_open: int = 0) -> list[ComplianceTicket]:
    return [ticket(True)] * met + [ticket(False)] * breached + [ticket(None, NOW + timedelta(days=1))] * still_open


@pytest.mark.parametrize(
    ("tickets", "expected"),
    [
        pytest.param(
            [], ComplianceFigures(0, 0, 0, 0, None, 0.95, True, 0, 0), id="nothing-committed-is-vacuously-conforme"
        ),
        pytest.param(figures(0, 0, 3), ComplianceFigures(3, 0, 0, 3, None, 0.95, True, 0, 0), id="only-open"),
        pytest.param(figures(19, 1), ComplianceFigures(20, 19, 1, 0, 0.95, 0.95, True, 0, 0), id="exactly-95"),
        pytest.param(figures(100, 0), ComplianceFigures(100, 100, 0, 0, 1.0, 0.95, True, 5, 0), id="budget-of-5"),
        pytest.param(figures(38, 1, 4), ComplianceFigures(43, 38, 1, 4, 38 / 39, 0.95, True, 1, 0), id="budget-of-1"),
        pytest.param(figures(18, 2), ComplianceFigures(20, 18, 2, 0, 0.9, 0.95, False, 0, 20), id="below-target"),
        pytest.param(figures(0, 1), ComplianceFigures(1, 0, 1, 0, 0.0, 0.95, False, 0, 19), id="single-breach"),
        pytest.param(figures(1, 0), ComplianceFigures(1, 1, 0, 0, 1.0, 0.95, True, 0, 0), id="single-met"),
    ],
)
def test_figures(tickets: list[ComplianceTicket], expected: ComplianceFigures) -> None:
    assert compute_compliance(tickets, START, END, NOW) == expected


@pytest.mark.parametrize(("met", "breached"), [(met, breached) for met in range(0, 60, 7) for breached in range(6)])
def test_error_budget_is_the_largest_safe_number_of_breaches(met: int, breached: int) -> None:
    result = compute_compliance(figures(met, breached), START, END, NOW)
    target = Fraction(95, 100)

    def conforme(m: int, b: int) -> bool:
        return m + b == 0 or Fraction(m, m + b) >= target

    budget = result.error_budget
    assert budget >= 0
    if conforme(met, breached) and met + breached > 0:
        assert conforme(met, breached + budget) and not conforme(met, breached + budget + 1)
    elif not conforme(met, breached):
        assert budget == 0
        recovery = result.recovery_needed
        assert recovery is not None
        assert conforme(met + recovery, breached) and not conforme(met + recovery - 1, breached)


def test_a_ticket_counts_in_the_period_of_its_deadline() -> None:
    tickets = [
        ticket(True, START),  # first instant of the period: in
        ticket(False, END),  # first instant after the period: out
        ticket(False, START - timedelta(microseconds=1)),  # out
        ticket(True, END - timedelta(microseconds=1)),  # in
        ticket(None, None),  # no deadline: never committed
    ]
    assert compute_compliance(tickets, START, END, NOW).committed == 2


def test_only_committed_priorities_count() -> None:
    tickets = [
        ticket(True, priority="bloquant"),
        ticket(False, priority="majeur"),
        ticket(False, priority="mineur"),
        ticket(False, priority=None),
        ticket(False, is_excluded=True),
    ]
    result = compute_compliance(tickets, START, END, NOW)
    assert (result.committed, result.met, result.breached) == (2, 1, 1)
    assert compute_compliance(tickets, START, END, NOW, priorities=("bloquant",)).committed == 1


@pytest.mark.parametrize(
    ("open_ticket", "is_breached"),
    [
        pytest.param(ticket(None, NOW - timedelta(hours=1)), True, id="deadline-passed"),
        pytest.param(ticket(None, NOW), False, id="deadline-now-is-still-on-time"),
        pytest.param(ticket(None, NOW + timedelta(hours=1)), False, id="deadline-ahead"),
        pytest.param(
            ticket(None, NOW - timedelta(hours=3), breach_at=NOW + timedelta(hours=18)),
            False,
            id="deadline-at-17h-breached-only-at-the-next-opening",
        ),
        pytest.param(ticket(None, NOW - timedelta(hours=1), is_paused=True), False, id="suspended"),
    ],
)
def test_open_tickets_breached_as_of_now(open_ticket: ComplianceTicket, is_breached: bool) -> None:
    result = compute_compliance([open_ticket], START, END, NOW)
    assert (result.breached, result.open) == ((1, 0) if is_breached else (0, 1))
    assert open_ticket.is_breached_at(NOW) is is_breached


def test_compliance_by_commune_and_by_service() -> None:
    tickets = [
        *figures(19, 1),
        ticket(True, commune=TASSIN, service="laclasse"),
        ticket(False, commune=TASSIN),
        ticket(True, commune="69266", priority="mineur"),
    ]
    by_commune = compliance_by(tickets, START, END, NOW)
    assert list(by_commune) == [ECULLY, TASSIN, "69266"]
    assert (by_commune[ECULLY].compliance, by_commune[ECULLY].is_conforme) == (0.95, True)
    assert (by_commune[TASSIN].compliance, by_commune[TASSIN].is_conforme) == (0.5, False)
    assert by_commune["69266"].committed == 0
    by_service = compliance_by(tickets, START, END, NOW, key=lambda t: (t.commune, t.service))
    assert by_service[(TASSIN, "laclasse")].met == 1 and by_service[(TASSIN, "toodego")].breached == 1


def test_target_is_exact() -> None:
    tickets = figures(19, 1)
    assert compute_compliance(tickets, START, END, NOW, target=0.95).is_conforme
    assert compute_compliance(tickets, START, END, NOW, target="0.95").is_conforme
    assert not compute_compliance(tickets, START, END, NOW, target=Fraction(951, 1000)).is_conforme
    strict = compute_compliance(tickets, START, END, NOW, target=1)
    assert (strict.is_conforme, strict.error_budget, strict.recovery_needed) == (False, 0, None)


@pytest.mark.parametrize(
    ("start", "end", "now", "kwargs", "message"),
    [
        (END, START, NOW, {}, "empty period"),
        (START, START, NOW, {}, "empty period"),
        (datetime(2025, 1, 1), END, NOW, {}, "timezone-aware"),
        (START, END, datetime(2025, 1, 20), {}, "timezone-aware"),
        (START, END, NOW, {"target": 0}, "target"),
        (START, END, NOW, {"target": 1.2}, "target"),
    ],
)
def test_invalid_input(start: datetime, end: datetime, now: datetime, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_compliance([], start, end, now, **kwargs)


MONDAY_9H = datetime(2025, 1, 13, 9, tzinfo=PARIS)
LOGS = {
    "on-time": [SlaEvent(MONDAY_9H, "priority_set", "bloquant"), SlaEvent(MONDAY_9H + timedelta(hours=2), "resolved")],
    "due-at-17h": [SlaEvent(MONDAY_9H, "priority_set", "bloquant")],
    "late": [SlaEvent(MONDAY_9H, "priority_set", "majeur"), SlaEvent(MONDAY_9H + timedelta(days=4), "resolved")],
    "suspended": [SlaEvent(MONDAY_9H, "priority_set", "majeur"), SlaEvent(MONDAY_9H + timedelta(hours=1), "waiting")],
    "mineur": [SlaEvent(MONDAY_9H, "priority_set", "mineur")],
    "rejected": [SlaEvent(MONDAY_9H, "priority_set", "bloquant"), SlaEvent(MONDAY_9H, "rejected")],
}


@pytest.mark.parametrize(
    ("now", "committed", "met", "breached"),
    [
        pytest.param(datetime(2025, 1, 13, 20, tzinfo=PARIS), 4, 1, 0, id="monday-evening-due-at-17h-not-breached"),
        pytest.param(datetime(2025, 1, 14, 9, tzinfo=PARIS), 4, 1, 0, id="tuesday-9h"),
        pytest.param(datetime(2025, 1, 14, 9, 1, tzinfo=PARIS), 4, 1, 1, id="tuesday-9h01-breached"),
        pytest.param(datetime(2025, 1, 20, 20, tzinfo=PARIS), 4, 1, 2, id="next-week"),
    ],
)
def test_records_built_from_sla_states_agree_with_the_clock(
    now: datetime, committed: int, met: int, breached: int
) -> None:
    calendar, policy = BusinessCalendar(), SlaPolicy(pause_while_waiting=True)
    states = {name: compute_sla(log, now, calendar, policy) for name, log in LOGS.items()}
    records = [ComplianceTicket.from_state(ECULLY, "toodego", state) for state in states.values()]
    for record, state in zip(records, states.values(), strict=True):
        assert record.is_excluded is (state.state == "sans_engagement")
        if not record.is_excluded:
            assert record.is_breached_at(now) is (state.state in ("depasse", "non_respecte"))
    result = compute_compliance(records, START, END, now)
    assert (result.committed, result.met, result.breached) == (committed, met, breached)


def test_figures_from_counts_match_the_tickets() -> None:
    assert figures_from_counts(38, 1, 4) == compute_compliance(figures(38, 1, 4), START, END, NOW)
    assert figures_from_counts(18, 2, 0, Fraction(9, 10)).is_conforme
    with pytest.raises(ValueError, match="negative"):
        figures_from_counts(1, -1, 0)
