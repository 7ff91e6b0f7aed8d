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


def committed_conditions(
    start: datetime, end: datetime, *, service: str | None = None, priority: str | None = None,
    kind: str | None = None, communes: set[int] | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The committed tickets of a commune whose deadline falls in [start, end), with the report filters (the
    conditions the covering index `ix_tickets_compliance` answers)."""
    priorities = (priority,) if priority else COMMITTED_PRIORITIES
    conditions = [
        Ticket.commune_id.is_not(None),
        Ticket.priority.in_(priorities),
        Ticket.sla_state != "sans_engagement",
        Ticket.sla_deadline_at >= start,
        Ticket.sla_deadline_at < end,
    ]
    if service:
        conditions.append(
            Ticket.service_id == sa.select(Service.id).where(Service.code == service).scalar_subquery())
    if kind:
        conditions.append(Ticket.kind == kind)
    if communes is not None:
        conditions.append(Ticket.commune_id.in_(communes))
    return conditions


def met_expression() -> sa.ColumnElement[int]:
    return sa.case((Ticket.sla_met.is_(True), 1), else_=0)


def breached_condition(now: datetime) -> sa.ColumnElement[bool]:
    """Resolved late, or still open past its breach instant with the clock not suspended."""
    return sa.or_(
        Ticket.sla_met.is_(False),
        sa.and_(Ticket.sla_met.is_(None), Ticket.sla_paused.is_(False),
                sa.func.coalesce(Ticket.sla_breach_at, Ticket.sla_deadline_at) < now),
    )


def breached_expression(now: datetime) -> sa.ColumnElement[int]:
    return sa.case((breached_condition(now), 1), else_=0)


def _communes(ids: set[int] | None) -> list[tuple[int, str, str]]:
    """(id, INSEE code, name) of the communes, all or those ids, alphabetically."""
    rows = db.session.execute(
        sa.select(Organisation.id, Organisation.code, Organisation.name).where(Organisation.kind == "commune")
        .where(Organisation.id.in_(ids) if ids is not None else sa.true())
    ).all()
    return sorted(((r.id, r.code, r.name) for r in rows), key=lambda r: _sort_name(r[2]))


def compliance_by_commune(
    start: datetime, end: datetime, now: datetime, *, service: str | None = None, priority: str | None = None,
    kind: str | None = None, communes: set[int] | None = None,
    target: Fraction = DEFAULT_COMPLIANCE_TARGET,
) -> list[CommuneCompliance]:
    """Figures per commune over [start, end), as of `now`, worst compliance first.

    `communes` restricts the result to those organisation ids (a commune manager sees only theirs).
    """
    stmt = (
        sa.select(
            Ticket.commune_id,
            sa.func.count().label("committed"),
            sa.func.sum(met_expression()).label("met"),
            sa.func.sum(breached_expression(now)).label("breached"),
        )
        .where(*committed_conditions(start, end, service=service, priority=priority, kind=kind, communes=communes))
        .group_by(Ticket.commune_id)
    )
    rows = {r.commune_id: r for r in db.session.execute(stmt)}
    result = []
    for org_id, code, name in _communes(communes):
        row = rows.get(org_id)
        m, b, c = (int(row.met), int(row.breached), int(row.committed)) if row else (0, 0, 0)
        result.append(CommuneCompliance(code, name, figures_from_counts(m, b, c - m - b, target)))
    result.sort(key=sort_key)
    return result


def sort_key(row: CommuneCompliance) -> tuple[float, int, str]:
    """Worst compliance first, then most breaches, then alphabetical (communes without tickets last)."""
    f = row.figures
    return (f.compliance if f.compliance is not None else 2.0, -f.breached, _sort_name(row.name))
