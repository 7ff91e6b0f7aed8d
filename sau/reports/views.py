"""The SLA compliance reports (Toodego annex § 6.1.a: deadlines met in 95 % of cases for each commune):

- /rapports/sla: every commune, worst first, with filters, a chart, a 12-month trend per commune and for the
  whole Métropole;
- /rapports/sla/depassements: the breaches behind the figures; /rapports/sla/changements-priorite: the priority
  changes, since they move deadlines; /rapports/tickets/<reference>: a ticket's timeline and SLA explanation;
- /rapports/annuel: the annual report per commune for the steering committee (convention art. 11);
- every table as CSV and XLSX (sau.reports.exports).

A commune's manager sees only their commune (policy.report_commune_ids), in pages and exports alike.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user, login_required

from sau.auth import policy
from sau.auth.models import User
from sau.clock import now_utc
from sau.errors import SauError
from sau.help import intake
from sau.reports import annual as annual_mod
from sau.reports import breaches as br
from sau.reports import exports
from sau.reports.compliance import CommuneCompliance, compliance_by_commune
from sau.reports.periods import PARIS, period_or_current_month
from sau.reports.trend import describe, monthly_compliance, months_ending, period_and_trend
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import KINDS, PRIORITIES

bp = Blueprint("reports", __name__, url_prefix="/rapports")
PER_PAGE = 50
DASHBOARD_COLUMNS = [
    ("code_insee", "Code INSEE"), ("commune", "Commune"), ("engages", "Tickets engagés"),
    ("respectes", "Délais respectés"), ("depasses", "Délais dépassés"), ("en_cours", "En cours"),
    ("conformite", "Conformité (%)"), ("objectif", "Objectif (%)"), ("conforme", "Conforme"),
    ("marge_erreurs", "Marge (dépassements encore admis)"),
]
TREND_COLUMNS = [
    ("code_insee", "Code INSEE"), ("commune", "Commune"), ("mois", "Mois"), ("engages", "Tickets engagés"),
    ("respectes", "Délais respectés"), ("depasses", "Délais dépassés"), ("en_cours", "En cours"),
    ("conformite", "Conformité (%)"),
]
BREACH_COLUMNS = [
    ("reference", "Référence"), ("code_insee", "Code INSEE"), ("commune", "Commune"), ("service", "Service"),
    ("priorite", "Priorité"), ("echeance", "Échéance"), ("resolu_le", "Résolu le"),
    ("depasse_depuis", "Dépassé depuis le"), ("retard_heures_ouvrees", "Retard (heures ouvrées)"),
]
PRIORITY_COLUMNS = [
    ("reference", "Référence"), ("code_insee", "Code INSEE"), ("commune", "Commune"), ("service", "Service"),
    ("date", "Date"), ("par", "Par"), ("avant", "Priorité avant"), ("apres", "Priorité après"),
    ("echeance_avant", "Échéance avant"), ("echeance_apres", "Échéance après"), ("effet", "Effet"),
    ("justification", "Justification"),
]
ANNUAL_COLUMNS = [
    ("code_insee", "Code INSEE"), ("commune", "Commune"), ("rubrique", "Rubrique"), ("libelle", "Libellé"),
    ("engages", "Tickets engagés"), ("respectes", "Délais respectés"), ("depasses", "Délais dépassés"),
    ("en_cours", "En cours"), ("conformite", "Conformité (%)"), ("conforme", "Conforme"),
]


# --- filters -------------------------------------------------------------------------------------------

def _user() -> User:
    user: User = current_user  # type: ignore[assignment]
    if not policy.can_view_reports(user):
        abort(403)
    return user


def _filters() -> dict[str, Any]:
    """The report filters of the request (period, service, priority, kind), French errors per parameter."""
    user = _user()
    args = request.args
    now = now_utc()
    errors: dict[str, str] = {}
    start, end = period_or_current_month(args, now, errors)
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
    page = args.get("page", "1")
    if not re.fullmatch(r"[1-9]\d{0,5}", page):
        errors["page"] = "Numéro de page attendu : un entier à partir de 1."
        page = "1"
    return {"start": start, "end": end, "now": now, "errors": errors, "service": service, "priority": priority,
            "kind": kind, "communes": policy.report_commune_ids(user), "page": int(page),
            "last_day": date.fromordinal(end.astimezone(PARIS).date().toordinal() - 1)}


def _sql_filters(ctx: dict[str, Any]) -> dict[str, Any]:
    return {k: ctx[k] for k in ("service", "priority", "kind", "communes")}


def _title(name: str, ctx: dict[str, Any]) -> str:
    return f"{name} du {ctx['start'].astimezone(PARIS):%d/%m/%Y} au {ctx['last_day']:%d/%m/%Y}"


def _stem(name: str, ctx: dict[str, Any]) -> str:
    return f"{name}-{ctx['start'].astimezone(PARIS):%Y-%m-%d}"


def _page_context(ctx: dict[str, Any]) -> dict[str, Any]:
    """What every report page's filter form needs."""
    args = {k: v for k, v in request.args.items() if k != "page"}
    return {"services": intake.sau_services(), "kinds": KINDS, "args": args, "priority_labels": PRIORITIES, **ctx}


