"""Business calendar: named cases of the Toodego annex § 6.1.a calendar, checked against the engine and the oracle."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sla import BusinessCalendar
from tests.sla.oracle import OracleCalendar

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
H = timedelta(hours=1)

CALENDAR = BusinessCalendar()
ORACLE = OracleCalendar()


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


ADD_CASES = [
    # (start, business time, expected deadline)
    pytest.param(paris(2025, 1, 10, 16), 8 * H, paris(2025, 1, 13, 16), id="friday-16h-plus-8h-is-monday-16h"),
    pytest.param(paris(2025, 1, 13, 9), 8 * H, paris(2025, 1, 13, 17), id="deadline-at-17h-stays-17h"),
    pytest.param(paris(2025, 1, 13, 13), 4 * H, paris(2025, 1, 13, 17), id="afternoon-to-closing-stays-17h"),
    pytest.param(paris(2025, 1, 10, 9), 16 * H, paris(2025, 1, 13, 17), id="two-days-to-monday-17h"),
    pytest.param(paris(2025, 5, 28, 10), 8 * H, paris(2025, 5, 30, 10), id="wednesday-before-ascension-2025"),
    pytest.param(paris(2026, 5, 13, 14), 8 * H, paris(2026, 5, 15, 14), id="wednesday-before-ascension-2026"),
    pytest.param(paris(2024, 5, 7, 10), 8 * H, paris(2024, 5, 10, 10), id="victoire-and-ascension-2024"),
    pytest.param(paris(2024, 12, 24, 10), 24 * H, paris(2024, 12, 30, 10), id="24h-across-christmas-2024"),
    pytest.param(paris(2025, 12, 24, 14), 24 * H, paris(2025, 12, 30, 14), id="24h-across-christmas-2025"),
    pytest.param(paris(2025, 12, 30, 12), 24 * H, paris(2026, 1, 5, 12), id="24h-across-new-year"),
    pytest.param(paris(2025, 1, 11, 10), 8 * H, paris(2025, 1, 13, 17), id="saturday-start-is-monday-9h"),
    pytest.param(paris(2025, 1, 12, 23, 59), 1 * H, paris(2025, 1, 13, 10), id="sunday-night-start"),
    pytest.param(paris(2025, 1, 13, 8), 2 * H, paris(2025, 1, 13, 11), id="start-at-8h-begins-at-9h"),
    pytest.param(paris(2025, 1, 13, 17), 1 * H, paris(2025, 1, 14, 10), id="start-at-17h-begins-next-morning"),
    pytest.param(paris(2025, 1, 13, 17), 8 * H, paris(2025, 1, 14, 17), id="start-at-17h-plus-8h"),
    pytest.param(paris(2025, 1, 13, 16, 59), 1 * H, paris(2025, 1, 14, 9, 59), id="one-minute-before-closing"),
    pytest.param(paris(2025, 3, 28, 13), 8 * H, paris(2025, 3, 31, 13), id="dst-spring-weekend-2025"),
    pytest.param(paris(2025, 3, 28, 9), 16 * H, paris(2025, 3, 31, 17), id="dst-spring-two-full-days"),
    pytest.param(paris(2025, 10, 24, 16), 2 * H, paris(2025, 10, 27, 10), id="dst-autumn-weekend-2025"),
    pytest.param(paris(2024, 10, 25, 12), 24 * H, paris(2024, 10, 30, 12), id="dst-autumn-weekend-2024-24h"),
    pytest.param(paris(2025, 1, 13, 10), timedelta(0), paris(2025, 1, 13, 10), id="zero-during-business-hours"),
    pytest.param(paris(2025, 1, 11, 10), timedelta(0), paris(2025, 1, 13, 9), id="zero-on-saturday-is-next-opening"),
    pytest.param(paris(2025, 1, 13, 17), timedelta(0), paris(2025, 1, 14, 9), id="zero-at-closing-is-next-opening"),
    pytest.param(paris(2030, 12, 31, 16), 8 * H, paris(2031, 1, 2, 16), id="leaves-the-built-years"),
    pytest.param(paris(2024, 1, 2, 9), 252 * 8 * H, paris(2024, 12, 31, 17), id="a-whole-year-2024"),
    # The same instants given in other zones: results are in Europe/Paris.
    pytest.param(datetime(2025, 1, 10, 10, tzinfo=NEW_YORK), 8 * H, paris(2025, 1, 13, 16), id="start-in-new-york"),
    pytest.param(datetime(2025, 1, 14, 0, tzinfo=TOKYO), 1 * H, paris(2025, 1, 13, 17), id="start-in-tokyo"),
    pytest.param(datetime(2025, 3, 30, 1, 30, tzinfo=UTC), 1 * H, paris(2025, 3, 31, 10), id="utc-start-on-dst-sunday"),
    pytest.param(
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC), 1 * H, paris(2025, 10, 27, 10), id="utc-start-in-repeated-hour"
    ),
]


@pytest.mark.parametrize(("start", "delta", "expected"), ADD_CASES)
def test_add_business_time(start: datetime, delta: timedelta, expected: datetime) -> None:
    deadline = CALENDAR.add_business_time(start, delta)
    assert deadline == expected
    assert (deadline.utcoffset(), deadline.tzinfo) == (expected.utcoffset(), PARIS)
    assert ORACLE.add(start, delta) == expected  # the oracle agrees with the table


BETWEEN_CASES = [
    pytest.param(paris(2025, 1, 13, 9), paris(2025, 1, 13, 17), 8 * H, id="one-day"),
    pytest.param(paris(2025, 1, 10, 16), paris(2025, 1, 13, 10), 2 * H, id="over-a-weekend"),
    pytest.param(paris(2025, 5, 28, 0), paris(2025, 5, 31, 0), 16 * H, id="ascension-week"),
    pytest.param(paris(2025, 3, 28, 9), paris(2025, 3, 31, 17), 16 * H, id="dst-spring-weekend"),
    pytest.param(paris(2025, 10, 24, 9), paris(2025, 10, 27, 17), 16 * H, id="dst-autumn-weekend"),
    pytest.param(paris(2025, 3, 30, 0), paris(2025, 3, 31, 0), timedelta(0), id="dst-sunday-itself"),
    pytest.param(paris(2025, 1, 13, 17), paris(2025, 1, 14, 9), timedelta(0), id="night"),
    pytest.param(paris(2025, 1, 13, 12), paris(2025, 1, 13, 12), timedelta(0), id="empty"),
    pytest.param(paris(2024, 1, 1), paris(2025, 1, 1), 252 * 8 * H, id="year-2024-has-252-business-days"),
    pytest.param(paris(2025, 1, 1), paris(2026, 1, 1), 251 * 8 * H, id="year-2025-has-251-business-days"),
    pytest.param(paris(2024, 12, 31, 16), paris(2025, 1, 2, 10), 2 * H, id="new-year"),
    pytest.param(
        datetime(2025, 1, 13, 8, tzinfo=UTC), datetime(2025, 1, 13, 10, tzinfo=NEW_YORK), 7 * H, id="mixed-zones"
    ),
]


@pytest.mark.parametrize(("start", "end", "expected"), BETWEEN_CASES)
def test_business_time_between(start: datetime, end: datetime, expected: timedelta) -> None:
    assert CALENDAR.business_time_between(start, end) == expected
    assert ORACLE.between(start, end) == expected


def test_microseconds_are_exact() -> None:
    before_closing = paris(2025, 1, 13, 16, 59, 59, 999_999)
    us = timedelta(microseconds=1)
    assert CALENDAR.add_business_time(before_closing, us) == paris(2025, 1, 13, 17)
    assert CALENDAR.add_business_time(before_closing, 2 * us) == paris(2025, 1, 14, 9, 0, 0, 1)
    assert CALENDAR.business_time_between(before_closing, paris(2025, 1, 14, 9, 0, 0, 1)) == 2 * us
    start = paris(2029, 6, 5, 10, 11, 12, 131_415)
    assert CALENDAR.add_business_time(start, timedelta(hours=30, microseconds=7)) == paris(
        2029, 6, 8, 16, 11, 12, 131_422
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: CALENDAR.add_business_time(datetime(2025, 1, 13, 10), H), id="add-naive-start"),
        pytest.param(lambda: CALENDAR.business_time_between(datetime(2025, 1, 13), paris(2025, 1, 14)), id="naive"),
        pytest.param(lambda: CALENDAR.business_time_between(paris(2025, 1, 13), datetime(2025, 1, 14)), id="naive2"),
        pytest.param(lambda: CALENDAR.is_business_time(datetime(2025, 1, 13, 10)), id="is-business-naive"),
        pytest.param(lambda: CALENDAR.next_opening(datetime(2025, 1, 13, 10)), id="next-opening-naive"),
        pytest.param(lambda: CALENDAR.business_intervals(datetime(2025, 1, 13), paris(2025, 1, 14)), id="intervals"),
    ],
)
def test_naive_datetimes_are_refused(call: object) -> None:
    with pytest.raises(ValueError, match="naive datetime .* timezone-aware"):
        call()  # type: ignore[operator]


def test_negative_delta_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        CALENDAR.add_business_time(paris(2025, 1, 13, 10), -H)


def test_reversed_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="is before start"):
        CALENDAR.business_time_between(paris(2025, 1, 14), paris(2025, 1, 13))
    with pytest.raises(ValueError, match="is before start"):
        CALENDAR.business_intervals(paris(2025, 1, 14), paris(2025, 1, 13))


def test_wrong_types_are_refused() -> None:
    with pytest.raises(TypeError):
        CALENDAR.add_business_time(date(2025, 1, 13), H)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CALENDAR.add_business_time(paris(2025, 1, 13), 3600)  # type: ignore[arg-type]


def test_years_outside_the_supported_range_are_refused() -> None:
    with pytest.raises(ValueError, match="limited to years"):
        CALENDAR.add_business_time(paris(2999, 12, 1), timedelta(days=1000))
    with pytest.raises(ValueError, match="limited to years"):
        CALENDAR.business_time_between(datetime(1850, 1, 1, tzinfo=UTC), paris(2025, 1, 1))


def test_business_intervals_are_clipped_to_the_bounds() -> None:
    assert CALENDAR.business_intervals(paris(2025, 5, 28, 12), paris(2025, 6, 2, 10)) == [
        (paris(2025, 5, 28, 12), paris(2025, 5, 28, 17)),
        (paris(2025, 5, 30, 9), paris(2025, 5, 30, 17)),
        (paris(2025, 6, 2, 9), paris(2025, 6, 2, 10)),
    ]
    assert CALENDAR.business_intervals(paris(2025, 1, 11), paris(2025, 1, 12)) == []


@pytest.mark.parametrize(
    ("moment", "is_business", "opening", "closing"),
    [
        (paris(2025, 1, 13, 9), True, paris(2025, 1, 13, 9), paris(2025, 1, 13, 17)),
        (
            paris(2025, 1, 13, 16, 59, 59, 999_999),
            True,
            paris(2025, 1, 13, 16, 59, 59, 999_999),
            paris(2025, 1, 13, 17),
        ),
        (paris(2025, 1, 13, 17), False, paris(2025, 1, 14, 9), paris(2025, 1, 14, 17)),
        (paris(2025, 1, 13, 8, 59), False, paris(2025, 1, 13, 9), paris(2025, 1, 13, 17)),
        (paris(2025, 5, 29, 10), False, paris(2025, 5, 30, 9), paris(2025, 5, 30, 17)),  # Ascension
        (paris(2025, 12, 31, 17, 30), False, paris(2026, 1, 2, 9), paris(2026, 1, 2, 17)),
    ],
)
def test_is_business_time_next_opening_and_closing(
    moment: datetime, is_business: bool, opening: datetime, closing: datetime
) -> None:
    assert CALENDAR.is_business_time(moment) is is_business
    assert ORACLE.is_business_minute(moment.replace(microsecond=0)) is is_business
    assert CALENDAR.next_opening(moment) == opening
    assert CALENDAR.next_closing(moment) == closing


@pytest.mark.parametrize(
    ("day", "reason", "is_business_day"),
    [
        (date(2025, 5, 29), "jour férié : Ascension", False),
        (date(2025, 12, 25), "jour férié : Noël", False),
        (date(2025, 6, 9), "jour férié : Lundi de Pentecôte", False),
        (date(2025, 11, 1), None, False),  # Toussaint on a Saturday: closed anyway
        (date(2025, 1, 11), None, False),  # Saturday
        (date(2025, 1, 13), None, True),
    ],
)
def test_closure_reasons(day: date, reason: str | None, is_business_day: bool) -> None:
    assert CALENDAR.closure_reason(day) == reason
    assert CALENDAR.is_business_day(day) is is_business_day


def test_french_holiday_names() -> None:
    assert CALENDAR.holiday_name(date(2026, 5, 14)) == "Ascension"
    assert CALENDAR.holiday_name(date(2026, 5, 13)) is None


# -- data-driven calendars ----------------------------------------------------------------------------------------

BRIDGE = BusinessCalendar(extra_closures=[date(2025, 5, 30)])
CHRISTMAS_EVE = BusinessCalendar(
    exceptional_hours={
        date(2025, 12, 24): [(time(9), time(12))],
        date(2025, 12, 27): [(time(10), time(12))],  # a Saturday opening
        date(2026, 1, 2): [],  # closed
        date(2026, 4, 6): [(time(9), time(17))],  # Easter Monday opened
    }
)


@pytest.mark.parametrize(
    ("calendar", "start", "delta", "expected"),
    [
        pytest.param(BRIDGE, paris(2025, 5, 28, 10), 8 * H, paris(2025, 6, 2, 10), id="bridge-after-ascension"),
        pytest.param(CHRISTMAS_EVE, paris(2025, 12, 24, 10), 8 * H, paris(2025, 12, 26, 15), id="short-day"),
        pytest.param(CHRISTMAS_EVE, paris(2025, 12, 26, 16), 3 * H, paris(2025, 12, 27, 12), id="saturday-opening"),
        pytest.param(CHRISTMAS_EVE, paris(2025, 12, 26, 16), 4 * H, paris(2025, 12, 29, 10), id="after-saturday"),
        pytest.param(CHRISTMAS_EVE, paris(2025, 12, 31, 16), 2 * H, paris(2026, 1, 5, 10), id="exceptional-closing"),
        pytest.param(CHRISTMAS_EVE, paris(2026, 4, 3, 16), 2 * H, paris(2026, 4, 6, 10), id="holiday-opened"),
    ],
)
def test_closures_and_exceptional_hours(
    calendar: BusinessCalendar, start: datetime, delta: timedelta, expected: datetime
) -> None:
    assert calendar.add_business_time(start, delta) == expected


def test_closure_reasons_of_data_driven_days() -> None:
    assert BRIDGE.closure_reason(date(2025, 5, 30)) == "fermeture exceptionnelle"
    assert CHRISTMAS_EVE.closure_reason(date(2026, 1, 2)) == "fermeture exceptionnelle"
    assert CHRISTMAS_EVE.closure_reason(date(2025, 12, 24)) is None
    assert CHRISTMAS_EVE.opening_hours(date(2025, 12, 24)) == ((time(9), time(12)),)


def test_a_calendar_in_another_zone() -> None:
    new_york = BusinessCalendar(tz="America/New_York", country="US")
    friday = datetime(2025, 3, 7, 16, tzinfo=NEW_YORK)  # US DST starts on Sunday 9 March 2025
    deadline = new_york.add_business_time(friday, 8 * H)
    assert deadline == datetime(2025, 3, 10, 16, tzinfo=NEW_YORK)
    assert deadline.tzinfo == NEW_YORK and deadline.utcoffset() == timedelta(hours=-4)
    assert new_york.add_business_time(datetime(2025, 7, 3, 10, tzinfo=NEW_YORK), 8 * H) == datetime(
        2025, 7, 7, 10, tzinfo=NEW_YORK
    )  # Independence Day
    assert new_york.add_business_time(paris(2025, 1, 13, 9), H) == datetime(2025, 1, 13, 10, tzinfo=NEW_YORK)


def test_an_always_open_calendar_counts_real_elapsed_time() -> None:
    always = BusinessCalendar(weekly_hours={weekday: [(time(0), time(0))] for weekday in range(7)}, country=None)
    saturday = paris(2025, 3, 29, 12)
    assert always.add_business_time(saturday, 24 * H) == paris(2025, 3, 30, 13)  # the DST day lasts 23 h
    assert always.business_time_between(paris(2025, 10, 26), paris(2025, 10, 27)) == 25 * H
    assert always.is_business_time(paris(2025, 3, 30, 2, 30))


def test_lunch_break() -> None:
    calendar = BusinessCalendar(weekly_hours={0: [(time(13, 30), time(17)), (time(8, 30), time(12))]})
    assert calendar.add_business_time(paris(2025, 1, 13, 11), 2 * H) == paris(2025, 1, 13, 14, 30)
    assert calendar.add_business_time(paris(2025, 1, 13, 16), 2 * H) == paris(2025, 1, 20, 9, 30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weekly_hours": {}}, "at least one weekday"),
        ({"weekly_hours": {7: [(time(9), time(17))]}}, "weekday must be"),
        ({"weekly_hours": {0: [(time(17), time(9))]}}, "empty or reversed"),
        ({"weekly_hours": {0: [(time(9), time(13)), (time(12), time(17))]}}, "overlap"),
        ({"weekly_hours": {0: [(time(9, tzinfo=PARIS), time(17))]}}, "without tzinfo"),
        (
            {"extra_closures": [date(2025, 1, 2)], "exceptional_hours": {date(2025, 1, 2): []}},
            "both closed and with exceptional hours",
        ),
    ],
)
def test_invalid_calendars(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**kwargs)  # type: ignore[arg-type]


def test_years_are_built_lazily_and_concurrently() -> None:
    calendar = BusinessCalendar()
    results: list[datetime] = []
    starts = [paris(year, 6, 2, 10) for year in (2038, 2027, 2033, 2029, 2036)]

    def worker(start: datetime) -> None:
        results.append(calendar.add_business_time(start, 40 * H))

    threads = [threading.Thread(target=worker, args=(start,)) for start in starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(CALENDAR.add_business_time(start, 40 * H) for start in starts)


def test_prebuilt_years() -> None:
    calendar = BusinessCalendar(years=range(2024, 2031))
    assert calendar.add_business_time(paris(2025, 1, 10, 16), 8 * H) == paris(2025, 1, 13, 16)


@pytest.mark.parametrize(
    "start",
    [
        paris(2025, 3, 30, 2, 30),  # does not exist (spring forward): read with the pre-transition offset
        paris(2025, 3, 30, 12),
        paris(2025, 10, 26, 2, 30),  # the first 02:30 (CEST)
        paris(2025, 10, 26, 2, 30).replace(fold=1),  # the second 02:30 (CET)
        paris(2025, 10, 26, 12),
    ],
)
def test_paris_datetimes_on_dst_sundays(start: datetime) -> None:
    # Datetimes already in the calendar's zone take a shortcut on ordinary days; DST days take the exact path.
    assert CALENDAR.add_business_time(start, H) == CALENDAR.add_business_time(start.astimezone(UTC), H)
    assert CALENDAR.add_business_time(start, H).hour == 10
    saturday = start - timedelta(days=1)
    assert CALENDAR.business_time_between(saturday, start + timedelta(days=1, hours=12)) > timedelta(0)
