"""Availability report (issue 7, point 3): per service and local month, the availability against the
99.9 % target of the Toodego annex § 6.1.a ("Disponibilité de 99,9 %", scheduled interruptions excluded),
with the outages behind each figure.

The arithmetic is the SLA engine's (`sla.availability.monthly_availability`, the one the public status page
uses); this module only reads the outages and maintenance windows of the months asked for and lists, under
each figure, the outages that overlap the month. Availability is the Métropole's, per service: every viewer
with report access sees the same figures.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa

from sau.extensions import db
from sau.orgs.models import Service
from sau.status.models import MAINTENANCE_CANCELLED, OUTAGE_KINDS, OUTAGE_PARTIAL, Maintenance, Outage, outage_tickets
from sla.availability import (
    AVAILABILITY_TARGET,
    PARIS,
    Availability,
    OutageSpan,
    month_bounds,
    monthly_availability,
)

MONTH_NAMES = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
               "novembre", "décembre")
LAST_MONTHS = 12

Month = tuple[int, int]


class FilterError(ValueError):
    """Bad report filters; `fields` maps the parameter to a French message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields.values()))
        self.fields = fields


def month_label(month: Month) -> str:
    return f"{MONTH_NAMES[month[1] - 1]} {month[0]}"


def month_code(month: Month) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def _shift(month: Month, delta: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + delta
    return index // 12, index % 12 + 1


def last_months(now: datetime, count: int = LAST_MONTHS) -> list[Month]:
    """The `count` local months ending with the current one, oldest first."""
    local = now.astimezone(PARIS)
    current = (local.year, local.month)
    return [_shift(current, -i) for i in range(count - 1, -1, -1)]


def year_months(year: int, now: datetime) -> list[Month]:
    """The months of `year` up to the current month (a future month has no availability yet)."""
    local = now.astimezone(PARIS)
    return [(year, m) for m in range(1, 13) if (year, m) <= (local.year, local.month)]


def parse_months(args: Mapping[str, str], now: datetime) -> list[Month]:
    """`year=AAAA` (its months up to now), or nothing: the 12 last months. Raises FilterError."""
    raw = (args.get("year") or "").strip()
    if not raw:
        return last_months(now)
    current_year = now.astimezone(PARIS).year
    if not raw.isdigit() or len(raw) != 4:
        raise FilterError({"year": "Année attendue au format AAAA (vide : les 12 derniers mois)."})
    year = int(raw)
    if year > current_year:
        raise FilterError({"year": "Cette année n'a pas encore commencé."})
    if year < 2000:
        raise FilterError({"year": "Année antérieure au service."})
    return year_months(year, now)


@dataclass(frozen=True)
class OutageLine:
    """An outage that overlaps a month: its real bounds, and the part of it inside the month."""

    id: int
    started_at: datetime
    ended_at: datetime | None  # None: ongoing
    kind: str
    is_planned: bool
    duration: timedelta  # whole outage, up to now when ongoing
    in_month: timedelta  # the part inside the month (before weighting and maintenance exclusion)
    tickets: int  # linked tickets

    @property
    def kind_label(self) -> str:
        return OUTAGE_KINDS.get(self.kind, self.kind)

    @property
    def is_partial(self) -> bool:
        return self.kind == OUTAGE_PARTIAL


@dataclass(frozen=True)
class MonthFigure:
    month: Month
    figure: Availability
    outages: list[OutageLine]
    is_current: bool

    @property
    def code(self) -> str:
        return month_code(self.month)

    @property
    def label(self) -> str:
        return month_label(self.month)


@dataclass(frozen=True)
class ServiceAvailability:
    code: str
    name: str
    months: list[MonthFigure]

    @property
    def non_conformes(self) -> int:
        return sum(1 for m in self.months if not m.figure.met)


def _spans(outages: list[Outage]) -> list[OutageSpan]:
    return [OutageSpan(o.started_at, o.ended_at, partial=o.kind == OUTAGE_PARTIAL, planned=o.is_planned)
            for o in outages]


def availability_report(months: list[Month], now: datetime, *, partial_weight: float,
                        service: str | None = None, target: float = AVAILABILITY_TARGET) -> list[ServiceAvailability]:
    """Availability of every service (or of `service`) for each of `months`, with the outages of each month."""
    services = list(db.session.scalars(
        sa.select(Service).where(Service.code == service if service else sa.true()).order_by(Service.name)))
    if not months or not services:
        return [ServiceAvailability(s.code, s.name, []) for s in services]
    since = month_bounds(*months[0])[0]
    until = month_bounds(*months[-1])[1]
    ids = [s.id for s in services]
    outages = list(db.session.scalars(sa.select(Outage).where(
        Outage.service_id.in_(ids), Outage.started_at < until, Outage.started_at <= now,
        sa.or_(Outage.ended_at.is_(None), Outage.ended_at > since)).order_by(Outage.started_at, Outage.id)))
    windows = db.session.execute(sa.select(Maintenance.service_id, Maintenance.starts_at, Maintenance.ends_at).where(
        Maintenance.service_id.in_(ids), Maintenance.status != MAINTENANCE_CANCELLED,
        Maintenance.starts_at < until, Maintenance.ends_at > since)).all()
    counts: dict[int, int] = {}
    if outages:
        counts = dict(db.session.execute(
            sa.select(outage_tickets.c.outage_id, sa.func.count()).where(
                outage_tickets.c.outage_id.in_([o.id for o in outages])).group_by(outage_tickets.c.outage_id)).all())
    local_now = now.astimezone(PARIS)
    current = (local_now.year, local_now.month)
    result = []
    for s in services:
        own = [o for o in outages if o.service_id == s.id]
        spans = _spans(own)
        own_windows = [(w.starts_at, w.ends_at) for w in windows if w.service_id == s.id]
        figures = []
        for month in months:
            figure = monthly_availability(spans, own_windows, month[0], month[1], now, partial_weight=partial_weight,
                                          target=target)
            lines = []
            for o in own:
                end = o.ended_at or now
                if o.started_at >= figure.end or end <= figure.start:
                    continue
                inside = min(end, figure.end, now) - max(o.started_at, figure.start)
                lines.append(OutageLine(o.id, o.started_at, o.ended_at, o.kind, o.is_planned, end - o.started_at,
                                        max(inside, timedelta()), counts.get(o.id, 0)))
            figures.append(MonthFigure(month, figure, lines, month == current))
        result.append(ServiceAvailability(s.code, s.name, figures))
    return result


def minutes(value: timedelta) -> float:
    return round(value.total_seconds() / 60, 2)


def percent(figure: Availability) -> Decimal:
    """The availability in %, truncated (never rounded up) to 3 decimals: 99.8996 % reads 99.899, below target."""
    return Decimal(repr(figure.percent)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)


MONTH_COLUMNS = (
    ("mois", "Mois"), ("service_code", "Code du service"), ("service", "Service"),
    ("disponibilite_pourcent", "Disponibilité (%)"), ("objectif_pourcent", "Objectif (%)"),
    ("indisponibilite_minutes", "Indisponibilité comptée (min)"), ("admise_minutes", "Indisponibilité admise (min)"),
    ("marge_minutes", "Marge restante (min)"), ("conforme", "Conforme"), ("indisponibilites", "Indisponibilités"),
    ("mois_en_cours", "Mois en cours"),
)
OUTAGE_COLUMNS = (
    ("mois", "Mois"), ("service_code", "Code du service"), ("service", "Service"), ("debut", "Début"),
    ("fin", "Fin"), ("type", "Type"), ("programmee", "Programmée"), ("duree_minutes", "Durée totale (min)"),
    ("duree_dans_le_mois_minutes", "Durée dans le mois (min)"), ("tickets_lies", "Tickets liés"),
)


def month_rows(report: list[ServiceAvailability]) -> list[list[object]]:
    rows: list[list[object]] = []
    for s in report:
        for m in s.months:
            f = m.figure
            rows.append([m.code, s.code, s.name, percent(f), Decimal(str(round(f.target * 100, 3))), minutes(f.downtime),
                         minutes(f.allowed), minutes(f.budget_left), f.met, len(m.outages), m.is_current])
    return rows


def outage_rows(report: list[ServiceAvailability]) -> list[list[object]]:
    rows: list[list[object]] = []
    for s in report:
        for m in s.months:
            for o in m.outages:
                rows.append([m.code, s.code, s.name, o.started_at, o.ended_at, o.kind_label, o.is_planned,
                             minutes(o.duration), minutes(o.in_month), o.tickets])
    return rows
