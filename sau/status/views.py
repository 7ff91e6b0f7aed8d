"""The public status page (/statut, /statut/<service>) and the pages where Métropole agents and admins record
outages and announce, change or cancel maintenance (/statut/gestion/…)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from sau.clock import now_utc
from sau.errors import SauError, ValidationFailed
from sau.extensions import db, login_manager
from sau.orgs.models import Service
from sau.status import operations as ops
from sau.status.forms import MaintenanceForm, OutageForm
from sau.status.models import Maintenance, Outage
from sla.availability import DEFAULT_PARTIAL_WEIGHT

bp = Blueprint("status", __name__, url_prefix="/statut")

PUBLIC_ENDPOINTS = frozenset({"status.index", "status.service"})


@bp.before_request
def _check_access() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not ops.can_manage_status(current_user):  # type: ignore[arg-type]
        abort(403)
    return None


@bp.after_request
def _no_store(response: Any) -> Any:
    if request.endpoint not in PUBLIC_ENDPOINTS:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# --- public ------------------------------------------------------------------------------------------------

@bp.get("")
def index() -> Any:
    user = current_user if current_user.is_authenticated else None
    return render_template("status/index.html", statuses=ops.overview(now_utc()), now=now_utc(),
                           can_manage=ops.can_manage_status(user))  # type: ignore[arg-type]


@bp.get("/<code>")
def service(code: str) -> Any:
    found = db.session.scalar(sa.select(Service).where(Service.code == code))
    if found is None:
        abort(404)
    weight = float(current_app.config.get("AVAILABILITY_PARTIAL_WEIGHT", DEFAULT_PARTIAL_WEIGHT))
    now = now_utc()
    status = ops.service_status(found, now, partial_weight=weight)
    return render_template("status/service.html", status=status, partial_weight=weight, history_days=ops.HISTORY_DAYS,
                           now_paris=now.astimezone(ops.PARIS))


# --- management --------------------------------------------------------------------------------------------

def _services() -> list[Service]:
    return list(db.session.scalars(sa.select(Service).order_by(Service.name)))


def _service_choices(form: Any) -> dict[str, Service]:
    services = {s.code: s for s in _services()}
    form.service.choices = [("", "— Choisissez —")] + [(c, s.name) for c, s in services.items()]
    return services


def _apply_errors(form: Any, exc: ValidationFailed) -> None:
    for name, message in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]
        else:
            flash(message, "error")


@bp.get("/gestion")
def manage() -> Any:
    return render_template("status/manage.html", outages=ops.recent_outages(),
                           maintenances=ops.maintenance_list(), now=now_utc())


def _outage_form(outage: Outage | None) -> Any:
    form = OutageForm(obj=None)
    services = _service_choices(form)
    if request.method == "GET" and outage is not None:
        form.service.data = outage.service.code
        form.started_at.data, form.ended_at.data = outage.started_at, outage.ended_at
        form.kind.data, form.is_planned.data = outage.kind, outage.is_planned
        form.description.data = outage.description
        form.tickets.data = ", ".join(t.reference for t in outage.tickets)
    if request.method == "POST" and form.validate_on_submit():
        service = services.get(form.service.data or "")
        if service is None:  # every error at once
            _apply_errors(form, ValidationFailed("", {"service": "Choisissez le service.", **ops.outage_errors(
                form.started_at.data, form.ended_at.data, form.kind.data, form.description.data or "", now_utc())}))
            return form, None
        refs = (form.tickets.data or "").replace(";", ",").replace(" ", ",").split(",")
        args = (service, form.started_at.data, form.ended_at.data, form.kind.data, bool(form.is_planned.data),
                form.description.data or "", refs)
        try:
            if outage is None:
                outage = ops.record_outage(current_user, now_utc(), *args)  # type: ignore[arg-type]
            else:
                ops.update_outage(current_user, now_utc(), outage, *args)  # type: ignore[arg-type]
            db.session.commit()
        except ValidationFailed as exc:
            db.session.rollback()
            _apply_errors(form, exc)
            return form, None
        return form, outage
    return form, None


@bp.route("/gestion/indisponibilites/nouvelle", methods=["GET", "POST"])
def outage_new() -> Any:
    form, saved = _outage_form(None)
    if saved is not None:
        flash("Indisponibilité enregistrée.", "success")
        return redirect(url_for("status.manage"), code=303)
    return render_template("status/outage_form.html", form=form, outage=None), 422 if request.method == "POST" else 200


@bp.route("/gestion/indisponibilites/<int:outage_id>", methods=["GET", "POST"])
def outage_edit(outage_id: int) -> Any:
    outage = db.session.get(Outage, outage_id) or abort(404)
    form, saved = _outage_form(outage)
    if saved is not None:
        flash("Indisponibilité mise à jour.", "success")
        return redirect(url_for("status.manage"), code=303)
    return render_template("status/outage_form.html", form=form, outage=outage), 422 if request.method == "POST" else 200


def _maintenance_form(m: Maintenance | None) -> Any:
    form = MaintenanceForm()
    services = _service_choices(form)
    if m is not None:
        del form.service  # the service of an announced maintenance does not change
    if request.method == "GET" and m is not None:
        form.starts_at.data, form.ends_at.data, form.impact.data = m.starts_at, m.ends_at, m.impact
    if request.method == "POST" and form.validate_on_submit():
        service = services.get(form.service.data or "") if m is None else m.service
        if service is None:  # every error at once: the window's too
            _apply_errors(form, ValidationFailed("", {"service": "Choisissez le service.", **ops.window_errors(
                form.starts_at.data, form.ends_at.data, form.impact.data or "", now_utc())}))
            return form, None
        try:
            if m is None:
                m = ops.announce_maintenance(current_user, now_utc(), service, form.starts_at.data,  # type: ignore[arg-type]
                                             form.ends_at.data, form.impact.data or "")
            else:
                ops.change_maintenance(current_user, now_utc(), m, form.starts_at.data,  # type: ignore[arg-type]
                                       form.ends_at.data, form.impact.data or "")
            db.session.commit()
        except ValidationFailed as exc:
            db.session.rollback()
            _apply_errors(form, exc)
            return form, None
        except SauError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            return form, None
        return form, m
    return form, None


@bp.route("/gestion/maintenances/nouvelle", methods=["GET", "POST"])
def maintenance_new() -> Any:
    form, saved = _maintenance_form(None)
    if saved is not None:
        flash("Maintenance annoncée : les référents des communes adhérentes sont prévenus.", "success")
        return redirect(url_for("status.manage"), code=303)
    return render_template("status/maintenance_form.html", form=form, maintenance=None), \
        422 if request.method == "POST" else 200


@bp.route("/gestion/maintenances/<int:maintenance_id>", methods=["GET", "POST"])
def maintenance_edit(maintenance_id: int) -> Any:
    m = db.session.get(Maintenance, maintenance_id) or abort(404)
    form, saved = _maintenance_form(m)
    if saved is not None:
        flash("Maintenance modifiée : les référents des communes adhérentes sont prévenus.", "success")
        return redirect(url_for("status.manage"), code=303)
    return render_template("status/maintenance_form.html", form=form, maintenance=m), \
        422 if request.method == "POST" else 200


@bp.post("/gestion/maintenances/<int:maintenance_id>/annuler")
def maintenance_cancel(maintenance_id: int) -> Any:
    m = db.session.get(Maintenance, maintenance_id) or abort(404)
    try:
        ops.cancel_maintenance(current_user, now_utc(), m)  # type: ignore[arg-type]
        db.session.commit()
    except SauError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Maintenance annulée : les référents des communes adhérentes sont prévenus.", "success")
    return redirect(url_for("status.manage"), code=303)


# --- display helpers -----------------------------------------------------------------------------------------

MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def percent(ratio: float, digits: int = 2) -> str:
    return f"{ratio * 100:.{digits}f}".replace(".", ",") + " %"


def duration(value: Any) -> str:
    """A timedelta in French: "1 h 05 min 12 s", "43 min 49 s", "0 s"; negative with a minus sign."""
    seconds = round(value.total_seconds())
    sign, seconds = ("−" if seconds < 0 else ""), abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h} h {m:02d} min {s:02d} s"
    if m:
        return f"{sign}{m} min {s:02d} s"
    return f"{sign}{s} s"


def month_label(value: Any) -> str:
    return f"{MONTHS[value.month - 1]} {value.year}"


def day_label(value: Any) -> str:
    return f"{DAYS[value.weekday()]} {value.day} {MONTHS[value.month - 1]} {value.year}"


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"percent": percent, "duration": duration, "month_label": month_label, "day_label": day_label}