def _pct(figures: Any) -> float | None:
    return None if figures.compliance is None else float(figures.compliance) * 100


# --- dashboard -----------------------------------------------------------------------------------------

def _query() -> tuple[list[CommuneCompliance], dict[str, Any]]:
    ctx = _filters()
    rows = compliance_by_commune(ctx["start"], ctx["end"], ctx["now"], **_sql_filters(ctx))
    return rows, ctx


@bp.get("/sla")
@login_required
def sla_dashboard() -> Any:
    ctx = _filters()
    # one scan for the period's table and the 12-month trend (bench/reports_http.py)
    rows, trend = period_and_trend(ctx["start"], ctx["end"], months_ending(ctx["end"]), ctx["now"],
                                   **_sql_filters(ctx))
    committed = sum(r.figures.committed for r in rows)
    status = 422 if ctx["errors"] else 200
    ordered = [r for r in rows if r.figures.committed] + [r for r in rows if not r.figures.committed]
    return render_template(
        "reports/sla.html", rows=ordered, total_committed=committed,
        non_conformes=sum(1 for r in rows if not r.figures.is_conforme), trend=trend.by_code(),
        trend_months=trend.months, metro_trend=trend.total, metro_values=trend.total_percentages,
        metro_desc=describe(trend.total_percentages, trend.months), describe=describe, pct=_pct,
        breach_count=sum(r.figures.breached for r in rows), **_page_context(ctx),
    ), status


def _dashboard_rows(rows: list[CommuneCompliance]) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        f = r.figures
        yield (r.code, r.name, f.committed, f.met, f.breached, f.open, _pct(f), 95,
               "oui" if f.is_conforme else "non", f.error_budget)


def _sla_export(fmt: str) -> Response:
    rows, ctx = _query()
    if ctx["errors"]:
        return exports.filter_error_response(ctx["errors"])
    return exports.table_response(fmt, _stem("conformite-sla", ctx), DASHBOARD_COLUMNS, _dashboard_rows(rows),
                                  title=_title("Conformité SLA par commune", ctx))


@bp.get("/sla.csv")
@login_required
def sla_csv() -> Response:
    return _sla_export("csv")


@bp.get("/sla.xlsx")
@login_required
def sla_xlsx() -> Response:
    return _sla_export("xlsx")


def _trend_export(fmt: str) -> Response:
    ctx = _filters()
    if ctx["errors"]:
        return exports.filter_error_response(ctx["errors"])
    trend = monthly_compliance(months_ending(ctx["end"]), ctx["now"], **_sql_filters(ctx))

    def rows() -> Iterator[tuple[Any, ...]]:
        for c in trend.communes:
            for month, f in zip(trend.months, c.months, strict=True):
                yield (c.code, c.name, month.key, f.committed, f.met, f.breached, f.open, _pct(f))
        if ctx["communes"] is None:
            for month, f in zip(trend.months, trend.total, strict=True):
                yield ("", "Métropole (toutes communes)", month.key, f.committed, f.met, f.breached, f.open, _pct(f))

    first, last = trend.months[0], trend.months[-1]
    return exports.table_response(fmt, f"tendance-sla-{first.key}-{last.key}", TREND_COLUMNS, rows(),
                                  title=f"Conformité SLA par commune et par mois, de {first.label} à {last.label}")


@bp.get("/sla/tendance.csv")
@login_required
def trend_csv() -> Response:
    return _trend_export("csv")


@bp.get("/sla/tendance.xlsx")
@login_required
def trend_xlsx() -> Response:
    return _trend_export("xlsx")


# --- breaches and priority changes ------------------------------------------------------------------------

@bp.get("/sla/depassements")
@login_required
def breaches() -> Any:
    ctx = _filters()
    filters = _sql_filters(ctx)
    total = br.count_breaches(ctx["start"], ctx["end"], ctx["now"], **filters)
    items = br.breaches_page(ctx["start"], ctx["end"], ctx["now"], page=ctx["page"], per_page=PER_PAGE, **filters)
    return render_template(
        "reports/breaches.html", items=items, total=total, per_page=PER_PAGE, duration=ticket_sla.format_duration,
        **_page_context(ctx),
    ), 422 if ctx["errors"] else 200


def _hours(value: Any) -> float:
    return round(value.total_seconds() / 3600, 2)


def _breach_export(fmt: str) -> Response:
    ctx = _filters()
    if ctx["errors"]:
        return exports.filter_error_response(ctx["errors"])

    def rows() -> Iterator[tuple[Any, ...]]:
        for b in br.iter_breaches(ctx["start"], ctx["end"], ctx["now"], **_sql_filters(ctx)):
            yield (b.reference, b.commune_code, b.commune, b.service, PRIORITIES.get(b.priority, b.priority),
                   b.deadline_at, b.resolved_at, b.breach_at, _hours(b.late))

    return exports.table_response(fmt, _stem("depassements-sla", ctx), BREACH_COLUMNS, rows,
                                  title=_title("Délais dépassés", ctx))


