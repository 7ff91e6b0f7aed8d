"""The bell (unread count in the header), the in-app list with mark-as-read, the preferences page linked from
every e-mail, and the admins' dead-letter list with retry."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from sau.auth import policy
from sau.clock import now_utc
from sau.errors import SauError
from sau.extensions import db
from sau.notify import operations as ops
from sau.notify.models import PREF_EMAIL, PREF_INAPP

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
