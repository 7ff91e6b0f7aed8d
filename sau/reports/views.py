"""The SLA compliance dashboard (Toodego annex § 6.1.a: deadlines met in 95 % of cases for each commune),
worst commune first, with filters and a CSV export. A commune's manager sees only their commune."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user, login_required

from sau.auth import policy
from sau.clock import now_utc
from sau.help import intake
from sau.reports import exports
from sau.reports.compliance import CommuneCompliance, compliance_by_commune
from sau.reports.periods import PARIS, PeriodError, parse_period
from sau.tickets.models import KINDS

bp = Blueprint("reports", __name__, url_prefix="/rapports")
DASHBOARD_COLUMNS = [
    ("code_insee", "Code INSEE"), ("commune", "Commune"), ("engages", "Tickets engagés"),
    ("respectes", "Délais respectés"), ("depasses", "Délais dépassés"), ("en_cours", "En cours"),
    ("conformite", "Conformité (%)"), ("objectif", "Objectif (%)"), ("conforme", "Conforme"),
    ("marge_erreurs", "Marge (dépassements encore admis)"),
]


def _title(name: str, ctx: dict[str, Any]) -> str:
    last = ctx["end"].astimezone(PARIS).date().toordinal() - 1
    from datetime import date
    return f"{name} du {ctx['start'].astimezone(PARIS):%d/%m/%Y} au {date.fromordinal(last):%d/%m/%Y}"


def _query() -> tuple[list[CommuneCompliance], dict[str, Any]]:
    user = current_user
    if not policy.can_view_reports(user):  # type: ignore[arg-type]
        abort(403)
    args = request.args
    now = now_utc()
    errors: dict[str, str] = {}
    try:
        start, end = parse_period(args, now)
    except PeriodError as exc:
        errors.update(exc.fields)
        start, end = parse_period({}, now)
    service = args.get("service") or None
    if service and intake.service_by_code(service) is None:
        errors["service"] = "Service inconnu."
        service = None
    priority = args.get("priority") or None
    if priority not in (None, "bloquant", "majeur"):
        errors["priority"] = "Priorité : bloquant ou majeur (mineur : pas d'engagement)."
        priority = None
    kind = args.get("kind") or None
    if kind not in (None, *KINDS):
        errors["kind"] = "Type de ticket inconnu."
        kind = None
    rows = compliance_by_commune(start, end, now, service=service, priority=priority, kind=kind,
                                 communes=policy.report_commune_ids(user))  # type: ignore[arg-type]
    return rows, {"start": start, "end": end, "now": now, "errors": errors, "service": service,
                  "priority": priority, "kind": kind}


@bp.get("/sla")
@login_required
def sla_dashboard() -> Any:
    rows, ctx = _query()
    committed = sum(r.figures.committed for r in rows)
    status = 422 if ctx["errors"] else 200
    return render_template(
        "reports/sla.html", rows=[r for r in rows if r.figures.committed] + [r for r in rows if not r.figures.committed],
        total_committed=committed, non_conformes=sum(1 for r in rows if not r.figures.is_conforme),
        services=intake.sau_services(), kinds=KINDS, args=request.args,
        last_day=(ctx["end"].astimezone(PARIS).date().toordinal() - 1), **ctx,
    ), status


def _dashboard_rows(rows: list[CommuneCompliance]) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        f = r.figures
        yield (r.code, r.name, f.committed, f.met, f.breached, f.open,
               None if f.compliance is None else float(f.compliance * 100), 95,
               "oui" if f.is_conforme else "non", f.error_budget)


def _sla_export(fmt: str) -> Response:
    rows, ctx = _query()
    if ctx["errors"]:
        return exports.filter_error_response(ctx["errors"])
    stem = f"conformite-sla-{ctx['start'].astimezone(PARIS):%Y-%m-%d}"
    return exports.table_response(fmt, stem, DASHBOARD_COLUMNS, _dashboard_rows(rows),
                                  title=_title("Conformité SLA par commune", ctx))


@bp.get("/sla.csv")
@login_required
def sla_csv() -> Response:
    return _sla_export("csv")


@bp.get("/sla.xlsx")
@login_required
def sla_xlsx() -> Response:
    return _sla_export("xlsx")
