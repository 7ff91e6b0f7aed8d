"""Availability of a service over a period (Toodego annex § 6.1.a: "Disponibilité de 99,9 %", scheduled
interruptions such as planned maintenance excluded) — pure Python, no I/O.

The rule, per service and period (a local month in Europe/Paris, or a local day):

* availability = 1 − unplanned downtime ÷ period, where the period is the real elapsed time of the local
  month or day (a March month with the DST change lasts 31 days − 1 h, an October month 31 days + 1 h);
* overlapping outages are merged (an instant is never counted twice);
* planned outages and maintenance windows are excluded: no instant inside a maintenance window counts as
  downtime, even where an unplanned outage overlaps it;
* a partial outage (part of the service unavailable) counts with the weight `partial_weight` (0.5 by
  default: one hour of partial outage = 30 minutes of downtime); where a total outage overlaps a partial
  one, the instant counts once, as total;
* an ongoing outage (no end) counts up to `now`; nothing after `now` counts;
* the target is 99.9 %: the allowed downtime is 0.1 % of the period (43 min 49 s for a 30.4-day month) and
  the budget left is allowed − used (negative once the target is missed). The period is always the whole
  month, also for the current month: the budget is the month's.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
AVAILABILITY_TARGET = 0.999
DEFAULT_PARTIAL_WEIGHT = 0.5

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class OutageSpan:
    """An outage as the engine sees it: `end` None means ongoing."""

    start: datetime
    end: datetime | None
    partial: bool = False
    planned: bool = False


@dataclass(frozen=True)
class Availability:
    start: datetime  # UTC
    end: datetime  # UTC, exclusive
    period: timedelta
    downtime: timedelta  # unplanned, weighted
    target: float

    @property
    def ratio(self) -> float:
        seconds = self.period.total_seconds()
        return 1.0 if seconds <= 0 else max(0.0, 1.0 - self.downtime.total_seconds() / seconds)

    @property
    def percent(self) -> float:
        return self.ratio * 100

    @property
    def allowed(self) -> timedelta:
        return timedelta(seconds=round(self.period.total_seconds() * (1 - self.target)))

    @property
    def budget_left(self) -> timedelta:
        return self.allowed - self.downtime

    @property
    def met(self) -> bool:
        return self.downtime <= self.allowed


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("aware datetimes expected")
    return value.astimezone(UTC)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint union of the non-empty intervals."""
    merged: list[Interval] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """`intervals` minus `holes` (both merged)."""
    result: list[Interval] = []
    for start, end in intervals:
        pieces = [(start, end)]
        for h_start, h_end in holes:
            next_pieces = []
            for p_start, p_end in pieces:
                if h_end <= p_start or h_start >= p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if h_start > p_start:
                    next_pieces.append((p_start, h_start))
                if h_end < p_end:
                    next_pieces.append((h_end, p_end))
            pieces = next_pieces
        result.extend(pieces)
    return result


def total(intervals: Iterable[Interval]) -> timedelta:
    return sum((e - s for s, e in intervals), timedelta())


def month_bounds(year: int, month: int, tz: ZoneInfo = PARIS) -> Interval:
    """Start and end (exclusive) in UTC of a local month."""
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo = PARIS) -> Interval:
    """Start and end (exclusive) in UTC of a local day (23 or 25 hours on DST change days)."""
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def downtime(outages: Iterable[OutageSpan], maintenance: Iterable[Interval], start: datetime, end: datetime,
             now: datetime, *, partial_weight: float = DEFAULT_PARTIAL_WEIGHT) -> timedelta:
    """Weighted unplanned downtime within [start, end), counted up to `now`."""
    if not 0 <= partial_weight <= 1:
        raise ValueError("partial_weight must be between 0 and 1")
    start, end, now = _utc(start), _utc(end), _utc(now)
    stop = min(end, now)
    if stop <= start:
        return timedelta()

    def clip(s: datetime, e: datetime | None) -> Interval:
        e_utc = stop if e is None else min(_utc(e), stop)
        return max(_utc(s), start), e_utc

    excluded = merge(clip(s, e) for s, e in maintenance)
    totals: list[Interval] = []
    partials: list[Interval] = []
    for outage in outages:
        if outage.planned:
            excluded_extra = clip(outage.start, outage.end)
            excluded = merge([*excluded, excluded_extra])
            continue
        (partials if outage.partial else totals).append(clip(outage.start, outage.end))
    total_down = subtract(merge(totals), excluded)
    partial_down = subtract(subtract(merge(partials), excluded), total_down)
    return total(total_down) + total(partial_down) * partial_weight


def availability(outages: Iterable[OutageSpan], maintenance: Iterable[Interval], start: datetime, end: datetime,
                 now: datetime, *, partial_weight: float = DEFAULT_PARTIAL_WEIGHT,
                 target: float = AVAILABILITY_TARGET) -> Availability:
    """Availability over [start, end) (the whole interval is the period)."""
    used = downtime(outages, maintenance, start, end, now, partial_weight=partial_weight)
    return Availability(start=_utc(start), end=_utc(end), period=_utc(end) - _utc(start), downtime=used,
                        target=target)


def monthly_availability(outages: Iterable[OutageSpan], maintenance: Iterable[Interval], year: int, month: int,
                         now: datetime, *, partial_weight: float = DEFAULT_PARTIAL_WEIGHT,
                         target: float = AVAILABILITY_TARGET, tz: ZoneInfo = PARIS) -> Availability:
    start, end = month_bounds(year, month, tz)
    return availability(outages, maintenance, start, end, now, partial_weight=partial_weight, target=target)


def daily_availability(outages: Sequence[OutageSpan], maintenance: Sequence[Interval], first: date, last: date,
                       now: datetime, *, partial_weight: float = DEFAULT_PARTIAL_WEIGHT,
                       target: float = AVAILABILITY_TARGET, tz: ZoneInfo = PARIS) -> list[tuple[date, Availability]]:
    """One figure per local day from `first` to `last` included."""
    days = []
    day = first
    while day <= last:
        start, end = day_bounds(day, tz)
        days.append((day, availability(outages, maintenance, start, end, now, partial_weight=partial_weight,
                                       target=target)))
        day += timedelta(days=1)
    return days
