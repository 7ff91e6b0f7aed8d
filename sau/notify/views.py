"""The bell (unread count in the header), the in-app list with mark-as-read, the preferences page linked from
every e-mail, and for Métropole admins: the dead-letter list with retry, and the organisations' webhook
endpoints (create with a secret shown once, disable / enable, rotate the secret) with their delivery log."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, widgets
from wtforms.validators import InputRequired

from sau.auth import policy
from sau.clock import now_utc
from sau.errors import SauError
from sau.extensions import db
from sau.notify import operations as ops
from sau.notify.models import PREF_EMAIL, PREF_INAPP, WebhookEndpoint
from sau.orgs.models import Organisation

bp = Blueprint("notify", __name__, url_prefix="/notifications")
admin_bp = Blueprint("notify_admin", __name__, url_prefix="/admin-notifications")


@bp.app_context_processor
def bell() -> dict[str, Any]:
    if not current_user.is_authenticated:
        return {"notifications_unread": 0}
    return {"notifications_unread": ops.unread_count(current_user)}


@bp.route("")
@login_required
def inbox() -> Any:
    return render_template("notify/list.html", notifications=ops.inbox(current_user))


@bp.route("/<int:notification_id>/lue", methods=["POST"])
@login_required
def mark_read(notification_id: int) -> Any:
    ops.mark_read(current_user, notification_id, now_utc())
    db.session.commit()
    return redirect(url_for("notify.inbox"))


@bp.route("/tout-lire", methods=["POST"])
@login_required
def mark_all_read() -> Any:
    count = ops.mark_read(current_user, None, now_utc())
    db.session.commit()
    flash(f"{count} notification(s) marquée(s) comme lue(s).", "success")
    return redirect(url_for("notify.inbox"))


@bp.route("/preferences", methods=["GET", "POST"])
@login_required
def preferences() -> Any:
    if request.method == "POST":
        choices = {kind: request.form.get(f"pref-{kind}", PREF_EMAIL) for kind in ops.KIND_LABELS}
        try:
            ops.set_preferences(current_user, choices, now_utc())
        except SauError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash("Vos préférences de notification sont enregistrées.", "success")
            return redirect(url_for("notify.preferences"))
    return render_template("notify/preferences.html", prefs=ops.preferences_of(current_user),
                           labels=ops.KIND_LABELS, PREF_EMAIL=PREF_EMAIL, PREF_INAPP=PREF_INAPP)


@admin_bp.before_request
@login_required
def _admins_only() -> Any:
    if not policy.is_admin(current_user):
        abort(403)
    return None


@admin_bp.route("")
def dead_letters() -> Any:
    return render_template("notify/admin.html", notifications=ops.dead_letters())


@admin_bp.route("/<int:notification_id>/relancer", methods=["POST"])
def retry(notification_id: int) -> Any:
    ops.retry(current_user, notification_id, now_utc())
    db.session.commit()
    flash("La notification est remise dans la file d'envoi.", "success")
    return redirect(url_for("notify_admin.dead_letters"))


# --- Webhook endpoints of the organisations' connectors ----------------------------------------------------

class WebhookEndpointForm(FlaskForm):
    organisation = SelectField("Organisation", validators=[InputRequired(message="Choisissez une organisation.")])
    url = StringField("Adresse de réception (https://…)",
                      validators=[InputRequired(message="Indiquez l'adresse de réception.")])
    events = SelectMultipleField(
        "Événements envoyés", choices=list(ops.WEBHOOK_EVENTS.items()),
        option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False),
        validators=[InputRequired(message="Choisissez au moins un événement.")])


@admin_bp.after_request
def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"  # the webhook pages may show a secret
    return response


def _endpoint_form() -> WebhookEndpointForm:
    form = WebhookEndpointForm()
    orgs = db.session.scalars(sa.select(Organisation).where(Organisation.is_active.is_(True))
                              .order_by(Organisation.kind.desc(), Organisation.name)).all()
    form.organisation.choices = [("", "— Choisissez —")] + [(o.code, o.name) for o in orgs]
    return form


def _webhooks_page(form: WebhookEndpointForm, *, secret_for: WebhookEndpoint | None = None,
                   secret: str | None = None, status: int = 200) -> Any:
    return render_template("notify/webhooks.html", form=form, endpoints=ops.webhook_endpoints(),
                           secret_for=secret_for, secret=secret, event_labels=ops.WEBHOOK_EVENTS), status


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@admin_bp.get("/webhooks")
def webhooks() -> Any:
    return _webhooks_page(_endpoint_form())


@admin_bp.post("/webhooks")
def webhook_create() -> Any:
    form = _endpoint_form()
    if not form.validate_on_submit():
        return _webhooks_page(form, status=422)
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == form.organisation.data))
    if org is None:
        abort(400)
    try:
        endpoint = ops.create_webhook_endpoint(current_user, org, form.url.data or "",  # type: ignore[arg-type]
                                               list(form.events.data or []), now_utc())
    except SauError as exc:
        db.session.rollback()
        for name, message in (exc.fields or {}).items():
            if name in form:
                form[name].errors = [message]
        return _webhooks_page(form, status=exc.status)
    db.session.commit()
    # Rendered, not redirected: the secret must not travel through the session (flash) or a URL.
    return _webhooks_page(_endpoint_form(), secret_for=endpoint, secret=endpoint.secret)


def _posted_form_or_400() -> None:
    if not FlaskForm().validate_on_submit():
        abort(400)


@admin_bp.post("/webhooks/<int:endpoint_id>/desactiver")
def webhook_disable(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    _posted_form_or_400()
    ops.set_webhook_endpoint_active(current_user, endpoint, False, now_utc())  # type: ignore[arg-type]
    db.session.commit()
    flash(f"Le point de réception {endpoint.url} est désactivé : plus aucun envoi.", "success")
    return redirect(url_for("notify_admin.webhooks"), code=303)


@admin_bp.post("/webhooks/<int:endpoint_id>/activer")
def webhook_enable(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    _posted_form_or_400()
    ops.set_webhook_endpoint_active(current_user, endpoint, True, now_utc())  # type: ignore[arg-type]
    db.session.commit()
    flash(f"Le point de réception {endpoint.url} est réactivé.", "success")
    return redirect(url_for("notify_admin.webhooks"), code=303)


@admin_bp.post("/webhooks/<int:endpoint_id>/secret")
def webhook_rotate_secret(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    _posted_form_or_400()
    secret = ops.rotate_webhook_secret(current_user, endpoint, now_utc())  # type: ignore[arg-type]
    db.session.commit()
    return _webhooks_page(_endpoint_form(), secret_for=endpoint, secret=secret)


@admin_bp.get("/webhooks/<int:endpoint_id>")
def webhook_log(endpoint_id: int) -> Any:
    endpoint = _endpoint_or_404(endpoint_id)
    return render_template("notify/webhook_log.html", endpoint=endpoint, deliveries=ops.endpoint_deliveries(endpoint),
                           event_labels=ops.WEBHOOK_EVENTS)
