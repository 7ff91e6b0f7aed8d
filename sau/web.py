"""Web plumbing shared by every blueprint: security headers, error pages and JSON errors, the current
principal, template filters."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, g, jsonify, render_template, request, session
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from sau.auth.policy import Principal
from sau.errors import SauError
from sau.extensions import db, login_manager

PARIS = ZoneInfo("Europe/Paris")
TRACKED_KEY = "tracked_tickets"

# A CSP without 'unsafe-inline': every script and stylesheet is a file served by us.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)

SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
HSTS_HEADER = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")  # Secure cookies only
NO_STORE_HEADER = ("Cache-Control", "no-store")  # API answers and the agents' ticket pages
NO_STORE_ENDPOINTS = frozenset({"agent.queue", "agent.ticket"})

HTTP_MESSAGES = {
    400: "Requête invalide.",
    401: "Authentification requise.",
    403: "Accès refusé.",
    404: "Page introuvable.",
    405: "Méthode non autorisée.",
    409: "Conflit.",
    413: "Le contenu envoyé est trop volumineux.",
    415: "Type de contenu non pris en charge.",
    422: "Données invalides.",
    429: "Trop de requêtes : merci de patienter un instant avant de réessayer.",
    500: "Erreur interne du serveur.",
    503: "Service momentanément indisponible : merci de réessayer dans un instant.",
}
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
              429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}


SLA_LABELS = {
    "sans_engagement": "sans engagement", "dans_les_temps": "dans les temps", "a_risque": "à risque",
    "depasse": "dépassé", "respecte": "respecté", "non_respecte": "non respecté",
}
EVENT_LABELS = {"sla.at_risk": "Échéance SLA bientôt atteinte", "sla.breached": "Échéance SLA dépassée"}


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, unchanged on the wire, minus two per-request costs:

    * the signing serializer is built once per key set (Flask builds a new one, with its signer, for every request
      even without a cookie); it is rebuilt whenever SECRET_KEY or SECRET_KEY_FALLBACKS change;
    * an empty, unmodified session sets no cookie, only `Vary: Cookie` if it was read (Flask's `save_session`
      reads every cookie setting first, then reaches the same conclusion).
    """

    def __init__(self) -> None:
        self._serializer: tuple[tuple[Any, ...], Any] | None = None

    def get_signing_serializer(self, app: Flask) -> Any:
        if not app.secret_key:
            return None
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = self._serializer
        if cached is None or cached[0] != keys:
            cached = self._serializer = (keys, super().get_signing_serializer(app))
        return cached[1]

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:  # nothing to set or delete: what Flask does in that case
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


def current_principal() -> Principal:
    if "principal" not in g:
        user = current_user if current_user.is_authenticated else None
        g.principal = Principal(user=user, tracked_ticket_ids=frozenset(session.get(TRACKED_KEY, [])))
    return g.principal  # type: ignore[no-any-return]


def remember_tracked_ticket(ticket_id: int) -> None:
    tracked = list(session.get(TRACKED_KEY, []))
    if ticket_id not in tracked:
        tracked = (tracked + [ticket_id])[-50:]
        session[TRACKED_KEY] = tracked
    g.pop("principal", None)


def decimal_fr(value: float, places: int = 1) -> str:
    """A number the French way: decimal comma (76,9)."""
    return f"{value:.{places}f}".replace(".", ",")


