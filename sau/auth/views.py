"""Sign-in and sign-out. The development login (pick a demo account) exists only when DEV_LOGIN is on,
which the production configuration refuses (see config.validate). OpenID Connect comes with the sign-in
issue and plugs in at /auth/login."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.validators import InputRequired

from sau.auth.models import Identity, User
from sau.clock import now_utc
from sau.extensions import db

bp = Blueprint("auth", __name__, url_prefix="/auth")
DEV_ISSUER = "urn:sau:dev"


class DevLoginForm(FlaskForm):
    user = SelectField("Compte de démonstration", validators=[InputRequired(message="Choisissez un compte.")])
    next = HiddenField()


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def start_session(user: User) -> None:
    """A new session at login (no fixation): clear what was there, keep tracked anonymous requests."""
    tracked = session.get("tracked_tickets", [])
    session.clear()
    session["tracked_tickets"] = tracked
    session.permanent = True
    login_user(user)
    user.last_seen_at = now_utc()


@bp.route("/login")
def login() -> Any:
    if current_app.config.get("DEV_LOGIN"):
        return redirect(url_for("auth.dev_login", next=safe_next(request.args.get("next"))))
    abort(503)


@bp.route("/dev-login", methods=["GET", "POST"])
def dev_login() -> Any:
    if not current_app.config.get("DEV_LOGIN"):
        abort(404)
    demo_users = db.session.scalars(
        sa.select(User).join(Identity).where(Identity.issuer == DEV_ISSUER).order_by(User.id)
    ).all()
    form = DevLoginForm()
    form.user.choices = [(str(u.id), _describe(u)) for u in demo_users]
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if form.validate_on_submit():
        user = db.session.get(User, int(form.user.data))
        if user is None or user not in demo_users:
            abort(400)
        start_session(user)
        db.session.commit()
        flash(f"Vous êtes connecté en tant que {user.display_name}.", "success")
        return redirect(safe_next(form.next.data) or url_for("main.index"), code=303)
    return render_template("auth/dev_login.html", form=form, users=demo_users)


def _describe(user: User) -> str:
    roles = ", ".join(f"{m.role_label} — {m.organisation.name}" for m in user.memberships)
    return f"{user.display_name} ({roles or 'usager'})"


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    if current_user.is_authenticated:
        logout_user()
    session.clear()
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("main.index"))
