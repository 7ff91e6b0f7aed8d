"""Report pages beside the SLA dashboard: availability per service and month (/rapports/disponibilite), workload
and speed (/rapports/activite), each table exported as CSV or XLSX; and the public open-data endpoints
(/donnees-ouvertes). Reports need `policy.can_view_reports`; a commune's manager sees only their commune's
tickets (availability is per service, the same for everyone)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_login import current_user, login_required

from sau.auth import policy
from sau.clock import now_utc
from sau.extensions import db
from sau.help import intake
from sau.orgs.models import Organisation, Service
from sau.reports import availability_report as avail
from sau.reports import opendata, workload
from sau.reports.exports import table_response
from sau.reports.periods import PARIS, parse_period, period_or_current_month
from sau.web import json_error
from sla.availability import AVAILABILITY_TARGET, DEFAULT_PARTIAL_WEIGHT

bp = Blueprint("reports_activity", __name__, url_prefix="/rapports")
opendata_bp = Blueprint("opendata", __name__, url_prefix="/donnees-ouvertes")

AVAILABILITY_TABLES = {"mois": "disponibilite-mensuelle", "indisponibilites": "indisponibilites"}
ACTIVITY_TABLES = {"anciennete": "tickets-ouverts-anciennete", "delais": "delais-heures-ouvrees",
                   "volumes": "tickets-par-mois"}


def duration_label(value: timedelta | None) -> str:
    """'2 h 05 min', '44 min 38 s', '0 min'; seconds shown only under an hour; '—' for None."""
    if value is None:
        return "—"
    h, rest = divmod(round(value.total_seconds()), 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if sec else f"{m} min"


def hours_label(value: timedelta | None) -> str:
    if value is None:
        return "—"
    return f"{value.total_seconds() / 3600:.1f}".replace(".", ",") + " h"


def _require_reports() -> None:
    if not policy.can_view_reports(current_user):  # type: ignore[arg-type]
        abort(403)


def _partial_weight() -> float:
    return float(current_app.config.get("AVAILABILITY_PARTIAL_WEIGHT", DEFAULT_PARTIAL_WEIGHT))


def _service(errors: dict[str, str], *, sau_only: bool) -> Any:
    code = request.args.get("service") or None
    if not code:
        return None
    found = intake.service_by_code(code)
    if found is None or (sau_only and not found.has_sau):
        errors["service"] = "Service inconnu."
        return None
    return found


def _export_error(errors: dict[str, str]) -> Response:
    return json_error(422, "validation_error", "Filtres invalides : " + " ".join(errors.values()), errors)


def _table(tables: dict[str, str], errors: dict[str, str]) -> str | None:
    """The `tableau` asked for among `tables` (the first by default); None and a French error if unknown."""
    name = request.args.get("tableau") or next(iter(tables))
    if name in tables:
        return name
    *rest, last = tables
    errors["tableau"] = f"Tableau inconnu : {', '.join(rest)} ou {last}."
    return None


def _all_services() -> list[Service]:
    return list(db.session.scalars(sa.select(Service).order_by(Service.name)))


# --- availability --------------------------------------------------------------------------------------------

def _availability_query() -> tuple[list[avail.ServiceAvailability], dict[str, Any]]:
    _require_reports()
    now = now_utc()
    errors: dict[str, str] = {}
    try:
        months = avail.parse_months(request.args, now)
    except avail.FilterError as exc:
        errors.update(exc.fields)
        months = avail.last_months(now)
    service = _service(errors, sau_only=False)
    report = avail.availability_report(months, now, partial_weight=_partial_weight(),
                                       service=service.code if service else None)
    return report, {"now": now, "errors": errors, "months": months, "service": service.code if service else None,
                    "year": request.args.get("year", "")}


@bp.get("/disponibilite")
@login_required
def availability() -> Any:
    report, ctx = _availability_query()
    return render_template(
        "reports/disponibilite.html", report=report, services=_all_services(),
        target_percent=AVAILABILITY_TARGET * 100, partial_weight=_partial_weight(), args=request.args,
        duration_label=duration_label, month_label=avail.month_label, percent=avail.percent,
        non_conformes=sum(s.non_conformes for s in report), **ctx,
    ), 422 if ctx["errors"] else 200


@bp.get("/disponibilite.csv", defaults={"fmt": "csv"})
@bp.get("/disponibilite.xlsx", defaults={"fmt": "xlsx"})
@login_required
def availability_export(fmt: str) -> Response:
    report, ctx = _availability_query()
    table = _table(AVAILABILITY_TABLES, ctx["errors"])
    if table is None or ctx["errors"]:
        return _export_error(ctx["errors"])
    months = ctx["months"]
    stem = f"{AVAILABILITY_TABLES[table]}-{avail.month_code(months[0])}-{avail.month_code(months[-1])}"
    if table == "mois":
        return table_response(fmt, stem, avail.MONTH_COLUMNS, avail.month_rows(report),
                              title="Disponibilité mensuelle des services")
    return table_response(fmt, stem, avail.OUTAGE_COLUMNS, avail.outage_rows(report),
                          title="Indisponibilités par service et par mois")


# --- workload and speed --------------------------------------------------------------------------------------

def _activity_filters() -> dict[str, Any]:
    _require_reports()
    args = request.args
    now = now_utc()
    errors: dict[str, str] = {}
    start, end = period_or_current_month(args, now, errors)
    if not errors and workload.month_count(start, end) > workload.MAX_MONTHS:
        field = "end" if args.get("start") or args.get("end") else "period"
        errors[field] = f"Période trop longue : {workload.MAX_MONTHS} mois au plus."
        start, end = parse_period({}, now)
    service = _service(errors, sau_only=False)
    communes = policy.report_commune_ids(current_user)  # type: ignore[arg-type]
    return {"now": now, "start": start, "end": end, "errors": errors, "service": service.code if service else None,
            "service_id": service.id if service else None, "communes": communes}


def _scope_label(communes: set[int] | None) -> str:
    if communes is None:
        return "toutes les communes"
    names = sorted(db.session.scalars(sa.select(Organisation.name).where(Organisation.id.in_(communes))))
    return ", ".join(names) or "aucune commune"


def _activity_charts(ages: workload.AgeTable, speed: workload.SpeedReport, vols: workload.VolumeTable) -> dict[str, Any]:
    """Chart points (the tables of the page are their accessible alternative)."""
    age = [{"label": label, "value": ages.bucket_total(code)} for code, label, _, _ in workload.AGE_BUCKETS]
    resolution = [{"label": r.label, "value": workload.hours(r.resolution.median),
                   "note": f"({r.resolution.count} résolu{'s' if r.resolution.count > 1 else ''})"}
                  for r in speed.by_service]
    months = [{"label": f"{m:%m/%y}", "value": vols.month_total(i)} for i, m in enumerate(vols.months)]

    def top(items: list[dict[str, Any]]) -> float:
        return max([1.0, *(float(i["value"]) for i in items if i["value"] is not None)])

    return {"age": age, "age_max": top(age), "resolution": resolution, "resolution_max": top(resolution),
            "months": months, "months_max": top(months)}


@bp.get("/activite")
@login_required
def activity() -> Any:
    f = _activity_filters()
    scope = {"communes": f["communes"], "service_id": f["service_id"]}
    ages = workload.open_by_age(f["now"], **scope)
    speed = workload.speed(f["start"], f["end"], **scope)
    vols = workload.volumes(f["start"], f["end"], **scope)
    return render_template(
        "reports/activite.html", ages=ages, charts_data=_activity_charts(ages, speed, vols), buckets=workload.AGE_BUCKETS, speed=speed, vols=vols,
        services=intake.sau_services(), args=request.args, scope_label=_scope_label(f["communes"]),
        hours_label=hours_label, last_day=f["end"].astimezone(PARIS).date() - timedelta(days=1),
        speed_groups=(("organisation", "Par organisation (file qui traite le ticket)", speed.by_organisation),
                      ("service", "Par service", speed.by_service),
                      ("priorite", "Par priorité", [*speed.by_priority, speed.overall])),
        **f,
    ), 422 if f["errors"] else 200


@bp.get("/activite.csv", defaults={"fmt": "csv"})
@bp.get("/activite.xlsx", defaults={"fmt": "xlsx"})
@login_required
def activity_export(fmt: str) -> Response:
    f = _activity_filters()
    table = _table(ACTIVITY_TABLES, f["errors"])
    if table is None or f["errors"]:
        return _export_error(f["errors"])
    scope = {"communes": f["communes"], "service_id": f["service_id"]}
    start: datetime = f["start"]
    stem = f"{ACTIVITY_TABLES[table]}-{start.astimezone(PARIS):%Y-%m-%d}"
    if table == "anciennete":
        stem = f"{ACTIVITY_TABLES[table]}-{f['now'].astimezone(PARIS):%Y-%m-%d}"
        return table_response(fmt, stem, workload.AGE_COLUMNS,
                              lambda: workload.age_rows(workload.open_by_age(f["now"], **scope)),
                              title="Tickets ouverts par ancienneté et état")
    if table == "delais":
        return table_response(fmt, stem, workload.SPEED_COLUMNS,
                              lambda: workload.speed_rows(workload.speed(start, f["end"], **scope)),
                              title="Délais en heures ouvrées")
    return table_response(fmt, stem, workload.VOLUME_COLUMNS,
                          lambda: workload.volume_rows(workload.volumes(start, f["end"], **scope)),
                          title="Tickets créés par mois")


# --- open data (public) --------------------------------------------------------------------------------------

def _settings() -> opendata.Settings:
    return opendata.settings(current_app.config)


def _public(response: Response, generated_at: datetime | None = None) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=3600"
    if generated_at is not None:
        response.last_modified = generated_at
    return response


@opendata_bp.get("")
def index() -> Any:
    s = _settings()
    snaps = {name: opendata.snapshot(name, now_utc(), s) for name in opendata.RESOURCES}
    return render_template("opendata/index.html", snaps=snaps, schemas=opendata.SCHEMAS, licence=opendata.LICENCE,
                           art_7_1=opendata.ART_7_1, months=s.months, refresh_hours=s.max_age.total_seconds() / 3600)


@opendata_bp.get("/sau-tickets.csv", defaults={"name": opendata.TICKETS})
@opendata_bp.get("/sau-disponibilite.csv", defaults={"name": opendata.AVAILABILITY})
def resource_csv(name: str) -> Response:
    snap = opendata.snapshot(name, now_utc(), _settings())
    response = Response(snap.csv, content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="{name}.csv"',
                                 "X-Generated-At": opendata.iso(snap.generated_at)})
    response.set_etag(snap.sha256)
    return _public(response, snap.generated_at).make_conditional(request)


@opendata_bp.get("/sau-tickets.json", defaults={"name": opendata.TICKETS})
@opendata_bp.get("/sau-disponibilite.json", defaults={"name": opendata.AVAILABILITY})
def resource_json(name: str) -> Response:
    snap = opendata.snapshot(name, now_utc(), _settings())
    response = Response(snap.json, content_type="application/json; charset=utf-8",
                        headers={"X-Generated-At": opendata.iso(snap.generated_at)})
    response.set_etag(snap.sha256 + "-json-" + opendata.iso(snap.generated_at))
    return _public(response, snap.generated_at).make_conditional(request)


def _schema_document(name: str) -> dict[str, Any]:
    schema = opendata.SCHEMAS[name]
    return {"$schema": "https://specs.frictionlessdata.io/schemas/table-schema.json", **schema}


@opendata_bp.get("/sau-tickets.schema.json", defaults={"name": opendata.TICKETS})
@opendata_bp.get("/sau-disponibilite.schema.json", defaults={"name": opendata.AVAILABILITY})
def schema(name: str) -> Response:
    return _public(Response(json.dumps(_schema_document(name), ensure_ascii=False, indent=1),
                            content_type="application/json; charset=utf-8"))


@opendata_bp.get("/datapackage.json")
def datapackage() -> Response:
    """The Frictionless Data Package describing both resources (paths relative to this document)."""
    generated = opendata.last_generated()
    package = {
        "profile": "tabular-data-package",
        "name": "sau-metropole-de-lyon",
        "title": "Service d'Assistance à l'Utilisateur (SAU) — données de service",
        "description": "Données de service du SAU (convention-cadre, art. 7.1), agrégées et sans donnée personnelle.",
        "homepage": url_for("opendata.index", _external=True),
        "licenses": [opendata.LICENCE],
        "contributors": [{"title": opendata.PUBLISHER, "role": "publisher"}],
        **({"created": opendata.iso(generated)} if generated else {}),
        "resources": [
            {"name": name, "path": f"{name}.csv", "title": opendata.SCHEMAS[name]["title"],
             "description": opendata.SCHEMAS[name]["description"], "profile": "tabular-data-resource",
             "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
             "dialect": {"delimiter": ",", "header": True}, "licenses": [opendata.LICENCE],
             "schema": {k: v for k, v in opendata.SCHEMAS[name].items() if k not in ("title", "description")}}
            for name in opendata.RESOURCES
        ],
    }
    return _public(Response(json.dumps(package, ensure_ascii=False, indent=1),
                            content_type="application/json; charset=utf-8"))
