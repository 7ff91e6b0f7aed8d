"""Workload and speed (issue 7, point 4): open tickets by age and state, first-response and resolution times in
business hours per organisation, service and priority (median and 90th percentile), tickets per commune and
service per month.

Definitions (shown on the page and in the README):

* **Age** of an open ticket (nouveau, en cours, en attente) = calendar time since its creation, at the time of
  the report, in buckets < 1 day, 1–3 days, 3–7 days, 7–30 days, ≥ 30 days (calendar days: what a requester
  lives; a bucket's lower bound is included). The age table is a snapshot of now: the period does not apply.
* **First-response time** = business time (the support calendar of `sau.tickets.sla.calendar()`: Monday–Friday
  09:00–17:00 Europe/Paris, public holidays and the admins' closures excluded) between the creation and the
  first public answer, for the tickets whose first answer falls in the period.
* **Resolution time** = business time between the creation and the resolution (time spent waiting for the
  requester included), for the tickets resolved in the period.
* **Percentiles** use linear interpolation between closest ranks (Hyndman & Fan type 7, as numpy's default,
  Excel's PERCENTILE.INC and `statistics.quantiles(method="inclusive")`): for sorted values x₀…xₙ₋₁ and
  p ∈ [0, 1], h = (n − 1)·p, Q = x⌊h⌋ + (h − ⌊h⌋)·(x⌊h⌋₊₁ − x⌊h⌋). The median is Q(0.5).
* **Volumes**: tickets created in the period, per commune and service and local month.

Business durations are stored on each ticket when it is answered and resolved (`sau.tickets.sla.refresh`):
on PostgreSQL one aggregate computes the percentiles of those numbers (`percentile_cont`, grouping sets);
elsewhere the numbers are streamed (`yield_per`), one float per ticket and grouping. Rows answered before the
columns existed (not yet filled by `sau sla-recompute --fix`) go through the calendar in Python.
A commune's manager sees only the tickets of their commune.
"""
from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sau.extensions import db, on_postgresql
from sau.orgs.models import Organisation, Service
from sau.reports.compliance import _sort_name
from sau.reports.periods import PARIS
from sau.tickets.models import OPEN_STATUSES, PRIORITIES, STATUSES, Ticket
from sau.tickets.sla import business_seconds, calendar
from sla import BusinessCalendar

MAX_MONTHS = 36
STREAM_BATCH = 5000

# (code, label, lower bound in days included, upper bound excluded)
AGE_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("moins_1j", "moins d'1 jour", 0, 1),
    ("1_3j", "1 à 3 jours", 1, 3),
    ("3_7j", "3 à 7 jours", 3, 7),
    ("7_30j", "7 à 30 jours", 7, 30),
    ("30j_plus", "30 jours et plus", 30, None),
)
NO_PRIORITY = ""
PRIORITY_LABELS = {**PRIORITIES, NO_PRIORITY: "Non qualifiée"}
NO_COMMUNE = 0


# --- percentiles ---------------------------------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (type 7) of already sorted values; None when empty."""
    if not 0 <= p <= 1:
        raise ValueError("p must be between 0 and 1")
    n = len(sorted_values)
    if n == 0:
        return None
    h = (n - 1) * p
    low = math.floor(h)
    high = min(low + 1, n - 1)
    return sorted_values[low] + (h - low) * (sorted_values[high] - sorted_values[low])


@dataclass(frozen=True)
class DurationStats:
    count: int
    median: timedelta | None
    p90: timedelta | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> DurationStats:
        values = sorted(seconds)
        med, p90 = percentile(values, 0.5), percentile(values, 0.9)
        return cls(len(values), None if med is None else timedelta(seconds=med),
                   None if p90 is None else timedelta(seconds=p90))


def hours(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 3600, 2)


# --- scope ---------------------------------------------------------------------------------------------------

