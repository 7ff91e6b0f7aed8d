"""Property tests: the business calendar agrees with the brute-force minute-by-minute oracle.

10,100 random cases against the oracle in all (12,600 comparisons; see each ``max_examples``), starts between
2024 and 2030 expressed in zones from UTC−10 to UTC+14, with deliberate weight on opening/closing minutes and
DST nights; then cheaper engine-only properties.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla import BusinessCalendar
from tests.sla.oracle import OracleCalendar

ZONES = [
    ZoneInfo(name)
    for name in (
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Asia/Tokyo",
        "Pacific/Kiritimati",
        "Pacific/Honolulu",
        "Asia/Kolkata",
        "Australia/Adelaide",
        "Pacific/Chatham",
    )
]
PARIS = ZoneInfo("Europe/Paris")
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2030, 12, 31)
MINUTES_IN_RANGE = (LAST_DAY - FIRST_DAY).days * 1440
# Local wall times where off-by-one errors live: around opening, closing, midnight and the DST hour.
TRICKY_TIMES = [time(h, m) for h, m in ((0, 0), (2, 30), (3, 0), (8, 59), (9, 0), (9, 1), (12, 0), (16, 59), (17, 0))]
TRICKY_TIMES += [time(17, 1), time(23, 59)]

PARIS_CALENDAR = BusinessCalendar()
PARIS_ORACLE = OracleCalendar()

# Other calendars: a bridge after Ascension and exceptional hours (Paris); a lunch break; another zone and country.
BRIDGES = [date(2025, 5, 30), date(2026, 5, 15), date(2027, 5, 7), date(2024, 11, 1) + timedelta(days=10)]
EXCEPTIONAL = {
    date(2025, 12, 24): [(time(9), time(12))],
    date(2025, 12, 31): [(time(9), time(12))],
    date(2026, 1, 3): [(time(10), time(16))],  # a Saturday opening
    date(2026, 4, 6): [(time(9), time(17))],  # Easter Monday opened exceptionally
    date(2026, 2, 2): [],  # closed
}
LUNCH = {weekday: [(time(8, 30), time(12)), (time(13, 30), time(17, 30))] for weekday in range(5)}
CALENDARS = [
    (
        BusinessCalendar(extra_closures=BRIDGES, exceptional_hours=EXCEPTIONAL),
        OracleCalendar(extra_closures=BRIDGES, exceptional_hours=EXCEPTIONAL),
    ),
    (BusinessCalendar(weekly_hours=LUNCH), OracleCalendar(weekly_hours=LUNCH)),
    (
        BusinessCalendar(tz="America/New_York", country="US"),
        OracleCalendar(tz=ZoneInfo("America/New_York"), country="US"),
    ),
]

PROPERTY = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """A minute-aligned instant in 2024–2030, expressed in one of ``ZONES``."""
    if draw(st.booleans()):
        instant = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, MINUTES_IN_RANGE)))
    else:
        day = draw(st.dates(FIRST_DAY, LAST_DAY))
        instant = datetime.combine(day, draw(st.sampled_from(TRICKY_TIMES)), tzinfo=PARIS)
    return instant.astimezone(draw(st.sampled_from(ZONES)))


def minutes(high: int) -> st.SearchStrategy[timedelta]:
    exact_days = st.sampled_from([0, 1, 60, 479, 480, 481, 960, 1440])
    return st.one_of(exact_days, st.integers(0, high)).map(lambda m: timedelta(minutes=min(m, high)))


@settings(PROPERTY, max_examples=4000)
@given(start=instants(), delta=minutes(12 * 60))
def test_add_business_time_matches_oracle(start: datetime, delta: timedelta) -> None:
    result = PARIS_CALENDAR.add_business_time(start, delta)
    assert result == PARIS_ORACLE.add(start, delta)
    assert result.tzinfo is PARIS_CALENDAR.tz


@settings(PROPERTY, max_examples=300)
@given(start=instants(), delta=minutes(5 * 5 * 8 * 60))
def test_add_business_time_over_weeks_matches_oracle(start: datetime, delta: timedelta) -> None:
    assert PARIS_CALENDAR.add_business_time(start, delta) == PARIS_ORACLE.add(start, delta)


@settings(PROPERTY, max_examples=3000)
@given(start=instants(), length=st.integers(0, 3 * 1440))
def test_business_time_between_matches_oracle(start: datetime, length: int) -> None:
    end = start + timedelta(minutes=length)
    assert PARIS_CALENDAR.business_time_between(start, end) == PARIS_ORACLE.between(start, end)


@settings(PROPERTY, max_examples=300)
@given(start=instants(), length=st.integers(0, 6 * 7 * 1440))
def test_business_time_between_over_weeks_matches_oracle(start: datetime, length: int) -> None:
    end = start + timedelta(minutes=length)
    assert PARIS_CALENDAR.business_time_between(start, end) == PARIS_ORACLE.between(start, end)


@settings(PROPERTY, max_examples=2500)
@given(
    pair=st.sampled_from(CALENDARS),
    start=instants(),
    delta=minutes(16 * 60),
    length=st.integers(0, 2 * 1440),
)
def test_other_calendars_match_oracle(
    pair: tuple[BusinessCalendar, OracleCalendar], start: datetime, delta: timedelta, length: int
) -> None:
    calendar, oracle = pair
    assert calendar.add_business_time(start, delta) == oracle.add(start, delta)
    end = start + timedelta(minutes=length)
    assert calendar.business_time_between(start, end) == oracle.between(start, end)


# Engine-only properties (no oracle): cheap, so they also cover microseconds and much longer durations.


@settings(PROPERTY, max_examples=400)
@given(
    start=instants(),
    extra=st.integers(0, 59_999_999),
    delta=st.integers(0, 400 * 3_600_000_000).map(lambda us: timedelta(microseconds=us)),
)
def test_business_time_between_undoes_add(start: datetime, extra: int, delta: timedelta) -> None:
    start += timedelta(microseconds=extra)
    deadline = PARIS_CALENDAR.add_business_time(start, delta)
    assert deadline >= start
    assert PARIS_CALENDAR.business_time_between(start, deadline) == delta
    if delta:
        # The deadline is the first instant reaching delta: a microsecond earlier is not enough.
        just_before = deadline - timedelta(microseconds=1)
        assert PARIS_CALENDAR.business_time_between(start, just_before) < delta


@settings(PROPERTY, max_examples=500)
@given(start=instants(), first=minutes(3000), second=minutes(3000))
def test_adding_in_two_steps_is_adding_once(start: datetime, first: timedelta, second: timedelta) -> None:
    once = PARIS_CALENDAR.add_business_time(start, first + second)
    in_two = PARIS_CALENDAR.add_business_time(PARIS_CALENDAR.add_business_time(start, first), second)
    if second:  # adding zero to a deadline at 17:00 moves it to the next opening: not a deadline any more
        assert once == in_two


@settings(PROPERTY, max_examples=500)
@given(start=instants(), middle=st.integers(0, 20_000), end=st.integers(0, 20_000))
def test_business_time_is_additive(start: datetime, middle: int, end: int) -> None:
    middle_at = start + timedelta(minutes=min(middle, end))
    end_at = start + timedelta(minutes=max(middle, end))
    total = PARIS_CALENDAR.business_time_between(start, end_at)
    parts = PARIS_CALENDAR.business_time_between(start, middle_at) + PARIS_CALENDAR.business_time_between(
        middle_at, end_at
    )
    assert total == parts
    intervals = PARIS_CALENDAR.business_intervals(start, end_at)
    assert sum((b.astimezone(UTC) - a.astimezone(UTC) for a, b in intervals), timedelta(0)) == total
