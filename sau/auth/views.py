"""Sign-in and sign-out (contract in DESIGN.md, "Sign-in routes").

`/auth/login` starts the OpenID Connect flow when a provider is configured (`?fournisseur=agents` picks the
agents' provider), else the development login (pick a demo account) when DEV_LOGIN is on — which the
production configuration refuses (config.validate). `/auth/callback` finishes the flow, `/auth/logout` signs
out through the provider (RP-initiated: GET asks for confirmation, POST does it), and
`/auth/frontchannel-logout?iss=…&sid=…` ends the matching sessions.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from wtforms import HiddenField, SelectField
from wtforms.validators import InputRequired

from sau.auth import oidc
from sau.auth import sessions as auth_sessions
from sau.auth.models import Identity, User
from sau.clock import now_utc
from sau.extensions import db, limiter
from sau.forms import FrenchForm as FlaskForm

bp = Blueprint("auth", __name__, url_prefix="/auth")
DEV_ISSUER = "urn:sau:dev"
OIDC_SESSION = "oidc"
LOGOUT_STATE = "logout_state"


class DevLoginForm(FlaskForm):
    user = SelectField("Compte de démonstration", validators=[InputRequired(message="Choisissez un compte.")])
    next = HiddenField()


class LogoutForm(FlaskForm):
    pass


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def start_session(user: User, issuer: str = DEV_ISSUER, sid: str | None = None,
                  extra: dict[str, Any] | None = None) -> None:
    """A new session at login (no fixation); see sau.auth.sessions.start_session."""
    auth_sessions.start_session(user, issuer=issuer, sid=sid, extra=extra)


def _sign_in_limit() -> str:
    return str(current_app.config["RATELIMIT_SIGN_IN"])


def _external(endpoint: str) -> str:
    """Absolute URL under PUBLIC_URL (what is registered at the provider), not the request's host."""
    return str(current_app.config["PUBLIC_URL"]).rstrip("/") + url_for(endpoint)


def _error_page(exc: oidc.OidcError) -> Any:
    current_app.logger.warning("OIDC sign-in refused: %s %s", exc.message, exc.detail)
    db.session.rollback()
    return render_template("auth/error.html", message=exc.message, status=exc.status), exc.status


@bp.route("/login")
@limiter.limit(_sign_in_limit)
def login() -> Any:
    next_url = safe_next(request.args.get("next"))
    configured = oidc.providers()
    if configured:
        name = request.args.get("fournisseur") or ("usagers" if "usagers" in configured else next(iter(configured)))
        provider = configured.get(name)
        if provider is None:
            abort(404)
        try:
            return redirect(oidc.begin(provider, _external("auth.callback"), next_url))
        except oidc.OidcError as exc:
            return _error_page(exc)
    if current_app.config.get("DEV_LOGIN"):
        return redirect(url_for("auth.dev_login", next=next_url))
    abort(503)


@bp.route("/callback")
@limiter.limit(_sign_in_limit)
def callback() -> Any:
    try:
        result = oidc.complete(request.args.to_dict())
    except oidc.OidcError as exc:
        return _error_page(exc)
    user = _user_for(result)
    if not user.is_active:
        return _error_page(oidc.OidcError("Ce compte est désactivé : contactez le support.", 403))
    start_session(user, issuer=result.provider.issuer, sid=result.sid,
                  extra={OIDC_SESSION: {"provider": result.provider.name, "id_token": result.id_token}})
    db.session.commit()
    flash(f"Vous êtes connecté en tant que {user.display_name}.", "success")
    return redirect(safe_next(result.next) or url_for("main.index"), code=303)


def _user_for(result: oidc.SignIn) -> User:
    """The user keyed by (issuer, sub) — never matched by e-mail (sub may be pairwise) — created at first
    sign-in; names, e-mail and marks refreshed from the claims at each sign-in."""
    issuer, subject = result.provider.issuer, result.subject
    identity = db.session.scalar(sa.select(Identity).where(Identity.issuer == issuer, Identity.subject == subject))
    now = now_utc()
    claims = result.claims
    if identity is None:
        user = User(created_at=now, email=None)
        db.session.add(user)
        db.session.flush()
        db.session.add(Identity(user_id=user.id, issuer=issuer, subject=subject, created_at=now))
    else:
        user = identity.user

    def text(name: str, limit: int) -> str | None:
        value = claims.get(name)
        return value.strip()[:limit] if isinstance(value, str) and value.strip() else None

    user.given_name = text("given_name", 100) or user.given_name or ""
    user.family_name = text("family_name", 100) or user.family_name or ""
    email = text("email", 254)
    if email:
        user.email = email
        user.is_email_verified = claims.get("email_verified") is True
    user.is_identity_certified = oidc.certified(claims)
    db.session.flush()
    return user


@bp.route("/dev-login", methods=["GET", "POST"])
@limiter.limit(_sign_in_limit, methods=["POST"])
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
    """GET asks for confirmation (a link must not sign anyone out); POST (CSRF-checked) ends our session and,
    for an OpenID Connect session, sends the browser to the provider's end-session endpoint with
    `id_token_hint`, `post_logout_redirect_uri` and `state`."""
    form = LogoutForm()
    if request.method == "GET":
        if not current_user.is_authenticated:
            return redirect(url_for("main.index"))
        return render_template("auth/logout.html", form=form)
    if not form.validate_on_submit():
        abort(400)
    info = session.get(OIDC_SESSION) if current_user.is_authenticated else None
    auth_sessions.end_session()
    db.session.commit()
    if isinstance(info, dict):
        provider = oidc.providers().get(str(info.get("provider")))
        if provider is not None:
            state = secrets.token_urlsafe(24)
            url = oidc.logout_url(provider, info.get("id_token"), _external("auth.logged_out"), state)
            if url:
                session[LOGOUT_STATE] = state
                return redirect(url, code=303)
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("main.index"), code=303)


@bp.route("/logged-out")
def logged_out() -> Any:
    """Where the provider sends the browser back after RP-initiated logout."""
    expected = session.pop(LOGOUT_STATE, None)
    received = request.args.get("state") or ""
    if expected and hmac.compare_digest(str(expected).encode(), received.encode()):
        flash("Vous êtes déconnecté, ici et auprès de votre fournisseur d'identité.", "info")
    else:
        flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("main.index"))


@bp.route("/frontchannel-logout")
def frontchannel_logout() -> Any:
    """Front-channel logout: the provider loads this in a hidden frame; every session of ours opened through
    `iss` with `sid` ends (server side, so it works even when the frame gets no cookie)."""
    issuer, sid = request.args.get("iss") or "", request.args.get("sid") or ""
    provider = oidc.provider_by_issuer(issuer)
    if provider is None or not sid:
        return render_template("auth/error.html", status=400,
                               message="Demande de déconnexion invalide (émetteur ou session inconnus)."), 400
    auth_sessions.end_sessions_by_sid(issuer, sid, now_utc())
    db.session.commit()
    response = current_app.make_response(render_template("auth/frontchannel.html"))
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(provider.issuer))
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self'; frame-ancestors {origin}; base-uri 'none'; form-action 'none'")
    response.headers["Cache-Control"] = "no-store"
    return response
