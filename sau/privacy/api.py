"""The deleted-accounts API (Toodego annex § 8), in /api/v1 beside the rest of the JSON API.

GET  /api/v1/deleted-accounts?since=<ISO 8601>[&limit=][&after=] — the (issuer, sub, deleted_at) of the accounts
     erased here since a date, oldest first, by pages (`next` gives the following page). Scope `accounts:read`.
POST /api/v1/deleted-accounts — [{"issuer", "sub"}] (or {"accounts": [...]}): accounts GrandLyon Connect deleted;
     the matching local accounts are erased. Idempotent (reporting again erases nothing more; the Idempotency-Key
     header is honoured too). Scope `accounts:write`, Métropole tokens only.
Errors are JSON `{"error": {...}}`: 401 without credentials, 403 without the scope or the right, 422 bad input.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from flask_login import current_user

from sau.api.idempotency import idempotent
from sau.api.views import Unauthorized, UnsupportedMediaType
from sau.auth import policy
from sau.auth.models import User
from sau.clock import now_utc
from sau.errors import PermissionDenied, ValidationFailed
from sau.extensions import csrf, db
from sau.privacy.deleted_accounts import apply_reported, list_deleted, normalise_pairs, parse_since
from sau.privacy.models import SOURCE_GLC_API

api_bp = Blueprint("privacy_api", __name__, url_prefix="/api/v1")
csrf.exempt(api_bp)  # JSON only (a cross-site form cannot send application/json), as the rest of /api/v1

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _caller() -> User:
    if not current_user.is_authenticated:
        raise Unauthorized("Authentification requise : jeton d'API (Authorization: Bearer …).")
    return current_user  # type: ignore[return-value]


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed.for_fields({name: "Nombre entier attendu."}) from None
    if not low <= value <= high:
        raise ValidationFailed.for_fields({name: f"Entre {low} et {high}."})
    return value


@api_bp.get("/deleted-accounts")
def deleted_accounts() -> Any:
    user = _caller()
    if not policy.can_read_deleted_accounts(user, g.get("api_token")):
        raise PermissionDenied("Réservé aux jetons ayant l'autorisation « accounts:read » et aux administrateurs.")
    since = parse_since(request.args.get("since"))
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
    after = _int_arg("after", None, 1, 2**63 - 1)
    page = list_deleted(since, limit=limit, after=after)
    return jsonify({
        "since": since.isoformat(),
        "deleted_accounts": [{"issuer": r.issuer, "sub": r.subject, "deleted_at": r.deleted_at.isoformat()}
                             for r in page.items],
        "next": url_for("privacy_api.deleted_accounts", since=request.args.get("since"), limit=limit,
                        after=page.next_after) if page.next_after is not None else None,
    })


def _reported_items() -> list[dict[str, Any]]:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Le corps de la requête doit être du JSON (Content-Type: application/json).")
    raw = request.get_data(cache=True)
    if len(raw) > max(int(current_app.config["MAX_JSON_BYTES"]), 2 * 1024 * 1024):
        raise ValidationFailed.for_fields({"body": "Corps trop volumineux : envoyez la liste en plusieurs fois."})
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed.for_fields({"body": f"JSON invalide : {exc}."}) from None
    if isinstance(data, dict):
        data = data.get("accounts")
    if not isinstance(data, list) or not data:
        raise ValidationFailed.for_fields({"accounts": "Une liste non vide [{\"issuer\": …, \"sub\": …}] est attendue."})
    return data


@api_bp.post("/deleted-accounts")
@idempotent
def report_deleted_accounts() -> Any:
    user = _caller()
    if not policy.can_report_deleted_accounts(user, g.get("api_token")):
        raise PermissionDenied("Réservé aux jetons de la Métropole ayant l'autorisation « accounts:write » "
                               "et aux administrateurs.")
    pairs = normalise_pairs(_reported_items())
    result = apply_reported(pairs, now_utc(), source=SOURCE_GLC_API, actor=user)
    db.session.commit()
    return jsonify({"reported": result.reported, "erased": result.erased, "unknown": result.unknown})