def paris(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(PARIS).strftime(fmt)


def register_web(app: Flask) -> None:
    app.session_interface = SessionInterface()
    from sau.admin.views import bp as admin_bp
    from sau.agent.views import bp as agent_bp
    from sau.api.views import bp as api_bp
    from sau.auth import sessions as auth_sessions
    from sau.auth import tokens as auth_tokens
    from sau.auth.admin_tokens import bp as admin_tokens_bp
    from sau.auth.views import bp as auth_bp
    from sau.help.views import bp as help_bp
    from sau.incidents.views import api_bp as incidents_api_bp
    from sau.incidents.views import bp as incidents_bp
    from sau.main_views import bp as main_bp
    from sau.notify.views import admin_bp as notify_admin_bp
    from sau.notify.views import bp as notify_bp
    from sau.privacy.admin_views import bp as privacy_admin_bp
    from sau.privacy.api import api_bp as privacy_api_bp
    from sau.privacy.views import bp as privacy_bp
    from sau.reports.activity_views import bp as reports_activity_bp
    from sau.reports.activity_views import opendata_bp
    from sau.reports.views import bp as reports_bp
    from sau.status.views import bp as status_bp
    from sau.usager.views import bp as usager_bp

    app.register_blueprint(privacy_admin_bp)
    for bp in (main_bp, help_bp, usager_bp, agent_bp, admin_bp, admin_tokens_bp, auth_bp, api_bp, notify_bp,
               notify_admin_bp, incidents_bp, incidents_api_bp, status_bp, reports_bp, reports_activity_bp, opendata_bp,
               privacy_bp, privacy_api_bp):
        app.register_blueprint(bp)
    from sau.api import idempotency

    idempotency.init_app(app)  # Idempotency-Key on every POST of /api/v1
    auth_sessions.init_app(app)  # idle and absolute timeouts, front-channel logout
    auth_tokens.init_app(app)  # Bearer tokens on /api/ (after the session check: a token wins)
    from sau import resilience

    resilience.init_app(app)  # database outages: 503 + Retry-After, never for committed work (after the hooks above)

    @login_manager.user_loader
    def load_user(user_id: str) -> Any:
        from sau.auth.models import User

        user = db.session.get(User, int(user_id))
        return user if user is not None and user.is_active else None

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Connectez-vous pour accéder à cette page."
    login_manager.login_message_category = "info"

    @login_manager.unauthorized_handler
    def unauthorized() -> Any:
        from flask import flash, redirect, url_for

        if wants_json():
            return json_error(401, "unauthorized", "Authentification requise.")
        flash("Connectez-vous pour accéder à cette page.", "info")
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))

    @app.after_request
    def security_headers(response: Response) -> Response:
        # Each header is added unless the response already has it (a view may set its own): one pass over the
        # response's headers instead of a scan per header (Headers.setdefault), ~30 µs less per request.
        headers = response.headers
        present = {name.lower() for name, _value in headers}
        wanted = list(SECURITY_HEADERS)
        if app.config.get("SESSION_COOKIE_SECURE"):
            wanted.append(HSTS_HEADER)
        if request.path.startswith("/api/") or request.endpoint in NO_STORE_ENDPOINTS:
            wanted.append(NO_STORE_HEADER)
        headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
        return response

    @app.errorhandler(SauError)
    def sau_error(exc: SauError) -> Any:
        db.session.rollback()
        if wants_json():
            return json_error(exc.status, exc.code, exc.message, exc.fields)
        return render_template("errors/error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        message = "Le formulaire a expiré ou n'est pas valide (jeton de sécurité). Rechargez la page et recommencez."
        if wants_json():
            return json_error(400, "csrf_failed", message)
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = HTTP_MESSAGES.get(status, exc.description or "Erreur.")
        if wants_json():
            response = json_error(status, HTTP_CODES.get(status, "http_error"), message)
        else:
            response = app.make_response((render_template("errors/error.html", status=status, message=message), status))
        if status == 429 or status == 503:
            response.headers["Retry-After"] = "30"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        from sau import resilience

        if resilience.is_database_unavailable(exc):  # PostgreSQL down or restarting: 503 + Retry-After
            try:
                db.session.rollback()
            except Exception:  # the connection is gone; the pool discards it
                app.logger.debug("rollback failed on a lost connection", exc_info=True)
            return resilience.database_error_response(exc, wants_json())
        db.session.rollback()
        app.logger.exception("unhandled error")
        if wants_json():
            return json_error(500, HTTP_CODES[500], HTTP_MESSAGES[500])
        return render_template("errors/error.html", status=500, message=HTTP_MESSAGES[500]), 500

    app.jinja_env.filters["paris"] = paris
    app.jinja_env.filters["decimal_fr"] = decimal_fr
    app.jinja_env.globals["merge_attrs"] = lambda a, b: {**a, **b}
    from sau.tickets.models import PRIORITIES, STATUSES

    app.jinja_env.globals.update(
        status_labels=STATUSES,
        priority_labels=PRIORITIES,
        sla_labels=SLA_LABELS,
        event_labels=EVENT_LABELS,
    )

    @app.context_processor
    def inject() -> dict[str, Any]:
        from sau.auth import policy

        user = current_user if current_user.is_authenticated else None
        return {
            "is_staff": policy.is_staff(user),
            "is_admin": policy.is_admin(user),
            "can_manage_faq": policy.can_manage_faq(user),
            "can_view_reports": policy.can_view_reports(user),
            "can_open_incident": policy.can_open_incident(user),
            "dev_login_enabled": app.config.get("DEV_LOGIN", False),
        }
