"""The annual report per commune for the steering committee (convention art. 11): the year's figures, the
monthly table, the breaches and the figures per service of each commune, from one query grouped by commune ×
service × Paris month (the year, the months and the services are sums of its cells)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sau.extensions import db
from sau.orgs.models import Service
from sau.reports.compliance import _communes, breached_expression, committed_conditions, met_expression
from sau.reports.trend import Month, months_of_year
from sau.tickets.models import Ticket
from sla import ComplianceFigures
from sla.compliance import figures_from_counts


@dataclass(frozen=True)
class CommuneYear:
    org_id: int
    code: str
    name: str
    year: ComplianceFigures
    months: list[ComplianceFigures]
    services: list[tuple[str, ComplianceFigures]]  # (service name, figures), services with tickets only

    @property
    def percentages(self) -> list[float | None]:
        return [None if f.compliance is None else float(f.compliance) * 100 for f in self.months]


@dataclass(frozen=True)
class AnnualReport:
    year: int
    months: list[Month]
    communes: list[CommuneYear]
    total: ComplianceFigures


def annual_report(year: int, now: datetime, *, communes: set[int] | None = None) -> AnnualReport:
    """One scan grouped by commune × service × month: the months sum over services, the services over months."""
    months = months_of_year(year)
    bucket = sa.case(*[(Ticket.sla_deadline_at < m.end, i) for i, m in enumerate(months)], else_=len(months))
    stmt = (
        sa.select(Ticket.commune_id, Ticket.service_id, bucket.label("bucket"), sa.func.count().label("committed"),
                  sa.func.sum(met_expression()).label("met"), sa.func.sum(breached_expression(now)).label("breached"))
        .where(*committed_conditions(months[0].start, months[-1].end, communes=communes))
        .group_by(Ticket.commune_id, Ticket.service_id, sa.literal_column("bucket"))
    )
    names = {r.id: r.name for r in db.session.execute(sa.select(Service.id, Service.name))}
    counts: dict[int, dict[tuple[int, int], tuple[int, int, int]]] = {}
    for row in db.session.execute(stmt):
        counts.setdefault(row.commune_id, {})[(row.service_id, int(row.bucket))] = (
            int(row.met), int(row.breached), int(row.committed))

    def figures(values: list[tuple[int, int, int]]) -> ComplianceFigures:
        m, b, c = (sum(v[i] for v in values) for i in range(3))
        return figures_from_counts(m, b, c - m - b)

    result = []
    for org_id, code, name in _communes(communes):
        cells = counts.get(org_id, {})
        by_month = [figures([v for (_, i), v in cells.items() if i == month]) for month in range(len(months))]
        services = sorted({service_id for service_id, _ in cells}, key=lambda sid: names.get(sid, ""))
        by_service = [(names.get(sid, ""), figures([v for (s, _), v in cells.items() if s == sid])) for sid in services]
        result.append(CommuneYear(org_id, code, name, figures(list(cells.values())), by_month, by_service))
    total = figures([v for cells in counts.values() for v in cells.values()])
    return AnnualReport(year, months, result, total)
