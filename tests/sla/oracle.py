"""Brute-force business-time oracle, written independently of ``sla.calendar``.

It walks minute by minute through business hours, asking for every minute "is this minute business time?" in
the calendar's zone, with public holidays taken straight from the ``holidays`` package. The only shortcuts are
whole closed days and the night (jump to the next local midnight, or to the day's first opening): within
opening hours it really counts minute by minute. Inputs must be minute-aligned instants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

MINUTE = timedelta(minutes=1)
PARIS = ZoneInfo("Europe/Paris")
NINE_TO_FIVE: tuple[tuple[time, time], ...] = ((time(9), time(17)),)


@dataclass
class OracleCalendar:
    tz: ZoneInfo = PARIS
    weekly_hours: Mapping[int, Sequence[tuple[time, time]]] = field(
        default_factory=lambda: dict.fromkeys(range(5), NINE_TO_FIVE)
    )
    country: str | None = "FR"
    extra_closures: Iterable[date] = ()
    exceptional_hours: Mapping[date, Sequence[tuple[time, time]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._public_holidays = holidays.country_holidays(self.country) if self.country else {}
        self._closed = set(self.extra_closures)
        self._hours_cache: dict[date, Sequence[tuple[time, time]]] = {}

    def hours_of(self, day: date) -> Sequence[tuple[time, time]]:
        if day not in self._hours_cache:
            self._hours_cache[day] = self._hours_of(day)
        return self._hours_cache[day]

    def _hours_of(self, day: date) -> Sequence[tuple[time, time]]:
        if day in self.exceptional_hours:
            return self.exceptional_hours[day]
        if day in self._closed or day in self._public_holidays:
            return ()
        return self.weekly_hours.get(day.weekday(), ())

    def is_business_minute(self, instant: datetime) -> bool:
        """Whether the minute starting at ``instant`` is business time (opening hours are [open, close))."""
        local = instant.astimezone(self.tz)
        wall = local.time()
        for opening, closing in self.hours_of(local.date()):
            if opening <= wall and (closing == time(0) or wall < closing):
                return True
        return False

    def _minute_hours(self, day: date) -> list[tuple[int, int]]:
        """Opening intervals of ``day`` as minutes of the local day (a closing at midnight is minute 1440)."""
        return [
            (opening.hour * 60 + opening.minute, 1440 if closing == time(0) else closing.hour * 60 + closing.minute)
            for opening, closing in self.hours_of(day)
        ]

    def business_minutes(self, start: datetime) -> Iterator[datetime]:
        """Yield, in order, the (UTC) start of every business minute at or after ``start``."""
        instant = start.astimezone(UTC)
        assert instant.second == 0 and instant.microsecond == 0, "the oracle works on whole minutes"
        tz = self.tz
        while True:
            local = instant.astimezone(tz)
            day = local.date()
            hours = self._minute_hours(day)
            wall = local.hour * 60 + local.minute
            last_closing = max((closing for _, closing in hours), default=0)
            if wall >= last_closing:
                # Closed day, or after the last closing: go to the next local midnight.
                instant = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
                continue
            first_opening = min(opening for opening, _ in hours)
            if wall < first_opening:
                opening_time = time(first_opening // 60, first_opening % 60)
                instant = datetime.combine(day, opening_time, tzinfo=tz).astimezone(UTC)
                continue
            # Minute by minute through the rest of this local day.
            while local.day == day.day:
                wall = local.hour * 60 + local.minute
                if wall >= last_closing:
                    break
                for opening, closing in hours:
                    if opening <= wall < closing:
                        yield instant
                        break
                instant += MINUTE
                local = instant.astimezone(tz)

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """``start`` + ``delta`` of business time: the end of the minute that completes ``delta``; a zero delta
        gives the first business minute at or after ``start``."""
        minutes = delta // MINUTE
        assert delta == minutes * MINUTE, "the oracle works on whole minutes"
        walk = self.business_minutes(start)
        if minutes == 0:
            return next(walk).astimezone(self.tz)
        for _ in range(minutes - 1):
            next(walk)
        return (next(walk) + MINUTE).astimezone(self.tz)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business minutes in ``[start, end)``."""
        end = end.astimezone(UTC)
        count = 0
        for minute in self.business_minutes(start):
            if minute >= end:
                break
            count += 1
        return count * MINUTE