def _scoped(stmt: Any, communes: set[int] | None, service_id: int | None) -> Any:
    if communes is not None:
        stmt = stmt.where(Ticket.commune_id.in_(communes))
    if service_id is not None:
        stmt = stmt.where(Ticket.service_id == service_id)
    return stmt


# --- open tickets by age and state ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AgeTable:
    statuses: list[tuple[str, str]]  # (code, label)
    counts: dict[tuple[str, str], int]  # (status, bucket) -> count

    def count(self, status: str, bucket: str) -> int:
        return self.counts.get((status, bucket), 0)

    def bucket_total(self, bucket: str) -> int:
        return sum(self.count(s, bucket) for s, _ in self.statuses)

    def status_total(self, status: str) -> int:
        return sum(self.count(status, b[0]) for b in AGE_BUCKETS)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def age_bucket(age: timedelta) -> str:
    """The bucket of an age (pure; the SQL below applies the same bounds)."""
    for code, _, low, high in AGE_BUCKETS:
        if age >= timedelta(days=low) and (high is None or age < timedelta(days=high)):
            return code
    return AGE_BUCKETS[0][0]  # a ticket created "after now" (clock skew) is brand new


def open_by_age(now: datetime, *, communes: set[int] | None = None, service_id: int | None = None) -> AgeTable:
    whens = [(Ticket.created_at > now - timedelta(days=high), index)
             for index, (_, _, _, high) in enumerate(AGE_BUCKETS) if high is not None]
    bucket = sa.case(*whens, else_=len(AGE_BUCKETS) - 1)
    inner = _scoped(sa.select(Ticket.status.label("status"), bucket.label("bucket"))
                    .where(Ticket.status.in_(OPEN_STATUSES)), communes, service_id).subquery()
    rows = db.session.execute(sa.select(inner.c.status, inner.c.bucket, sa.func.count())
                              .group_by(inner.c.status, inner.c.bucket)).all()
    counts = {(status, AGE_BUCKETS[int(b)][0]): int(n) for status, b, n in rows}
    return AgeTable([(s, STATUSES[s]) for s in OPEN_STATUSES], counts)


# --- speed ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpeedRow:
    key: str  # organisation code, service code or priority
    label: str
    first_response: DurationStats
    resolution: DurationStats


@dataclass(frozen=True)
class SpeedReport:
    by_organisation: list[SpeedRow]
    by_service: list[SpeedRow]
    by_priority: list[SpeedRow]
    overall: SpeedRow


Stats = tuple[DurationStats, DurationStats]  # (first response, resolution)
GROUPS = ("organisation", "service", "priority", "all")


def _speed_scope(start: datetime, end: datetime) -> tuple[Any, Any]:
    answered = sa.and_(Ticket.first_response_at >= start, Ticket.first_response_at < end)
    resolved = sa.and_(Ticket.resolved_at >= start, Ticket.resolved_at < end)
    return answered, resolved


