"""The SLA clock of a ticket as a function of its events (Toodego annex § 6.1.a)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sla import STATE_LABELS, STATES, BusinessCalendar, SlaEvent, SlaPolicy, SlaState, compute_sla

PARIS = ZoneInfo("Europe/Paris")
H = timedelta(hours=1)
CALENDAR = BusinessCalendar()
STRICT = SlaPolicy()  # the convention's reading: no suspension, priority change keeps the start
PAUSING = SlaPolicy(pause_while_waiting=True)
RESTART = SlaPolicy(priority_change="restart")


def at(day: int, hour: int, minute: int = 0, month: int = 1, microsecond: int = 0) -> datetime:
    """An instant of January 2025 in Paris (Monday 13, Tuesday 14…)."""
    return datetime(2025, month, day, hour, minute, 0, microsecond, tzinfo=PARIS)


def priority(moment: datetime, value: str) -> SlaEvent:
    return SlaEvent(moment, "priority_set", value)


def event(moment: datetime, kind: str) -> SlaEvent:
    return SlaEvent(moment, kind)


BLOQUANT_MONDAY_10H = [priority(at(13, 10), "bloquant")]

CASES: list[Any] = [
    # id, policy, events, now, expected fields
    pytest.param(STRICT, [], at(13, 10), {"state": "sans_engagement", "priority": None, "target": None}, id="no-event"),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "mineur")],
        at(14, 10),
        {"state": "sans_engagement", "no_commitment_reason": "priorité mineur : pas d'engagement", "met": None},
        id="mineur-has-no-commitment",
    ),
    pytest.param(
        STRICT,
        BLOQUANT_MONDAY_10H,
        at(13, 14),
        {
            "state": "dans_les_temps",
            "target": 8 * H,
            "started_at": at(13, 10),
            "consumed": 4 * H,
            "remaining": 4 * H,
            "overrun": timedelta(0),
            "deadline_at": at(14, 10),
            "at_risk_at": at(13, 16),
            "breach_at": at(14, 10),
            "is_running": True,
            "is_paused": False,
            "met": None,
        },
        id="bloquant-running",
    ),
    pytest.param(STRICT, BLOQUANT_MONDAY_10H, at(13, 15, 59), {"state": "dans_les_temps"}, id="just-before-risk"),
    pytest.param(STRICT, BLOQUANT_MONDAY_10H, at(13, 16), {"state": "a_risque"}, id="at-risk-at-75-percent"),
    pytest.param(STRICT, BLOQUANT_MONDAY_10H, at(13, 20), {"state": "a_risque", "consumed": 7 * H}, id="night"),
    pytest.param(
        STRICT, BLOQUANT_MONDAY_10H, at(14, 10), {"state": "a_risque", "remaining": timedelta(0)}, id="deadline-reached"
    ),
    pytest.param(
        STRICT,
        BLOQUANT_MONDAY_10H,
        at(14, 10, microsecond=1),
        {"state": "depasse", "overrun": timedelta(microseconds=1), "deadline_at": at(14, 10)},
        id="one-microsecond-late",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 9), "bloquant")],
        at(13, 18),
        {"state": "a_risque", "deadline_at": at(13, 17), "breach_at": at(14, 9)},
        id="deadline-at-17h-not-breached-in-the-evening",
    ),
    pytest.param(
        STRICT, [priority(at(13, 9), "bloquant")], at(14, 9, 1), {"state": "depasse"}, id="breached-next-morning"
    ),
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(14, 10), "resolved")],
        at(20, 10),
        {"state": "respecte", "met": True, "consumed": 8 * H, "is_running": False, "resolved_at": at(14, 10)},
        id="resolved-exactly-at-deadline",
    ),
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(14, 10, 1), "resolved")],
        at(20, 10),
        {"state": "non_respecte", "met": False, "overrun": timedelta(minutes=1), "breach_at": at(14, 10)},
        id="resolved-one-minute-late",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 9), "bloquant"), event(at(13, 18), "resolved")],
        at(20, 10),
        {"state": "respecte", "met": True, "breach_at": None},
        id="resolved-in-the-evening-of-a-17h-deadline",
    ),
    pytest.param(
        STRICT,
        [priority(at(10, 16), "majeur")],
        at(13, 10),
        {"state": "dans_les_temps", "target": 24 * H, "deadline_at": at(15, 16), "at_risk_at": at(15, 10)},
        id="majeur-24h-from-friday",
    ),
    # "En attente du demandeur": counted under the strict reading, suspended when the policy says so.
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(13, 12), "waiting"), event(at(14, 12), "waiting_ended")],
        at(14, 14),
        {"state": "depasse", "consumed": 12 * H, "deadline_at": at(14, 10)},
        id="waiting-counts-by-default",
    ),
    pytest.param(
        PAUSING,
        [*BLOQUANT_MONDAY_10H, event(at(13, 12), "waiting"), event(at(14, 12), "waiting_ended")],
        at(14, 14),
        {"state": "dans_les_temps", "consumed": 4 * H, "deadline_at": at(15, 10), "is_running": True},
        id="waiting-suspends-when-pausing",
    ),
    pytest.param(
        PAUSING,
        [*BLOQUANT_MONDAY_10H, event(at(13, 12), "waiting")],
        at(14, 11),
        {
            "state": "dans_les_temps",
            "consumed": 2 * H,
            "is_running": False,
            "is_paused": True,
            "deadline_at": at(14, 10),  # as last projected
            "breach_at": None,  # cannot breach while suspended
        },
        id="suspended-now",
    ),
    pytest.param(
        PAUSING,
        [*BLOQUANT_MONDAY_10H, event(at(14, 11), "waiting")],
        at(15, 11),
        {"state": "depasse", "is_paused": True, "consumed": 9 * H, "breach_at": at(14, 10)},
        id="suspended-after-the-breach-stays-depasse",
    ),
    pytest.param(
        PAUSING,
        [event(at(13, 9), "waiting"), *BLOQUANT_MONDAY_10H],
        at(14, 11),
        {"state": "dans_les_temps", "is_paused": True, "deadline_at": None, "consumed": timedelta(0)},
        id="suspended-before-the-clock-ever-ran",
    ),
    # Reopening: the time between resolution and reopening does not count.
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(13, 12), "resolved"), event(at(14, 12), "reopened")],
        at(14, 14),
        {"state": "dans_les_temps", "consumed": 4 * H, "deadline_at": at(15, 10), "resolved_at": None},
        id="reopened",
    ),
    pytest.param(
        STRICT,
        [
            *BLOQUANT_MONDAY_10H,
            event(at(13, 12), "resolved"),
            event(at(14, 12), "reopened"),
            event(at(15, 9, 30), "resolved"),
            event(at(17, 9), "closed"),
        ],
        at(20, 9),
        {"state": "respecte", "consumed": 7.5 * H, "resolved_at": at(15, 9, 30), "deadline_at": at(15, 10)},
        id="reopened-then-resolved-then-closed",
    ),
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(13, 11), "closed")],
        at(20, 9),
        {"state": "respecte", "consumed": 1 * H, "resolved_at": at(13, 11)},
        id="closed-without-resolution-is-a-resolution",
    ),
    # Changes of priority.
    pytest.param(
        STRICT,
        [priority(at(13, 10), "majeur"), priority(at(14, 10), "bloquant")],
        at(14, 11),
        {"state": "depasse", "started_at": at(13, 10), "consumed": 9 * H, "deadline_at": at(14, 10)},
        id="keep-start-majeur-to-bloquant",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "bloquant"), priority(at(14, 9, 30), "majeur")],
        at(14, 11),
        {"state": "dans_les_temps", "target": 24 * H, "consumed": 9 * H, "deadline_at": at(16, 10)},
        id="keep-start-bloquant-to-majeur",
    ),
    pytest.param(
        RESTART,
        [priority(at(13, 10), "majeur"), priority(at(14, 10), "bloquant")],
        at(14, 11),
        {"state": "dans_les_temps", "started_at": at(14, 10), "consumed": 1 * H, "deadline_at": at(15, 10)},
        id="restart-majeur-to-bloquant",
    ),
    pytest.param(
        RESTART,
        [priority(at(13, 10), "bloquant"), priority(at(13, 14), "bloquant")],
        at(13, 15),
        {"started_at": at(13, 10), "consumed": 5 * H},
        id="restart-ignores-the-same-priority",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "bloquant"), priority(at(13, 15), "mineur")],
        at(14, 15),
        {"state": "sans_engagement", "priority": "mineur", "consumed": 5 * H, "deadline_at": None},
        id="bloquant-to-mineur-has-no-commitment",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "mineur"), priority(at(14, 10), "bloquant")],
        at(14, 12),
        {"state": "dans_les_temps", "started_at": at(14, 10), "consumed": 2 * H, "deadline_at": at(15, 10)},
        id="mineur-to-bloquant-starts-at-the-change",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "bloquant"), priority(at(13, 12), "mineur"), priority(at(14, 10), "bloquant")],
        at(14, 12),
        {"state": "dans_les_temps", "started_at": at(13, 10), "consumed": 4 * H, "deadline_at": at(14, 16)},
        id="keep-start-does-not-count-the-mineur-interlude",
    ),
    # Rejection, events after now, simultaneous events.
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(13, 11), "rejected")],
        at(20, 9),
        {"state": "sans_engagement", "no_commitment_reason": "ticket rejeté ou doublon : exclu des engagements"},
        id="rejected-is-excluded",
    ),
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(13, 11), "rejected"), event(at(13, 14), "reopened")],
        at(13, 16),
        {"state": "dans_les_temps", "consumed": 3 * H},
        id="rejected-then-reopened",
    ),
    pytest.param(
        STRICT,
        [*BLOQUANT_MONDAY_10H, event(at(14, 9), "resolved")],
        at(13, 12),
        {"state": "dans_les_temps", "consumed": 2 * H, "resolved_at": None},
        id="events-after-now-are-ignored",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "bloquant")],
        at(13, 10),
        {"state": "dans_les_temps", "consumed": timedelta(0), "deadline_at": at(14, 10), "is_running": True},
        id="priority-set-at-now",
    ),
    pytest.param(
        STRICT,
        [priority(at(13, 10), "bloquant"), event(at(13, 10), "resolved")],
        at(13, 12),
        {"state": "respecte", "consumed": timedelta(0)},
        id="resolved-at-the-assignment",
    ),
    pytest.param(
        SlaPolicy().with_overrides(targets={"mineur": 40 * H}),
        [priority(at(13, 10), "mineur")],
        at(13, 12),
        {"state": "dans_les_temps", "target": 40 * H, "deadline_at": at(20, 10)},
        id="service-override-commits-mineur",
    ),
]


@pytest.mark.parametrize(("policy", "events", "now", "expected"), CASES)
def test_compute_sla(policy: SlaPolicy, events: list[SlaEvent], now: datetime, expected: dict[str, Any]) -> None:
    state = compute_sla(events, now, CALENDAR, policy)
    assert {name: getattr(state, name) for name in expected} == expected
    assert state.state in STATES
    assert state.label == STATE_LABELS[state.state]
    # The explanation accounts for the consumed time exactly.
    counted = sum((period.business_time for period in state.explanation if period.counted), timedelta(0))
    assert counted == state.consumed
    for earlier, later in zip(state.explanation, state.explanation[1:], strict=False):
        assert earlier.end == later.start
    # Recomputing is deterministic, and skipping the explanation changes nothing else.
    assert compute_sla(events, now, CALENDAR, policy) == state
    quick = compute_sla(events, now, CALENDAR, policy, explain=False)
    assert quick.explanation == ()
    assert quick == SlaState(**{**state.__dict__, "explanation": ()})


def periods(state: SlaState) -> list[tuple[datetime, datetime, bool, timedelta, str]]:
    return [(p.start, p.end, p.counted, p.business_time, p.reason) for p in state.explanation]


def test_explanation_of_a_ticket_over_ascension_with_a_reopening() -> None:
    events = [
        SlaEvent(datetime(2025, 5, 28, 14, tzinfo=PARIS), "priority_set", "bloquant"),
        SlaEvent(datetime(2025, 5, 30, 10, tzinfo=PARIS), "resolved"),
        SlaEvent(datetime(2025, 6, 2, 11, tzinfo=PARIS), "reopened"),
        SlaEvent(datetime(2025, 6, 2, 12, tzinfo=PARIS), "resolved"),
    ]
    state = compute_sla(events, datetime(2025, 6, 10, tzinfo=UTC), CALENDAR, STRICT)

    def d(day: int, hour: int, month: int = 5) -> datetime:
        return datetime(2025, month, day, hour, tzinfo=PARIS)

    assert periods(state) == [
        (d(28, 14), d(28, 17), True, 3 * H, "heures ouvrées comptées"),
        (d(28, 17), d(30, 9), False, timedelta(0), "hors heures ouvrées / jour férié : Ascension"),
        (d(30, 9), d(30, 10), True, 1 * H, "heures ouvrées comptées"),
        (d(30, 10), d(2, 11, 6), False, 9 * H, "entre résolution et réouverture : non compté"),
        (d(2, 11, 6), d(2, 12, 6), True, 1 * H, "heures ouvrées comptées"),
    ]
    assert (state.state, state.consumed, state.deadline_at) == ("respecte", 5 * H, d(2, 15, 6))


def test_explanation_of_a_suspension() -> None:
    events = [*BLOQUANT_MONDAY_10H, event(at(13, 12), "waiting"), event(at(14, 12), "waiting_ended")]
    assert periods(compute_sla(events, at(14, 13), CALENDAR, PAUSING)) == [
        (at(13, 10), at(13, 12), True, 2 * H, "heures ouvrées comptées"),
        (at(13, 12), at(14, 12), False, 8 * H, "suspendu : en attente du demandeur"),
        (at(14, 12), at(14, 13), True, 1 * H, "heures ouvrées comptées"),
    ]
    assert periods(compute_sla(events, at(14, 13), CALENDAR, STRICT)) == [
        (at(13, 10), at(13, 12), True, 2 * H, "heures ouvrées comptées"),
        (at(13, 12), at(13, 17), True, 5 * H, "heures ouvrées comptées (en attente du demandeur, sans suspension)"),
        (at(13, 17), at(14, 9), False, timedelta(0), "hors heures ouvrées"),
        (at(14, 9), at(14, 12), True, 3 * H, "heures ouvrées comptées (en attente du demandeur, sans suspension)"),
        (at(14, 12), at(14, 13), True, 1 * H, "heures ouvrées comptées"),
    ]


def test_explanation_of_a_restart_and_of_mineur() -> None:
    events = [priority(at(13, 10), "mineur"), priority(at(13, 11), "majeur"), priority(at(13, 14), "bloquant")]
    assert periods(compute_sla(events, at(13, 15), CALENDAR, RESTART)) == [
        (at(13, 10), at(13, 11), False, 1 * H, "avant le changement de priorité (délai redémarré) : non compté"),
        (at(13, 11), at(13, 14), False, 3 * H, "avant le changement de priorité (délai redémarré) : non compté"),
        (at(13, 14), at(13, 15), True, 1 * H, "heures ouvrées comptées"),
    ]
    assert periods(compute_sla(events, at(13, 15), CALENDAR, STRICT)) == [
        (at(13, 10), at(13, 11), False, 1 * H, "priorité mineur : pas d'engagement"),
        (at(13, 11), at(13, 14), True, 3 * H, "heures ouvrées comptées"),
        (at(13, 14), at(13, 15), True, 1 * H, "heures ouvrées comptées"),
    ]


def test_results_are_in_the_calendar_zone_whatever_the_input_zone() -> None:
    events = [SlaEvent(datetime(2025, 1, 13, 9, tzinfo=UTC), "priority_set", "bloquant")]
    state = compute_sla(events, datetime(2025, 1, 13, 22, tzinfo=ZoneInfo("Asia/Tokyo")), CALENDAR, STRICT)
    assert state.started_at == at(13, 10) and state.started_at.tzinfo is PARIS
    assert state.deadline_at == at(14, 10) and state.deadline_at.tzinfo is PARIS
    assert state.explanation[0].start.tzinfo is PARIS


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda: SlaEvent(datetime(2025, 1, 13, 10), "resolved"), "timezone-aware", id="naive-event"),
        pytest.param(lambda: SlaEvent(at(13, 10), "escalated"), "unknown SLA event kind", id="unknown-kind"),
        pytest.param(lambda: SlaEvent(at(13, 10), "priority_set"), "priority is required", id="no-priority"),
        pytest.param(lambda: SlaEvent(at(13, 10), "resolved", "bloquant"), "priority is required", id="stray-priority"),
        pytest.param(
            lambda: compute_sla([priority(at(13, 10), "urgent")], at(13, 11), CALENDAR, STRICT),
            "unknown priority",
            id="unknown-priority",
        ),
        pytest.param(
            lambda: compute_sla(BLOQUANT_MONDAY_10H, datetime(2025, 1, 13, 11), CALENDAR, STRICT),
            "now must be timezone-aware",
            id="naive-now",
        ),
        pytest.param(
            lambda: compute_sla([event(at(13, 12), "resolved"), *BLOQUANT_MONDAY_10H], at(14, 9), CALENDAR, STRICT),
            "sorted",
            id="unsorted-events",
        ),
    ],
)
def test_invalid_input(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
