"""Monthly SLA compliance per commune (the 12-month trend of the dashboard, the monthly table of the annual
report), in ONE query grouped by commune × Paris month.

The month buckets are computed in Python from the Paris month boundaries (UTC instants) and given to the
database as a CASE over `sla_deadline_at`, which PostgreSQL and SQLite evaluate alike and which keeps the range
condition the covering index `ix_tickets_compliance` answers. Met and breached are the same expressions as
`compliance_by_commune`, so a month's figures equal the pure reference `sla.compliance` over that month.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from sau.extensions import db
from sau.reports.compliance import (
    CommuneCompliance,
    _communes,
    breached_expression,
    committed_conditions,
    met_expression,
    sort_key,
)
from sau.reports.periods import PARIS, _add_months, _midnight
from sau.tickets.models import Ticket
from sla import ComplianceFigures
from sla.compliance import figures_from_counts

MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre")
MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


@dataclass(frozen=True)
class Month:
    first: date
    start: datetime  # Paris midnight of the 1st (aware)
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.first:%Y-%m}"

    @property
    def label(self) -> str:
        return f"{MONTHS_FR[self.first.month - 1]} {self.first.year}"

    @property
    def short(self) -> str:
        return f"{MONTHS_SHORT[self.first.month - 1]} {self.first:%y}"


def months_ending(end: datetime, count: int = 12) -> list[Month]:
    """The `count` Paris months up to the one containing the instant just before `end`."""
    last_day = (end.astimezone(PARIS) - timedelta(microseconds=1)).date()
    last = date(last_day.year, last_day.month, 1)
    firsts = [_add_months(last, -i) for i in range(count - 1, -1, -1)]
    return [Month(f, _midnight(f), _midnight(_add_months(f, 1))) for f in firsts]


def months_of_year(year: int) -> list[Month]:
    firsts = [date(year, m, 1) for m in range(1, 13)]
    return [Month(f, _midnight(f), _midnight(_add_months(f, 1))) for f in firsts]


@dataclass(frozen=True)
class CommuneTrend:
    org_id: int
    code: str
    name: str
    months: list[ComplianceFigures]

    @property
    def percentages(self) -> list[float | None]:
        return [None if f.compliance is None else float(f.compliance) * 100 for f in self.months]


@dataclass(frozen=True)
class Trend:
    months: list[Month]
    communes: list[CommuneTrend]  # alphabetical
    total: list[ComplianceFigures]  # all the communes shown, month by month

    def by_code(self) -> dict[str, CommuneTrend]:
        return {c.code: c for c in self.communes}

    @property
    def total_percentages(self) -> list[float | None]:
        return [None if f.compliance is None else float(f.compliance) * 100 for f in self.total]


def monthly_compliance(
    months: list[Month], now: datetime, *, service: str | None = None, priority: str | None = None,
    kind: str | None = None, communes: set[int] | None = None, extra: list[sa.ColumnElement[bool]] | None = None,
) -> Trend:
    """Figures per commune and month over consecutive `months`, as of `now` (one query)."""
    bucket = sa.case(
        *[(Ticket.sla_deadline_at < m.end, i) for i, m in enumerate(months)], else_=len(months),
    ).label("bucket")
    stmt = (
        sa.select(
            Ticket.commune_id, bucket, sa.func.count().label("committed"),
            sa.func.sum(met_expression()).label("met"), sa.func.sum(breached_expression(now)).label("breached"),
        )
        .where(*committed_conditions(months[0].start, months[-1].end, service=service, priority=priority,
                                     kind=kind, communes=communes), *(extra or []))
        .group_by(Ticket.commune_id, sa.literal_column("bucket"))
    )
    counts: dict[tuple[int, int], tuple[int, int, int]] = {}
    for row in db.session.execute(stmt):
        counts[(row.commune_id, int(row.bucket))] = (int(row.met), int(row.breached), int(row.committed))
    result = []
    totals = [[0, 0, 0] for _ in months]
    for org_id, code, name in _communes(communes):
        figures = []
        for i in range(len(months)):
            m, b, c = counts.get((org_id, i), (0, 0, 0))
            figures.append(figures_from_counts(m, b, c - m - b))
            totals[i][0] += m
            totals[i][1] += b
            totals[i][2] += c
        result.append(CommuneTrend(org_id, code, name, figures))
    return Trend(months, result, [figures_from_counts(m, b, c - m - b) for m, b, c in totals])


def describe(values: list[float | None], months: list[Month]) -> str:
    """A French sentence describing a series of monthly percentages (for a chart's <desc>)."""
    points = [(m, v) for m, v in zip(months, values, strict=True) if v is not None]
    if not points:
        return f"Aucun ticket engagé de {months[0].label} à {months[-1].label}."
    below = sum(1 for _, v in points if v < 95)
    first, last = points[0], points[-1]
    best = max(points, key=lambda p: p[1])
    worst = min(points, key=lambda p: p[1])

    def pct(v: float) -> str:
        return f"{v:.1f}".replace(".", ",") + " %"

    return (f"{len(points)} mois avec des tickets engagés sur {len(months)} ; de {pct(first[1])} ({first[0].label}) "
            f"à {pct(last[1])} ({last[0].label}) ; au plus bas {pct(worst[1])} ({worst[0].label}), au plus haut "
            f"{pct(best[1])} ({best[0].label}) ; {below} mois sous l'objectif de 95 %.")


def _bucket(column: sa.ColumnElement[datetime], boundaries: list[datetime], lo: int, hi: int) -> sa.ColumnElement[int]:
    """Index i of the interval [boundaries[i], boundaries[i + 1]) holding `column`, as a balanced tree of CASEs
    (log2(n) comparisons per row instead of n / 2)."""
    if hi - lo == 1:
        return sa.literal(lo)
    mid = (lo + hi) // 2
    return sa.case((column < boundaries[mid], _bucket(column, boundaries, lo, mid)),
                   else_=_bucket(column, boundaries, mid, hi))


def period_and_trend(
    start: datetime, end: datetime, months: list[Month], now: datetime, *, service: str | None = None,
    priority: str | None = None, kind: str | None = None, communes: set[int] | None = None,
) -> tuple[list[CommuneCompliance], Trend]:
    """The dashboard's two views in ONE scan: the figures of [start, end) per commune (as `compliance_by_commune`,
    worst first) and the monthly trend (as `monthly_compliance`). Rows are counted per elementary interval between
    the period's and the months' boundaries; since a ticket falls in exactly one interval, the period and each
    month are exact sums of intervals."""
    boundaries = sorted({start, end, *(m.start for m in months), months[-1].end})
    stmt = (
        sa.select(
            Ticket.commune_id, _bucket(Ticket.sla_deadline_at, boundaries, 0, len(boundaries) - 1).label("bucket"),
            sa.func.count().label("committed"), sa.func.sum(met_expression()).label("met"),
            sa.func.sum(breached_expression(now)).label("breached"),
        )
        .where(*committed_conditions(boundaries[0], boundaries[-1], service=service, priority=priority, kind=kind,
                                     communes=communes))
        .group_by(Ticket.commune_id, sa.literal_column("bucket"))
    )
    counts: dict[int, dict[int, tuple[int, int, int]]] = {}
    for row in db.session.execute(stmt):
        counts.setdefault(row.commune_id, {})[int(row.bucket)] = (int(row.met), int(row.breached), int(row.committed))

    def within(a: datetime, b: datetime) -> list[int]:
        return [i for i in range(len(boundaries) - 1) if boundaries[i] >= a and boundaries[i + 1] <= b]

    period_buckets = within(start, end)
    month_buckets = [within(m.start, m.end) for m in months]

    def figures(by_bucket: dict[int, tuple[int, int, int]], buckets: list[int]) -> ComplianceFigures:
        m = sum(by_bucket.get(i, (0, 0, 0))[0] for i in buckets)
        b = sum(by_bucket.get(i, (0, 0, 0))[1] for i in buckets)
        c = sum(by_bucket.get(i, (0, 0, 0))[2] for i in buckets)
        return figures_from_counts(m, b, c - m - b)

    period: list[CommuneCompliance] = []
    trend: list[CommuneTrend] = []
    totals: dict[int, list[int]] = {}
    for org_id, code, name in _communes(communes):
        by_bucket = counts.get(org_id, {})
        for i, v in by_bucket.items():
            t = totals.setdefault(i, [0, 0, 0])
            t[0] += v[0]
            t[1] += v[1]
            t[2] += v[2]
        period.append(CommuneCompliance(code, name, figures(by_bucket, period_buckets)))
        trend.append(CommuneTrend(org_id, code, name, [figures(by_bucket, mb) for mb in month_buckets]))
    period.sort(key=sort_key)
    total = {i: (v[0], v[1], v[2]) for i, v in totals.items()}
    return period, Trend(months, trend, [figures(total, mb) for mb in month_buckets])
