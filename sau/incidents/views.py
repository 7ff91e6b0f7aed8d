"""Incident tickets and security alerts of a commune: HTML pages under /incidents and
`POST /api/v1/incidents` (same JSON conventions as `POST /api/v1/requests`)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from sau.api.idempotency import idempotent
from sau.api.views import _require_user, parse, serialize
from sau.auth import policy
from sau.clock import now_utc
from sau.errors import PermissionDenied, ValidationFailed
from sau.extensions import csrf, db
from sau.incidents import operations as iops
from sau.incidents.forms import IncidentForm, SecurityAlertForm
from sau.incidents.models import ALERT_DEADLINE, SecurityAlert
from sau.incidents.schemas import NewIncidentBody
from sau.tickets.models import KIND_INCIDENT, Ticket

bp = Blueprint("incidents", __name__, url_prefix="/incidents")
api_bp = Blueprint("incidents_api", __name__, url_prefix="/api/v1")
csrf.exempt(api_bp)


@bp.app_template_global()
def incident_subscription(ticket: Ticket) -> Any:
    """For the agent ticket page: the commune's subscription (and offer) to the incident's service."""
    return iops.subscription_for(ticket) if ticket.kind == KIND_INCIDENT else None


@bp.app_template_global()
def security_alert_of(ticket: Ticket) -> SecurityAlert | None:
    return iops.alert_of(ticket) if ticket.kind == KIND_INCIDENT else None


def _require_opener() -> Any:
    if not policy.can_open_incident(current_user):  # type: ignore[arg-type]
        abort(403)
    return current_user


def _fill(form: IncidentForm, communes: list[Any], now: Any) -> dict[str, list[Any]]:
    form.commune.choices = [(c.code, c.name) for c in communes]
    subscriptions = {c.code: iops.subscriptions_of(c, now) for c in communes}
    services = {}
    for subs in subscriptions.values():
        for sub in subs:
            services[sub.service.code] = sub.service.name
    form.service.choices = [("", "— Choisissez —")] + sorted(services.items(), key=lambda kv: kv[1])
    return subscriptions


def _apply_errors(form: IncidentForm, exc: ValidationFailed) -> None:
    for name, message in exc.fields.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [message]
        else:
            form.subject.errors = [*form.subject.errors, message]


def _form_page(form_cls: type[IncidentForm], template: str, security: bool) -> Any:
    user = _require_opener()
    now = now_utc()
    communes = iops.communes_of(user)
    form = form_cls()
    subscriptions = _fill(form, communes, now)
    if request.method == "GET" and communes:
        form.commune.data = communes[0].code
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():  # the CSRF token; the values are checked by the operation
            new = iops.NewIncident(form.commune.data or None, form.service.data or None, form.subject.data or "",
                                   form.description.data or "")
            try:
                if security:
                    assert isinstance(form, SecurityAlertForm)
                    alert = iops.report_security_alert(user, new, iops.parse_detected_at(form.detected_at.data), now)
                    ticket = alert.ticket
                else:
                    ticket = iops.open_incident(user, new, now)
            except ValidationFailed as exc:
                db.session.rollback()
                _apply_errors(form, exc)
            except PermissionDenied:
                db.session.rollback()
                abort(403)
            else:
                db.session.commit()
                return redirect(url_for("incidents.detail", reference=ticket.reference, cree=1), code=303)
    return render_template(template, form=form, communes=communes, subscriptions=subscriptions,
                           deadline_hours=int(ALERT_DEADLINE.total_seconds() // 3600)), status


@bp.route("/nouveau", methods=["GET", "POST"])
@login_required
def new() -> Any:
    return _form_page(IncidentForm, "incidents/form.html", security=False)


@bp.route("/alerte-securite", methods=["GET", "POST"])
@login_required
def security_alert() -> Any:
    return _form_page(SecurityAlertForm, "incidents/alert_form.html", security=True)


@bp.route("")
@login_required
def index() -> Any:
    user = _require_opener()
    tickets = iops.incidents_for(user)
    return render_template("incidents/list.html", tickets=tickets, alerts=iops.alerts_by_ticket(tickets))


@bp.route("/<reference>")
@login_required
def detail(reference: str) -> Any:
    ticket = iops.visible_incident(current_user, reference)  # type: ignore[arg-type]
    return render_template("incidents/detail.html", ticket=ticket, subscription=iops.subscription_for(ticket),
                           alert=iops.alert_of(ticket), created=request.args.get("cree") == "1",
                           staff=policy.can_view_as_staff(current_user, ticket))  # type: ignore[arg-type]


@api_bp.post("/incidents")
@idempotent
def create_incident() -> Any:
    user = _require_user()
    if not policy.can_open_incident(user):
        raise PermissionDenied("Seuls les référents et agents d'une commune peuvent signaler un incident.")
    body = parse(NewIncidentBody)
    now = now_utc()
    new = iops.NewIncident(body.commune, body.service, body.subject, body.description)
    if body.detected_at is not None or body.security_alert:
        alert = iops.report_security_alert(user, new, iops.parse_detected_at(body.detected_at), now)
        ticket = alert.ticket
    else:
        ticket = iops.open_incident(user, new, now)
    db.session.commit()
    data = serialize(ticket, staff=False)
    data["url"] = url_for("incidents.detail", reference=ticket.reference)
    alert_row = iops.alert_of(ticket)
    if alert_row is not None:
        data["security_alert"] = {"detected_at": alert_row.detected_at.isoformat(),
                                  "reported_at": alert_row.reported_at.isoformat(),
                                  "within_8h": alert_row.within_deadline}
    response = jsonify(data)
    response.status_code = 201
    response.headers["Location"] = url_for("incidents.detail", reference=ticket.reference)
    response.headers["ETag"] = f'"{ticket.version}"'
    return response
