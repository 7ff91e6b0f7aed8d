"""Report periods: a month (`period=2026-03`), a quarter (`2026-T1`), a year (`2026`) or `start`/`end` dates,
in Paris local time, as half-open UTC instants [start, end)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class PeriodError(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields.values()))
        self.fields = fields


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=PARIS)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def parse_period(args: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """Raises PeriodError naming the bad parameter."""
    period = (args.get("period") or "").strip()
    if args.get("start") or args.get("end"):
        try:
            start = date.fromisoformat(args.get("start", ""))
        except ValueError:
            raise PeriodError({"start": "Date de début attendue au format AAAA-MM-JJ."}) from None
        try:
            end = date.fromisoformat(args.get("end", ""))
        except ValueError:
            raise PeriodError({"end": "Date de fin attendue au format AAAA-MM-JJ (incluse)."}) from None
        if end < start:
            raise PeriodError({"end": "La date de fin précède la date de début."})
        return _midnight(start), _midnight(date.fromordinal(end.toordinal() + 1))
    if not period:
        today = now.astimezone(PARIS).date()
        first = date(today.year, today.month, 1)
        return _midnight(first), _midnight(_add_months(first, 1))
    if m := re.fullmatch(r"(\d{4})-(\d{2})", period):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodError({"period": "Mois invalide."})
        first = date(year, month, 1)
        return _midnight(first), _midnight(_add_months(first, 1))
    if m := re.fullmatch(r"(\d{4})-[TQ]([1-4])", period):
        first = date(int(m[1]), 3 * int(m[2]) - 2, 1)
        return _midnight(first), _midnight(_add_months(first, 3))
    if re.fullmatch(r"\d{4}", period):
        first = date(int(period), 1, 1)
        return _midnight(first), _midnight(date(first.year + 1, 1, 1))
    raise PeriodError({"period": "Période attendue : AAAA-MM, AAAA-T1 à AAAA-T4, AAAA, ou start et end."})


def period_or_current_month(args: Mapping[str, str], now: datetime,
                            errors: dict[str, str]) -> tuple[datetime, datetime]:
    """The period of `args`; on a bad one, its French errors go into `errors` and the current month is used."""
    try:
        return parse_period(args, now)
    except PeriodError as exc:
        errors.update(exc.fields)
        return parse_period({}, now)