def _speed_in_sql(start: datetime, end: datetime, communes: set[int] | None,
                  service_id: int | None) -> dict[str, dict[Any, Stats]] | None:
    """PostgreSQL: medians and 90th percentiles of the stored durations per grouping in one aggregate
    (`percentile_cont` is the same type-7 interpolation as `percentile`). None when some ticket of the period
    has no stored duration yet (answered before the column existed): the caller replays the calendar then."""
    answered, resolved = _speed_scope(start, end)
    fr, res = Ticket.first_response_business_seconds, Ticket.resolution_business_seconds
    prio = sa.func.coalesce(Ticket.priority, NO_PRIORITY)

    def stats(col: Any, cond: Any) -> list[Any]:
        return [sa.func.count().filter(cond),
                sa.func.percentile_cont(0.5).within_group(col).filter(cond),
                sa.func.percentile_cont(0.9).within_group(col).filter(cond)]

    stmt = _scoped(sa.select(
        Ticket.organisation_id, Ticket.service_id, prio, sa.func.grouping(Ticket.organisation_id),
        sa.func.grouping(Ticket.service_id), sa.func.grouping(prio),
        sa.func.count().filter(sa.or_(sa.and_(answered, fr.is_(None)), sa.and_(resolved, res.is_(None)))),
        *stats(fr, answered), *stats(res, resolved),
    ).where(sa.or_(answered, resolved)), communes, service_id).group_by(sa.func.grouping_sets(
        sa.tuple_(Ticket.organisation_id), sa.tuple_(Ticket.service_id), sa.tuple_(prio), sa.tuple_()))
    groups: dict[str, dict[Any, Stats]] = {g: {} for g in GROUPS}

    def duration(seconds: float | None) -> timedelta | None:
        return None if seconds is None else timedelta(seconds=float(seconds))

    for org, svc, pr, g_org, g_svc, g_prio, legacy, n1, m1, p1, n2, m2, p2 in db.session.execute(stmt):
        if legacy:
            return None
        pair = (DurationStats(int(n1), duration(m1), duration(p1)), DurationStats(int(n2), duration(m2), duration(p2)))
        if not g_org:
            groups["organisation"][org] = pair
        elif not g_svc:
            groups["service"][svc] = pair
        elif not g_prio:
            groups["priority"][pr] = pair
        else:
            groups["all"][None] = pair
    return groups


def _speed_in_python(start: datetime, end: datetime, communes: set[int] | None, service_id: int | None,
                     cal: BusinessCalendar) -> dict[str, dict[Any, Stats]]:
    """Any database: the stored durations streamed (`yield_per`), the calendar replayed for rows answered
    before the columns existed; percentiles in Python."""
    answered, resolved = _speed_scope(start, end)
    stored_fr, stored_res = Ticket.first_response_business_seconds, Ticket.resolution_business_seconds
    # The instants are read only for rows whose duration is not stored yet (before the column existed).
    stmt = _scoped(sa.select(
        sa.case((sa.and_(answered, stored_fr.is_(None)), Ticket.created_at),
                (sa.and_(resolved, stored_res.is_(None)), Ticket.created_at)).label("created_at"),
        sa.case((stored_fr.is_(None), Ticket.first_response_at)).label("first_response_at"),
        sa.case((stored_res.is_(None), Ticket.resolved_at)).label("resolved_at"),
        Ticket.organisation_id, Ticket.service_id, Ticket.priority, answered.label("answered"),
        resolved.label("resolved"), stored_fr, stored_res,
    ).where(sa.or_(answered, resolved)), communes, service_id)
    # One pair of arrays (first responses, resolutions) per (organisation, service, priority): a single dict
    # lookup per row; the groupings are merged from them at the end.
    cells: dict[tuple[int, int, str], tuple[array[float], array[float]]] = {}
    for created, first, done, org, svc, prio, is_answered, is_resolved, fr_s, res_s in db.session.execute(
            stmt.execution_options(yield_per=STREAM_BATCH)):
        key = (org, svc, prio or NO_PRIORITY)
        pair = cells.get(key)
        if pair is None:
            pair = cells[key] = (array("d"), array("d"))
        if is_answered:
            pair[0].append(fr_s if fr_s is not None else business_seconds(cal, created, first))
        if is_resolved:
            pair[1].append(res_s if res_s is not None else business_seconds(cal, created, done))
    merged: dict[str, dict[Any, tuple[array[float], array[float]]]] = {g: {} for g in GROUPS}
    for (org, svc, prio), (fr, res) in cells.items():
        for group, key in zip(GROUPS, (org, svc, prio, None), strict=True):
            target = merged[group].setdefault(key, (array("d"), array("d")))
            target[0].extend(fr)
            target[1].extend(res)
    return {group: {key: (DurationStats.of(fr), DurationStats.of(res)) for key, (fr, res) in items.items()}
            for group, items in merged.items()}