@bp.get("/sla/depassements.csv")
@login_required
def breaches_csv() -> Response:
    return _breach_export("csv")


@bp.get("/sla/depassements.xlsx")
@login_required
def breaches_xlsx() -> Response:
    return _breach_export("xlsx")


@bp.get("/sla/changements-priorite")
@login_required
def priority_changes() -> Any:
    ctx = _filters()
    filters = _sql_filters(ctx)
    total = br.count_priority_changes(ctx["start"], ctx["end"], **filters)
    items = br.priority_changes_page(ctx["start"], ctx["end"], page=ctx["page"], per_page=PER_PAGE, **filters)
    return render_template(
        "reports/priority_changes.html", items=items, total=total, per_page=PER_PAGE,
        priority_label=br.priority_label, **_page_context(ctx),
    ), 422 if ctx["errors"] else 200


def _priority_export(fmt: str) -> Response:
    ctx = _filters()
    if ctx["errors"]:
        return exports.filter_error_response(ctx["errors"])

    def rows() -> Iterator[tuple[Any, ...]]:
        for c in br.iter_priority_changes(ctx["start"], ctx["end"], **_sql_filters(ctx)):
            yield (c.reference, c.commune_code, c.commune, c.service, c.at, c.actor, br.priority_label(c.before),
                   br.priority_label(c.after), c.deadline_before, c.deadline_after, c.effect, c.justification)

    return exports.table_response(fmt, _stem("changements-priorite", ctx), PRIORITY_COLUMNS, rows,
                                  title=_title("Changements de priorité", ctx))


@bp.get("/sla/changements-priorite.csv")
@login_required
def priority_changes_csv() -> Response:
    return _priority_export("csv")


@bp.get("/sla/changements-priorite.xlsx")
@login_required
def priority_changes_xlsx() -> Response:
    return _priority_export("xlsx")


# --- a ticket behind the figures ---------------------------------------------------------------------------

@bp.get("/tickets/<reference>")
@login_required
def ticket(reference: str) -> Any:
    user = _user()
    try:
        ticket = ops.get_ticket(reference)
    except SauError:
        abort(404)
    if not policy.can_view_report_ticket(user, ticket):
        abort(404)
    now = now_utc()
    return render_template(
        "reports/ticket.html", ticket=ticket, comments={},  # messages are not needed to explain a deadline
        sla_state=ticket_sla.compute(ticket, now), sla_live=ticket_sla.live(ticket, now),
        duration=ticket_sla.format_duration, now=now,
        can_work=policy.can_view_as_staff(user, ticket),
    )


# --- annual report -------------------------------------------------------------------------------------------

def _annual() -> tuple[annual_mod.AnnualReport | None, dict[str, Any]]:
    user = _user()
    now = now_utc()
    raw = request.args.get("annee", "") or str(now.astimezone(PARIS).year)
    errors = {}
    if not re.fullmatch(r"20\d\d", raw):
        errors["annee"] = "Année attendue sur quatre chiffres, de 2000 à 2099."
        raw = str(now.astimezone(PARIS).year)
    report = annual_mod.annual_report(int(raw), now, communes=policy.report_commune_ids(user))
    return report, {"errors": errors, "now": now, "year": int(raw)}


@bp.get("/annuel")
@login_required
def annual() -> Any:
    report, ctx = _annual()
    return render_template("reports/annual.html", report=report, pct=_pct, describe=describe, **ctx), \
        422 if ctx["errors"] else 200


def _annual_export(fmt: str) -> Response:
    report, ctx = _annual()
    if ctx["errors"] or report is None:
        return exports.filter_error_response(ctx["errors"])

    def rows() -> Iterator[tuple[Any, ...]]:
        for c in report.communes:
            f = c.year
            yield (c.code, c.name, "année", str(report.year), f.committed, f.met, f.breached, f.open, _pct(f),
                   "oui" if f.is_conforme else "non")
            for month, f in zip(report.months, c.months, strict=True):
                yield (c.code, c.name, "mois", month.key, f.committed, f.met, f.breached, f.open, _pct(f),
                       "oui" if f.is_conforme else "non")
            for service, f in c.services:
                yield (c.code, c.name, "service", service, f.committed, f.met, f.breached, f.open, _pct(f),
                       "oui" if f.is_conforme else "non")

    return exports.table_response(fmt, f"rapport-annuel-sla-{report.year}", ANNUAL_COLUMNS, rows(),
                                  title=f"Rapport annuel {report.year} — délais de résolution par commune")


@bp.get("/annuel.csv")
@login_required
def annual_csv() -> Response:
    return _annual_export("csv")


@bp.get("/annuel.xlsx")
@login_required
def annual_xlsx() -> Response:
    return _annual_export("xlsx")

