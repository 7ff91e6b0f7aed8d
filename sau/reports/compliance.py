"""SLA compliance per commune (Toodego annex § 6.1.a: deadlines met in 95 % of cases for each commune),
computed in SQL from the SLA fields stored on tickets. `sla.compliance` is the pure reference it is
cross-checked against in the tests.

A ticket counts for a period when its deadline falls in it and its priority carries a commitment
(bloquant, majeur); it is met when resolved within its target, breached when resolved late or still open
past its deadline (a clock suspended with time left cannot breach), open otherwise.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import sqlalchemy as sa

from sau.extensions import db
from sau.orgs.models import Organisation, Service
from sau.tickets.models import Ticket
from sla import COMMITTED_PRIORITIES, DEFAULT_COMPLIANCE_TARGET, ComplianceFigures
from sla.compliance import figures_from_counts


def _sort_name(name: str) -> str:
    """Alphabetical order ignoring accents (Écully between Dardilly and Feyzin)."""
    return "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))


@dataclass(frozen=True)
class CommuneCompliance:
    code: str
    name: str
    figures: ComplianceFigures


def compliance_by_commune(
    start: datetime, end: datetime, now: datetime, *, service: str | None = None, priority: str | None = None,
    kind: str | None = None, communes: set[int] | None = None,
    target: Fraction = DEFAULT_COMPLIANCE_TARGET,
) -> list[CommuneCompliance]:
    """Figures per commune over [start, end), as of `now`, worst compliance first.

    `communes` restricts the result to those organisation ids (a commune manager sees only theirs).
    """
    priorities = (priority,) if priority else COMMITTED_PRIORITIES
    met = sa.case((Ticket.sla_met.is_(True), 1), else_=0)
    breached = sa.case(
        (Ticket.sla_met.is_(False), 1),
        (sa.and_(Ticket.sla_met.is_(None), Ticket.sla_paused.is_(False),
                 sa.func.coalesce(Ticket.sla_breach_at, Ticket.sla_deadline_at) < now), 1),
        else_=0,
    )
    stmt = (
        sa.select(
            Ticket.commune_id,
            sa.func.count().label("committed"),
            sa.func.sum(met).label("met"),
            sa.func.sum(breached).label("breached"),
        )
        .where(
            Ticket.commune_id.is_not(None),
            Ticket.priority.in_(priorities),
            Ticket.sla_state != "sans_engagement",
            Ticket.sla_deadline_at >= start,
            Ticket.sla_deadline_at < end,
        )
        .group_by(Ticket.commune_id)
    )
    if service:
        stmt = stmt.where(Ticket.service_id == sa.select(Service.id).where(Service.code == service).scalar_subquery())
    if kind:
        stmt = stmt.where(Ticket.kind == kind)
    if communes is not None:
        stmt = stmt.where(Ticket.commune_id.in_(communes))
    rows = {r.commune_id: r for r in db.session.execute(stmt)}
    orgs = db.session.execute(
        sa.select(Organisation.id, Organisation.code, Organisation.name).where(Organisation.kind == "commune")
        .where(Organisation.id.in_(communes) if communes is not None else sa.true())
    )
    result = []
    for org_id, code, name in orgs:
        row = rows.get(org_id)
        m, b, c = (int(row.met), int(row.breached), int(row.committed)) if row else (0, 0, 0)
        result.append(CommuneCompliance(code, name, figures_from_counts(m, b, c - m - b, target)))
    result.sort(key=lambda r: (r.figures.compliance if r.figures.compliance is not None else 2.0,
                               -r.figures.breached, _sort_name(r.name)))
    return result