def speed(start: datetime, end: datetime, *, communes: set[int] | None = None, service_id: int | None = None,
          cal: BusinessCalendar | None = None) -> SpeedReport:
    """First-response times of the tickets first answered in [start, end), resolution times of those resolved
    in it, per organisation (the queue holding the ticket), service and priority."""
    groups = None
    if on_postgresql():
        groups = _speed_in_sql(start, end, communes, service_id)
    if groups is None:
        groups = _speed_in_python(start, end, communes, service_id, cal or calendar())
    return _speed_report(groups)


def _speed_report(groups: dict[str, dict[Any, Stats]]) -> SpeedReport:
    def rows(group: str, names: dict[Any, tuple[str, str]], order: Any) -> list[SpeedRow]:
        result = [SpeedRow(*names.get(key, (str(key), str(key))), fr, res) for key, (fr, res) in groups[group].items()]
        return sorted(result, key=order)

    orgs = {o.id: (o.code, o.name) for o in db.session.execute(
        sa.select(Organisation.id, Organisation.code, Organisation.name)
        .where(Organisation.id.in_(list(groups["organisation"]))))} if groups["organisation"] else {}
    services = {s.id: (s.code, s.name) for s in db.session.execute(sa.select(Service.id, Service.code, Service.name))}
    priorities = {p: (p or "non_qualifiee", label) for p, label in PRIORITY_LABELS.items()}
    priority_order = list(PRIORITY_LABELS)
    empty = DurationStats.of(())
    overall = groups["all"].get(None, (empty, empty))
    return SpeedReport(
        by_organisation=rows("organisation", orgs, lambda r: _sort_name(r.label)),
        by_service=rows("service", services, lambda r: _sort_name(r.label)),
        by_priority=rows("priority", priorities, lambda r: priority_order.index(r.key if r.key != "non_qualifiee"
                                                                                 else NO_PRIORITY)),
        overall=SpeedRow("ensemble", "Ensemble", *overall),
    )


# --- volumes -------------------------------------------------------------------------------------------------

def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """The local months overlapping [start, end): the start of each, clipped to the period (UTC)."""
    local = start.astimezone(PARIS)
    bounds = [start]
    year, month = local.year, local.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = datetime(year, month, 1, tzinfo=PARIS)
        if first >= end:
            break
        bounds.append(first)
    return bounds


def month_count(start: datetime, end: datetime) -> int:
    return len(month_starts(start, end))


@dataclass(frozen=True)
class VolumeTable:
    months: list[date]  # first day of each local month
    communes: dict[int, tuple[str, str]]  # id -> (code, name); NO_COMMUNE for tickets without commune
    services: dict[int, tuple[str, str]]
    counts: dict[tuple[int, int, int], int]  # (commune id, service id, month index) -> tickets

    def commune_month(self, commune: int, index: int) -> int:
        return sum(n for (c, _, m), n in self.counts.items() if c == commune and m == index)

    def service_month(self, service: int, index: int) -> int:
        return sum(n for (_, s, m), n in self.counts.items() if s == service and m == index)

    def month_total(self, index: int) -> int:
        return sum(n for (_, _, m), n in self.counts.items() if m == index)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def commune_order(self) -> list[int]:
        present = {c for c, _, _ in self.counts}
        return sorted(present, key=lambda c: (c == NO_COMMUNE, _sort_name(self.communes[c][1])))

    def service_order(self) -> list[int]:
        present = {s for _, s, _ in self.counts}
        return sorted(present, key=lambda s: _sort_name(self.services[s][1]))


