"""Availability arithmetic (sla/availability.py): merged overlaps, maintenance excluded, month boundaries and
DST, ongoing outages, partial outages, the 99.9 % budget."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sla import OutageSpan, monthly_availability
from sla.availability import availability, daily_availability, day_bounds, month_bounds

PARIS = ZoneInfo("Europe/Paris")
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def p(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def test_empty_month_is_fully_available_with_the_whole_budget() -> None:
    result = monthly_availability([], [], 2026, 4, LATER)
    assert result.period == timedelta(days=30)
    assert result.downtime == timedelta()
    assert result.ratio == 1.0 and result.met
    assert result.allowed == timedelta(minutes=43, seconds=12)  # 0.1 % of 30 days
    assert result.budget_left == result.allowed


def test_allowed_downtime_of_a_30_4_day_month_is_about_43_min_49_s() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    result = availability([], [], start, start + timedelta(days=30.4375), LATER)
    # 0.1 % of 30.4375 days (the mean Gregorian month) = 2629.8 s.
    assert result.allowed == timedelta(minutes=43, seconds=50)


def test_overlapping_outages_are_merged() -> None:
    outages = [OutageSpan(p(2026, 4, 2, 10), p(2026, 4, 2, 11)), OutageSpan(p(2026, 4, 2, 10, 30), p(2026, 4, 2, 12)),
               OutageSpan(p(2026, 4, 2, 10, 45), p(2026, 4, 2, 11, 15))]
    result = monthly_availability(outages, [], 2026, 4, LATER)
    assert result.downtime == timedelta(hours=2)
    assert result.ratio == pytest.approx(1 - 2 / (30 * 24))
    assert result.budget_left == timedelta(minutes=43, seconds=12) - timedelta(hours=2)
    assert result.budget_left < timedelta() and not result.met


def test_maintenance_overlapping_an_outage_is_excluded() -> None:
    outage = OutageSpan(p(2026, 4, 2, 10), p(2026, 4, 2, 12))
    maintenance = [(p(2026, 4, 2, 11), p(2026, 4, 2, 13))]
    assert monthly_availability([outage], maintenance, 2026, 4, LATER).downtime == timedelta(hours=1)
    # A window covering the whole outage leaves nothing.
    assert monthly_availability([outage], [(p(2026, 4, 2, 9), p(2026, 4, 2, 13))], 2026, 4, LATER).downtime \
        == timedelta()


def test_planned_outages_do_not_count() -> None:
    outages = [OutageSpan(p(2026, 4, 2, 10), p(2026, 4, 2, 12), planned=True),
               OutageSpan(p(2026, 4, 2, 11), p(2026, 4, 2, 13))]
    assert monthly_availability(outages, [], 2026, 4, LATER).downtime == timedelta(hours=1)


def test_outage_across_a_month_boundary_is_split_between_the_months() -> None:
    outage = OutageSpan(p(2026, 4, 30, 23), p(2026, 5, 1, 2))
    assert monthly_availability([outage], [], 2026, 4, LATER).downtime == timedelta(hours=1)
    assert monthly_availability([outage], [], 2026, 5, LATER).downtime == timedelta(hours=2)


def test_march_with_the_dst_change_lasts_one_hour_less() -> None:
    start, end = month_bounds(2026, 3)
    assert end - start == timedelta(days=31, hours=-1)
    # The night of 29 March: 01:00 → 04:00 local is two real hours.
    outage = OutageSpan(p(2026, 3, 29, 1), p(2026, 3, 29, 4))
    result = monthly_availability([outage], [], 2026, 3, LATER)
    assert result.downtime == timedelta(hours=2)
    assert result.period == timedelta(days=31, hours=-1)
    assert day_bounds(date(2026, 3, 29))[1] - day_bounds(date(2026, 3, 29))[0] == timedelta(hours=23)


def test_october_with_the_dst_change_lasts_one_hour_more() -> None:
    start, end = month_bounds(2026, 10)
    assert end - start == timedelta(days=31, hours=1)
    # 25 October: 00:00 → 04:00 local is five real hours (02:00–03:00 happens twice).
    outage = OutageSpan(p(2026, 10, 25, 0), p(2026, 10, 25, 4))
    assert monthly_availability([outage], [], 2026, 10, LATER).downtime == timedelta(hours=5)
    assert monthly_availability([], [], 2026, 10, LATER).allowed == timedelta(minutes=44, seconds=42)  # 0.1 % of 31 d 1 h


def test_december_boundary_crosses_the_year() -> None:
    start, end = month_bounds(2026, 12)
    assert start == datetime(2026, 11, 30, 23, tzinfo=UTC) and end == datetime(2026, 12, 31, 23, tzinfo=UTC)


def test_ongoing_outage_counts_up_to_now() -> None:
    outage = OutageSpan(p(2026, 4, 10, 8), None)
    now = p(2026, 4, 10, 8, 30)
    assert monthly_availability([outage], [], 2026, 4, now).downtime == timedelta(minutes=30)
    # Later, the same ongoing outage has grown; the month's period is unchanged.
    later = monthly_availability([outage], [], 2026, 4, p(2026, 4, 10, 9, 30))
    assert later.downtime == timedelta(minutes=90) and later.period == timedelta(days=30)
    # An ongoing outage started in March runs through April up to now.
    assert monthly_availability([OutageSpan(p(2026, 3, 31, 23), None)], [], 2026, 4, p(2026, 4, 1, 1)).downtime \
        == timedelta(hours=1)


def test_nothing_after_now_counts() -> None:
    outage = OutageSpan(p(2026, 4, 10, 8), p(2026, 4, 10, 12))
    assert monthly_availability([outage], [], 2026, 4, p(2026, 4, 10, 9)).downtime == timedelta(hours=1)
    assert monthly_availability([outage], [], 2026, 4, p(2026, 3, 1)).downtime == timedelta()


def test_partial_outages_are_weighted() -> None:
    partial = OutageSpan(p(2026, 4, 2, 10), p(2026, 4, 2, 14), partial=True)
    assert monthly_availability([partial], [], 2026, 4, LATER).downtime == timedelta(hours=2)
    assert monthly_availability([partial], [], 2026, 4, LATER, partial_weight=1).downtime == timedelta(hours=4)
    assert monthly_availability([partial], [], 2026, 4, LATER, partial_weight=0).downtime == timedelta()
    with pytest.raises(ValueError):
        monthly_availability([partial], [], 2026, 4, LATER, partial_weight=2)


def test_total_outage_overlapping_a_partial_one_counts_once_as_total() -> None:
    outages = [OutageSpan(p(2026, 4, 2, 10), p(2026, 4, 2, 14), partial=True),
               OutageSpan(p(2026, 4, 2, 11), p(2026, 4, 2, 12))]
    # 1 h total + 3 h partial × 0.5.
    assert monthly_availability(outages, [], 2026, 4, LATER).downtime == timedelta(hours=2, minutes=30)


def test_daily_figures_cover_each_local_day() -> None:
    outage = OutageSpan(p(2026, 3, 28, 23), p(2026, 3, 29, 1))
    days = daily_availability([outage], [], date(2026, 3, 28), date(2026, 3, 30), LATER)
    assert [d for d, _ in days] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert [a.downtime for _, a in days] == [timedelta(hours=1), timedelta(hours=1), timedelta()]
    assert days[1][1].period == timedelta(hours=23)
    assert days[2][1].ratio == 1.0


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        availability([], [], datetime(2026, 4, 1), datetime(2026, 5, 1), LATER)
