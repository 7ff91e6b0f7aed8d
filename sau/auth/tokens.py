"""API tokens for machine clients (a Connecté commune's GRU connector, issue 4 point 4).

A token belongs to one organisation and acts through its own technical account, an agent of that
organisation: the one policy layer (sau.auth.policy) then decides what it may see and change, exactly as for
a person; scopes narrow it further. The secret is shown once; only its SHA-256 is stored. Bearer
authentication for /api/v1 is resolved here, in one place, before any view runs: an invalid or revoked
token is a 401 (never silently anonymous), a missing scope a 403.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, g, request

from sau.auth.models import API_SCOPES, ROLE_AGENT, ApiToken, Membership, User
from sau.clock import now_utc
from sau.errors import ValidationFailed, WorkflowError
from sau.extensions import db
from sau.orgs.models import Organisation

TOKEN_PREFIX = "sau_"
# last_used_at is written at most this often, not on every call.
LAST_USED_GRANULARITY = timedelta(minutes=1)
# Endpoints a token may call without any scope (who am I, the public catalogue and the API description).
UNSCOPED_ENDPOINTS = frozenset({"api.me", "api.services", "api.openapi"})
# The deleted-accounts API (annex Toodego § 8) has its own scopes: accounts:read, accounts:write.
DELETED_ACCOUNTS_ENDPOINTS = frozenset({"privacy_api.deleted_accounts", "privacy_api.report_deleted_accounts"})


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass
class CreatedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_token(actor: User, organisation: Organisation, name: str, scopes: list[str], now: datetime) -> CreatedToken:
    """Create a token and its technical account (flushed, audited). Raises ValidationFailed."""
    from sau.admin.operations import record

    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 100:
        errors["name"] = "Donnez un nom au jeton (100 caractères au plus)."
    unknown = [s for s in scopes if s not in API_SCOPES]
    if not scopes or unknown:
        errors["scopes"] = "Choisissez au moins une autorisation parmi celles proposées."
    if errors:
        raise ValidationFailed.for_fields(errors)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    account = User(given_name=name[:100], family_name="(jeton API)", email=None, created_at=now,
                   is_active_account=True)
    db.session.add(account)
    db.session.flush()
    db.session.add(Membership(user_id=account.id, organisation_id=organisation.id, role=ROLE_AGENT, created_at=now))
    token = ApiToken(organisation_id=organisation.id, user_id=account.id, name=name, prefix=secret[:12],
                     token_hash=hash_secret(secret), scopes=" ".join(sorted(set(scopes))), created_at=now,
                     created_by_id=actor.id)
    db.session.add(token)
    db.session.flush()
    record(actor, now, "api_token.created", "api_token", token.id, f"{name} — {organisation.name}",
           after={"name": name, "organisation": organisation.code, "scopes": token.scopes, "prefix": token.prefix})
    return CreatedToken(token=token, secret=secret)


def revoke_token(actor: User, token: ApiToken, now: datetime) -> None:
    """Revoke a token for good (its technical account is deactivated; audited). Raises WorkflowError if it
    already is."""
    from sau.admin.operations import record

    if token.revoked_at is not None:
        raise WorkflowError("Ce jeton est déjà révoqué.")
    token.revoked_at = now
    token.user.is_active_account = False
    record(actor, now, "api_token.revoked", "api_token", token.id, f"{token.name} — {token.organisation.name}",
           before={"revoked": False}, after={"revoked": True})
    db.session.flush()


def find_token(secret: str) -> ApiToken | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    return db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))


def required_scope(endpoint: str | None, method: str) -> str | None:
    """The scope an API endpoint needs from a token (None: any valid token)."""
    if endpoint in UNSCOPED_ENDPOINTS:
        return None
    if endpoint == "api.create_request":
        return "requests:write"
    if endpoint in DELETED_ACCOUNTS_ENDPOINTS:
        return "accounts:read" if method in ("GET", "HEAD", "OPTIONS") else "accounts:write"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "tickets:read"
    return "tickets:write"


def _refuse(status: int, code: str, message: str) -> Response:
    from sau.web import json_error

    response = json_error(status, code, message)
    error = "invalid_token" if status == 401 else "insufficient_scope"
    response.headers["WWW-Authenticate"] = f'Bearer realm="sau", error="{error}"'
    return response


def authenticate_bearer() -> Any:
    """before_request: resolve `Authorization: Bearer …` on /api/ into the token's account."""
    header = request.headers.get("Authorization")
    if not header or not request.path.startswith("/api/"):
        return None
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return _refuse(401, "unauthorized", "En-tête Authorization invalide : « Bearer <jeton> » attendu.")
    token = find_token(secret)
    if token is None or token.revoked_at is not None or not token.user.is_active_account:
        return _refuse(401, "unauthorized", "Jeton d'API invalide ou révoqué.")
    scope = required_scope(request.endpoint, request.method)
    if scope is not None and scope not in token.scope_set:
        return _refuse(403, "insufficient_scope", f"Ce jeton n'a pas l'autorisation « {scope} ».")
    now = now_utc()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        token.last_used_at = now
        db.session.commit()
    # Flask-Login reads the current user from g: the token's account for this request only (no cookie).
    g._login_user = token.user
    g.api_token = token
    g.pop("principal", None)
    return None


def init_app(app: Flask) -> None:
    app.before_request(authenticate_bearer)