def volumes(start: datetime, end: datetime, *, communes: set[int] | None = None,
            service_id: int | None = None) -> VolumeTable:
    """Tickets created in [start, end) per commune, service and local month."""
    starts = month_starts(start, end)
    whens = [(Ticket.created_at < b, i) for i, b in enumerate(starts[1:])]
    month = sa.case(*whens, else_=len(starts) - 1) if whens else sa.literal(0)
    inner = _scoped(sa.select(sa.func.coalesce(Ticket.commune_id, NO_COMMUNE).label("commune"),
                              Ticket.service_id.label("service"), month.label("month"))
                    .where(Ticket.created_at >= start, Ticket.created_at < end), communes, service_id).subquery()
    rows = db.session.execute(sa.select(inner.c.commune, inner.c.service, inner.c.month, sa.func.count())
                              .group_by(inner.c.commune, inner.c.service, inner.c.month)).all()
    counts = {(int(c), int(s), int(m)): int(n) for c, s, m, n in rows}
    commune_ids = {c for c, _, _ in counts} - {NO_COMMUNE}
    names = {o.id: (o.code, o.name) for o in db.session.execute(
        sa.select(Organisation.id, Organisation.code, Organisation.name).where(Organisation.id.in_(commune_ids)))}
    names[NO_COMMUNE] = ("", "Sans commune")
    services = {s.id: (s.code, s.name) for s in db.session.execute(sa.select(Service.id, Service.code, Service.name))}
    months = [b.astimezone(PARIS).date().replace(day=1) for b in starts]
    return VolumeTable(months, names, services, counts)


# --- export rows ---------------------------------------------------------------------------------------------

AGE_COLUMNS = (("etat", "État"), *((code, f"Âge : {label}") for code, label, _, _ in AGE_BUCKETS), ("total", "Total"))
SPEED_COLUMNS = (
    ("regroupement", "Regroupement"), ("code", "Code"), ("libelle", "Libellé"),
    ("premiere_reponse_tickets", "Premières réponses (tickets)"),
    ("premiere_reponse_mediane_heures_ouvrees", "Première réponse : médiane (h ouvrées)"),
    ("premiere_reponse_p90_heures_ouvrees", "Première réponse : 90e centile (h ouvrées)"),
    ("resolution_tickets", "Résolutions (tickets)"),
    ("resolution_mediane_heures_ouvrees", "Résolution : médiane (h ouvrées)"),
    ("resolution_p90_heures_ouvrees", "Résolution : 90e centile (h ouvrées)"),
)
VOLUME_COLUMNS = (("mois", "Mois"), ("code_insee", "Code INSEE"), ("commune", "Commune"),
                  ("service_code", "Code du service"), ("service", "Service"), ("tickets", "Tickets créés"))
SPEED_GROUPS = (("organisation", "Organisation"), ("service", "Service"), ("priorite", "Priorité"))


def age_rows(table: AgeTable) -> list[list[object]]:
    rows: list[list[object]] = [[label, *(table.count(s, b[0]) for b in AGE_BUCKETS), table.status_total(s)]
                                for s, label in table.statuses]
    rows.append(["Total", *(table.bucket_total(b[0]) for b in AGE_BUCKETS), table.total])
    return rows


def speed_rows(report: SpeedReport) -> list[list[object]]:
    rows: list[list[object]] = []
    for (group, label), items in zip(SPEED_GROUPS, (report.by_organisation, report.by_service, report.by_priority),
                                     strict=True):
        for r in [*items, report.overall] if group == "priorite" else items:
            rows.append([label if r is not report.overall else "Ensemble", r.key, r.label,
                         r.first_response.count, hours(r.first_response.median), hours(r.first_response.p90),
                         r.resolution.count, hours(r.resolution.median), hours(r.resolution.p90)])
    return rows


def volume_rows(table: VolumeTable) -> list[list[object]]:
    rows: list[list[object]] = []
    for index, month in enumerate(table.months):
        for commune in table.commune_order():
            for service in table.service_order():
                n = table.counts.get((commune, service, index))
                if n:
                    rows.append([f"{month:%Y-%m}", table.communes[commune][0], table.communes[commune][1],
                                 table.services[service][0], table.services[service][1], n])
    return rows
