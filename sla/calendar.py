"""Business calendar: opening hours, public holidays and closures, and business-time arithmetic.

The Métropole's support works "jours ouvrés du lundi au vendredi de 9h à 17h" (Toodego annex § 6.1.a), in
Europe/Paris; French public holidays are not business days. ``BusinessCalendar()`` is that calendar; every
rule is data (weekly hours, holidays, extra closures, exceptional hours) so other calendars can be built.

How it works: business periods are precomputed per day as absolute instants (integer microseconds since the
Unix epoch, UTC), from the local wall-clock opening hours of that day. An 09:00–17:00 day is therefore always
8 h long, even on the two DST Sundays' neighbours, and arithmetic is exact to the microsecond. A cumulative
array of business time and two bucket indexes let ``add_business_time`` and ``business_time_between`` answer in
a few steps, whatever the length of the duration. Years are built lazily when a query first needs them.

Conventions used throughout:

* business periods are half-open ``[opening, closing)``: 17:00 itself is not business time;
* inputs must be timezone-aware (any zone); results are in the calendar's zone;
* a start outside business hours begins at the next opening;
* a deadline that falls exactly at a closing stays at that closing (17:00 that day, not 09:00 the next day).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

import holidays

__all__ = [
    "DEFAULT_WEEKLY_HOURS",
    "MAX_YEAR",
    "MIN_YEAR",
    "BusinessCalendar",
    "OpeningHours",
]

#: Opening intervals of one day, as local wall-clock ``(opening, closing)`` pairs; a closing of ``time(0)`` means
#: midnight at the end of the day.
OpeningHours = Sequence[tuple[time, time]]

#: Monday to Friday, 09:00–17:00 (Toodego annex § 6.1.a: "jours ouvrés du lundi au vendredi de 9h à 17h").
DEFAULT_WEEKLY_HOURS: Mapping[int, OpeningHours] = {weekday: ((time(9), time(17)),) for weekday in range(5)}

#: Years the calendar can reach (wide enough for any ticket; bounded so that a runaway duration fails clearly).
MIN_YEAR = 1900
MAX_YEAR = 2999

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000
# Below this instant (2106-02-07) a float number of seconds round-trips to the exact microsecond through
# ``datetime.fromtimestamp``; beyond it we build the datetime with exact integer arithmetic.
_FAST_RESULT_LIMIT_US = 2**32 * _US_PER_SECOND
_FAR = 2**70  # sentinel beyond any instant or duration
_DAY_US = 86_400 * _US_PER_SECOND
_HOUR_US = 3_600 * _US_PER_SECOND


class _Span(NamedTuple):
    """Business periods of the consecutive years ``[first_year, end_year)``, as parallel sorted lists.

    ``opens[i]``/``closes[i]`` bound the i-th business period (epoch microseconds); ``cum[i]`` is the business
    time before it and ``cum_end[i] = cum[i] + closes[i] - opens[i]``. Index ``n = len(periods)`` is a sentinel
    (``opens[n] = closes[n] = cum_end[n] = _FAR``, ``cum[n] = total``) so scans never run off the lists.
    ``low``/``high`` are local midnight at the start of ``first_year`` and of ``end_year``.

    Two bucket indexes replace binary searches on the hot path: ``day_index[b]`` is the first period closing
    after ``low + b × 24 h``, ``hour_index[k]`` the first period whose ``cum_end`` reaches ``k`` business hours.
    A lookup jumps to the bucket and then steps over the few periods in it. ``day_offsets`` maps a local day
    (days since 1970-01-01) to its UTC offset in µs, for the days whose offset is constant (no DST change): it
    converts a datetime already in the calendar's zone without a ``utcoffset()`` call.
    """

    # A named tuple rather than a dataclass: the hot path unpacks it in one step.
    low: int
    high: int
    day_index: list[int]
    opens: list[int]
    closes: list[int]
    cum: list[int]
    total: int
    hour_index: list[int]
    cum_end: list[int]
    size: int
    first_year: int
    end_year: int
    day_offsets: dict[int, int]


def _to_us(moment: datetime) -> int:
    """Exact epoch microseconds of an aware datetime; raises ``ValueError`` when it is naive."""
    try:
        return (moment - _EPOCH) // _ONE_US
    except TypeError:
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime, got {type(moment).__name__}") from None
        raise ValueError(
            f"naive datetime {moment.isoformat()} is ambiguous: pass a timezone-aware datetime "
            "(e.g. datetime(..., tzinfo=ZoneInfo('Europe/Paris')) or a UTC instant)"
        ) from None


def _duration_us(delta: timedelta) -> int:
    if not isinstance(delta, timedelta):
        raise TypeError(f"expected a timedelta, got {type(delta).__name__}")
    return delta // _ONE_US


def _validate_hours(hours: Iterable[tuple[time, time]], what: str) -> tuple[tuple[time, time], ...]:
    """Return the intervals sorted, checking that each is non-empty, naive and that they do not overlap."""
    result: list[tuple[time, time]] = []
    for pair in hours:
        opening, closing = pair
        if not isinstance(opening, time) or not isinstance(closing, time):
            raise TypeError(f"{what}: opening hours must be (datetime.time, datetime.time) pairs")
        result.append((opening, closing))
    result.sort()
    previous_end: time | None = None
    for opening, closing in result:
        if opening.tzinfo is not None or closing.tzinfo is not None:
            raise ValueError(f"{what}: opening hours are local wall-clock times, without tzinfo")
        ends_at_midnight = closing == time(0)
        if not ends_at_midnight and closing <= opening:
            raise ValueError(f"{what}: interval {opening}–{closing} is empty or reversed")
        if previous_end is not None and opening < previous_end:
            raise ValueError(f"{what}: intervals overlap at {opening}")
        if previous_end == time(0):
            raise ValueError(f"{what}: nothing can follow an interval that ends at midnight")
        previous_end = closing
    return tuple(result)


class BusinessCalendar:
    """Opening hours, public holidays and closures of a support, with exact business-time arithmetic.

    ``BusinessCalendar()`` is the Métropole's support calendar (Toodego annex § 6.1.a): Monday to Friday,
    09:00–17:00 Europe/Paris, French public holidays (national holidays of metropolitan France) closed.

    Args:
        tz: IANA zone name or ``tzinfo`` of the opening hours; results are expressed in this zone.
        weekly_hours: weekday (0 = Monday … 6 = Sunday) → opening intervals; ``None`` = Monday–Friday 09:00–17:00.
            A weekday that is absent is closed. At least one weekday must open.
        country: ``holidays`` country code whose public holidays are closed (``None`` for no public holiday).
        subdiv: optional ``holidays`` subdivision (e.g. ``"57"`` for Moselle); ``None`` = national holidays.
        extra_closures: dates closed in addition to public holidays (bridges, "ponts", exceptional closures).
        exceptional_hours: date → opening intervals for that date, overriding the weekly hours and public
            holidays (an empty list closes the date). A date may not be both here and in ``extra_closures``.
        years: years to build at once (optional warm-up); any other year is built the first time it is needed.

    Raises:
        ValueError: invalid hours, unknown weekday, no opening at all, or a date both closed and with
            exceptional hours.
    """

    def __init__(
        self,
        tz: str | tzinfo = "Europe/Paris",
        weekly_hours: Mapping[int, OpeningHours] | None = None,
        country: str | None = "FR",
        extra_closures: Iterable[date] = (),
        exceptional_hours: Mapping[date, OpeningHours] | None = None,
        years: Iterable[int] | None = None,
        subdiv: str | None = None,
    ) -> None:
        self.tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        weekly = DEFAULT_WEEKLY_HOURS if weekly_hours is None else weekly_hours
        self.weekly_hours: Mapping[int, tuple[tuple[time, time], ...]] = {}
        for weekday, hours in weekly.items():
            if weekday not in range(7):
                raise ValueError(f"weekday must be 0 (Monday) … 6 (Sunday), got {weekday!r}")
            validated = _validate_hours(hours, f"weekday {weekday}")
            if validated:
                self.weekly_hours[weekday] = validated
        if not self.weekly_hours:
            raise ValueError("a business calendar needs opening hours on at least one weekday")
        self.extra_closures: frozenset[date] = frozenset(extra_closures)
        self.exceptional_hours: Mapping[date, tuple[tuple[time, time], ...]] = {
            day: _validate_hours(hours, f"exceptional hours of {day}")
            for day, hours in (exceptional_hours or {}).items()
        }
        both = self.extra_closures & self.exceptional_hours.keys()
        if both:
            raise ValueError(f"dates both closed and with exceptional hours: {sorted(both)}")
        self.country = country
        self.subdiv = subdiv
        self._holidays: holidays.HolidayBase | None = (
            holidays.country_holidays(country, subdiv=subdiv, years=(), language="fr") if country else None
        )
        self._lock = threading.RLock()
        self._year_periods: dict[int, tuple[list[int], list[int]]] = {}
        self._span: _Span | None = None
        self._wall_epoch = datetime(1970, 1, 1, tzinfo=self.tz)
        if years is not None:
            wanted = sorted(years)
            if wanted:
                self._build(wanted[0], wanted[-1] + 1)

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar(tz={str(self.tz)!r}, country={self.country!r}, "
            f"extra_closures={len(self.extra_closures)}, exceptional_hours={len(self.exceptional_hours)})"
        )

    # -- days -------------------------------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """Return the French name of the public holiday on ``day`` (e.g. ``"Ascension"``), or ``None``."""
        if self._holidays is None:
            return None
        with self._lock:  # the holidays object fills its years lazily; keep it single-threaded
            name = self._holidays.get(day)
        return None if name is None else str(name)

    def opening_hours(self, day: date) -> tuple[tuple[time, time], ...]:
        """Return the local opening intervals of ``day`` after exceptional hours, closures and holidays."""
        if day in self.exceptional_hours:
            return self.exceptional_hours[day]
        if day in self.extra_closures or self.holiday_name(day) is not None:
            return ()
        return self.weekly_hours.get(day.weekday(), ())

    def is_business_day(self, day: date) -> bool:
        """Return whether ``day`` has any opening hours."""
        return bool(self.opening_hours(day))

    def closure_reason(self, day: date) -> str | None:
        """Return why a day that would be open by the weekly hours is closed, in French, else ``None``.

        ``"jour férié : Ascension"`` for a public holiday, ``"fermeture exceptionnelle"`` for an extra closure or
        empty exceptional hours; ``None`` for open days and for days the weekly hours close (week-ends).
        """
        if day in self.exceptional_hours:
            return None if self.exceptional_hours[day] else "fermeture exceptionnelle"
        if day.weekday() not in self.weekly_hours:
            return None
        name = self.holiday_name(day)
        if name is not None:
            return f"jour férié : {name}"
        if day in self.extra_closures:
            return "fermeture exceptionnelle"
        return None

    # -- precomputation ---------------------------------------------------------------------------------------

    def _local_us(self, day: date, moment: time) -> int:
        return (datetime.combine(day, moment, tzinfo=self.tz) - _EPOCH) // _ONE_US

    def _periods_of_year(self, year: int) -> tuple[list[int], list[int]]:
        cached = self._year_periods.get(year)
        if cached is not None:
            return cached
        opens: list[int] = []
        closes: list[int] = []
        public_holidays: set[date] = set()
        if self.country:
            year_holidays = holidays.country_holidays(self.country, subdiv=self.subdiv, years=year, language="fr")
            public_holidays = {day for day in year_holidays if day.year == year}
        day = date(year, 1, 1)
        one_day = timedelta(days=1)
        while day.year == year:
            if day in self.exceptional_hours:
                hours = self.exceptional_hours[day]
            elif day in self.extra_closures or day in public_holidays:
                hours = ()
            else:
                hours = self.weekly_hours.get(day.weekday(), ())
            for opening, closing in hours:
                start = self._local_us(day, opening)
                end = self._local_us(day + one_day, time(0)) if closing == time(0) else self._local_us(day, closing)
                if closes and start < closes[-1]:
                    start = closes[-1]  # wall-clock hours next to a DST change may overlap once made absolute
                if end > start:  # an interval lying entirely in a DST gap is empty
                    opens.append(start)
                    closes.append(end)
            day += one_day
        self._year_periods[year] = (opens, closes)
        return opens, closes

    def _build(self, first_year: int, end_year: int) -> _Span:
        """Build (under the lock) a span covering at least ``[first_year, end_year)`` and the current span."""
        with self._lock:
            current = self._span
            if current is not None:
                if current.first_year <= first_year and end_year <= current.end_year:
                    return current
                first_year = min(first_year, current.first_year)
                end_year = max(end_year, current.end_year)
            if first_year < MIN_YEAR or end_year > MAX_YEAR + 1:
                raise ValueError(f"business calendar limited to years {MIN_YEAR}–{MAX_YEAR}")
            opens: list[int] = []
            closes: list[int] = []
            for year in range(first_year, end_year):
                year_opens, year_closes = self._periods_of_year(year)
                opens.extend(year_opens)
                closes.extend(year_closes)
            count = len(opens)
            cum: list[int] = []
            cum_end: list[int] = []
            total = 0
            for start, end in zip(opens, closes, strict=True):
                cum.append(total)
                total += end - start
                cum_end.append(total)
            opens.append(_FAR)
            closes.append(_FAR)
            cum.append(total)
            cum_end.append(_FAR)
            low = self._local_us(date(first_year, 1, 1), time(0))
            high = self._local_us(date(end_year, 1, 1), time(0))
            day_index: list[int] = []
            i = 0
            for bucket_start in range(low, high + _DAY_US, _DAY_US):
                while closes[i] <= bucket_start:
                    i += 1
                day_index.append(i)
            hour_index: list[int] = []
            j = 0
            for hours_done in range(0, total + _HOUR_US, _HOUR_US):
                while cum_end[j] < hours_done:
                    j += 1
                hour_index.append(j)
            day_offsets: dict[int, int] = {}
            midnight = low
            unix_day = date(1970, 1, 1)
            for day_number in range((date(first_year, 1, 1) - unix_day).days, (date(end_year, 1, 1) - unix_day).days):
                next_midnight = self._local_us(unix_day + timedelta(days=day_number + 1), time(0))
                if next_midnight - midnight == _DAY_US:  # a 24 h day: one offset all day long
                    day_offsets[day_number] = day_number * _DAY_US - midnight
                midnight = next_midnight
            span = _Span(
                first_year=first_year,
                end_year=end_year,
                day_offsets=day_offsets,
                low=low,
                high=high,
                size=count,
                total=total,
                opens=opens,
                closes=closes,
                cum=cum,
                cum_end=cum_end,
                day_index=day_index,
                hour_index=hour_index,
            )
            self._span = span
            return span

    def _span_for(self, instant_us: int) -> _Span:
        """Return a span that contains ``instant_us`` (and a margin of one year on each side)."""
        span = self._span
        if span is not None and span.low <= instant_us < span.high:
            return span
        year = self._from_us(instant_us).year
        return self._build(year - 1, year + 2)

    def _extend_forward(self, span: _Span, missing_us: int) -> _Span:
        """Return a span reaching at least ``missing_us`` more business time past the end of ``span``."""
        per_year = max(span.total // (span.end_year - span.first_year), 1)
        years = missing_us // per_year + 2
        return self._build(span.first_year, span.end_year + years)

    def _from_us(self, instant_us: int) -> datetime:
        if 0 <= instant_us < _FAST_RESULT_LIMIT_US:
            return datetime.fromtimestamp(instant_us / _US_PER_SECOND, self.tz)
        try:
            return (_EPOCH + timedelta(microseconds=instant_us)).astimezone(self.tz)
        except OverflowError:
            raise ValueError(f"instant outside the business calendar's years {MIN_YEAR}–{MAX_YEAR}") from None

    @staticmethod
    def _locate(span: _Span, instant_us: int) -> int:
        """Index of the first period closing after ``instant_us`` (``span.size`` when none is left)."""
        closes = span.closes
        i = span.day_index[(instant_us - span.low) // _DAY_US]
        while closes[i] <= instant_us:
            i += 1
        return i

    def _elapsed(self, span: _Span, instant_us: int) -> int:
        """Business microseconds from the start of ``span`` to ``instant_us`` (which ``span`` must contain)."""
        i = self._locate(span, instant_us)
        opening = span.opens[i]
        return span.cum[i] + (instant_us - opening if instant_us > opening else 0)

    def _span_covering(self, start_us: int, end_us: int) -> _Span:
        span = self._span
        if span is None or not (span.low <= start_us and end_us < span.high):
            self._span_for(start_us)
            span = self._span_for(end_us)  # spans only grow: this one still covers start_us
        return span

    # -- arithmetic -------------------------------------------------------------------------------------------

    def add_business_time(self, start: datetime, delta: timedelta) -> datetime:
        """Return the instant at which ``delta`` of business time has elapsed from ``start``.

        A start outside business hours begins at the next opening (so a zero ``delta`` returns that opening). A
        result falling exactly at a closing stays at that closing: Friday 09:00 + 8 h is Friday 17:00, not
        Monday 09:00. The result is exact to the microsecond and expressed in the calendar's zone.

        Raises:
            ValueError: ``start`` is naive, ``delta`` is negative, or the result leaves the supported years.
            TypeError: ``start`` is not a datetime or ``delta`` not a timedelta.
        """
        # The hot path (every deadline of every ticket): conversions and lookups are inlined, timedelta attributes
        # are cheaper than ``timedelta // timedelta``, and the span is unpacked once.
        span = self._span
        tz = self.tz
        try:
            offset = 0
            if start.tzinfo is tz and span is not None:
                # Already in the calendar's zone: same-tzinfo subtraction is wall-clock and needs no utcoffset()
                # call; on days without a DST change, the day's fixed offset gives the absolute instant.
                since_epoch = start - self._wall_epoch
                day_offset = span.day_offsets.get(since_epoch.days)
                if day_offset is None:
                    since_epoch = start - _EPOCH
                else:
                    offset = day_offset
            else:
                since_epoch = start - _EPOCH
            start_us = (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000 + since_epoch.microseconds - offset
            delta_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        except (TypeError, AttributeError):
            _to_us(start)  # raises the clear ValueError/TypeError
            _duration_us(delta)
            raise
        if delta_us <= 0:
            if delta_us < 0:
                raise ValueError(f"business time to add must not be negative, got {delta}")
            return self._next_opening_us(start_us)
        if span is None or not span.low <= start_us < span.high:
            span = self._span_for(start_us)
        while True:
            low, _, day_index, opens, closes, cum, total, hour_index, cum_end, size, _, _, _ = span
            i = day_index[(start_us - low) // 86_400_000_000]
            while closes[i] <= start_us:
                i += 1
            if i == size:  # no period left in the span after start
                span = self._extend_forward(span, delta_us)
                continue
            opening = opens[i]
            goal = cum[i] + delta_us + (start_us - opening if start_us > opening else 0)
            if goal > total:
                span = self._extend_forward(span, goal - total)
                continue
            j = hour_index[goal // 3_600_000_000]
            while cum_end[j] < goal:
                j += 1
            # The first instant at which ``goal`` is reached: a goal met exactly at a closing stays there.
            result_us = closes[j] - cum_end[j] + goal
            if 0 <= result_us < _FAST_RESULT_LIMIT_US:
                return datetime.fromtimestamp(result_us / 1_000_000, tz)
            return self._from_us(result_us)

    def _next_opening_us(self, instant_us: int) -> datetime:
        span = self._span_for(instant_us)
        while True:
            i = self._locate(span, instant_us)
            if i < span.size:
                opening = span.opens[i]
                return self._from_us(max(opening, instant_us))
            span = self._extend_forward(span, 1)

    def _instant_us(self, moment: datetime) -> int:
        """Exact epoch microseconds of an aware datetime (the shortcut of ``add_business_time`` for datetimes
        already in the calendar's zone); raises ``ValueError`` when it is naive."""
        span = self._span
        if span is not None and moment.tzinfo is self.tz:
            since_epoch = moment - self._wall_epoch
            offset = span.day_offsets.get(since_epoch.days)
            if offset is not None:
                return (since_epoch.days * 86_400 + since_epoch.seconds) * 1_000_000 + since_epoch.microseconds - offset
        return _to_us(moment)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Return the business time in ``[start, end)``.

        Raises:
            ValueError: either bound is naive, or ``end`` is before ``start`` (a negative duration is always a
                caller's mistake here: order the bounds).
        """
        start_us = self._instant_us(start)
        end_us = self._instant_us(end)
        if end_us < start_us:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        span = self._span_covering(start_us, end_us)
        return timedelta(0, 0, self._elapsed(span, end_us) - self._elapsed(span, start_us))

    def business_intervals(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Return the business periods inside ``[start, end)``, clipped to it, in the calendar's zone.

        Raises:
            ValueError: either bound is naive, or ``end`` is before ``start``.
        """
        start_us = _to_us(start)
        end_us = _to_us(end)
        if end_us < start_us:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        span = self._span_covering(start_us, end_us)
        result: list[tuple[datetime, datetime]] = []
        i = self._locate(span, start_us)
        while span.opens[i] < end_us:  # the sentinel stops the scan
            low = max(span.opens[i], start_us)
            high = min(span.closes[i], end_us)
            result.append((self._from_us(low), self._from_us(high)))
            i += 1
        return result

    def is_business_time(self, moment: datetime) -> bool:
        """Return whether ``moment`` lies in a business period (an opening instant does, a closing one does not).

        Raises:
            ValueError: ``moment`` is naive.
        """
        instant_us = _to_us(moment)
        span = self._span_for(instant_us)
        return span.opens[self._locate(span, instant_us)] <= instant_us

    def next_opening(self, moment: datetime) -> datetime:
        """Return the first business instant at or after ``moment``: ``moment`` itself during business hours.

        Raises:
            ValueError: ``moment`` is naive.
        """
        return self._next_opening_us(_to_us(moment))

    def next_closing(self, moment: datetime) -> datetime:
        """Return the end of the business period containing ``moment``, or of the next one when closed.

        Raises:
            ValueError: ``moment`` is naive.
        """
        instant_us = _to_us(moment)
        span = self._span_for(instant_us)
        while True:
            i = self._locate(span, instant_us)
            if i < span.size:
                return self._from_us(span.closes[i])
            span = self._extend_forward(span, 1)
