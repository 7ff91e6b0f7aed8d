"""The annual report per commune for the steering committee (convention art. 11): the year's figures, the
monthly table, the breaches and the figures per service of each commune, from three grouped queries (commune ×
month, commune × service; the year is the sum of the months)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sau.extensions import db
from sau.orgs.models import Service
from sau.reports.compliance import breached_expression, committed_conditions, met_expression
from sau.reports.trend import Month, monthly_compliance, months_of_year
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


def _sum(figures: list[ComplianceFigures]) -> ComplianceFigures:
    m = sum(f.met for f in figures)
    b = sum(f.breached for f in figures)
    c = sum(f.committed for f in figures)
    return figures_from_counts(m, b, c - m - b)


def annual_report(year: int, now: datetime, *, communes: set[int] | None = None) -> AnnualReport:
    months = months_of_year(year)
    trend = monthly_compliance(months, now, communes=communes)
    stmt = (
        sa.select(Ticket.commune_id, Service.name, sa.func.count().label("committed"),
                  sa.func.sum(met_expression()).label("met"), sa.func.sum(breached_expression(now)).label("breached"))
        .join(Service, Service.id == Ticket.service_id)
        .where(*committed_conditions(months[0].start, months[-1].end, communes=communes))
        .group_by(Ticket.commune_id, Service.name)
        .order_by(Service.name)
    )
    per_service: dict[int, list[tuple[str, ComplianceFigures]]] = {}
    for row in db.session.execute(stmt):
        m, b, c = int(row.met), int(row.breached), int(row.committed)
        per_service.setdefault(row.commune_id, []).append((row.name, figures_from_counts(m, b, c - m - b)))
    result = [
        CommuneYear(t.org_id, t.code, t.name, _sum(t.months), t.months, per_service.get(t.org_id, []))
        for t in trend.communes
    ]
    return AnnualReport(year, months, result, _sum(trend.total))
