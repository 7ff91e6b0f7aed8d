"""API tokens for machine clients: created by an admin and shown once, stored hashed, Bearer accepted for
POST /api/v1/requests and the agent endpoints of its own organisation only, scoped, revocable (then 401),
last use recorded."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from tests.conftest import csrf_token

TOKEN_RE = re.compile(r'id="nouveau-jeton" type="text" readonly value="(sau_[A-Za-z0-9_-]+)"')


def create_via_admin(app: Flask, login_as, organisation: str, name: str, scopes: list[str]) -> str:
    admin = login_as("admin")
    page = admin.post("/admin/jetons", data={"csrf_token": csrf_token(admin, "/admin/jetons"),
                                             "organisation": organisation, "name": name, "scopes": scopes})
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    assert page.headers["Cache-Control"] == "no-store"
    match = TOKEN_RE.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)
    secret = match.group(1)
    listing = admin.get("/admin/jetons").get_data(as_text=True)
    assert name in listing and secret not in listing  # shown once
    assert secret[:12] in listing
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _token_row(app: Flask, name: str):
    from sau.auth.models import ApiToken
    from sau.extensions import db

    with app.app_context():
        token = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
        db.session.expunge(token)
        return token


def test_token_lifecycle(app: Flask, login_as, make_request, clock) -> None:
    secret = create_via_admin(app, login_as, "69081", "GRU Écully", ["requests:write", "tickets:read", "tickets:write"])
    row = _token_row(app, "GRU Écully")
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.token_hash, row.prefix) and len(secret) >= 40
    assert row.last_used_at is None

    client = app.test_client()
    ecully = make_request(commune="69081")
    tassin = make_request(commune="69244")
    # Its organisation's tickets: listed, read, changed.
    listed = client.get("/api/v1/tickets", headers=bearer(secret))
    assert listed.status_code == 200, listed.get_data(as_text=True)
    refs = {t["reference"] for t in listed.get_json()["tickets"]}
    assert ecully in refs and tassin not in refs
    assert client.get(f"/api/v1/requests/{ecully}", headers=bearer(secret)).status_code == 200
    changed = client.post(f"/api/v1/tickets/{ecully}/priority", json={"priority": "majeur"}, headers=bearer(secret))
    assert changed.status_code == 200, changed.get_data(as_text=True)
    # Another organisation's: neither read nor changed.
    assert client.get(f"/api/v1/requests/{tassin}", headers=bearer(secret)).status_code in (403, 404)
    assert client.post(f"/api/v1/tickets/{tassin}/priority", json={"priority": "majeur"},
                       headers=bearer(secret)).status_code in (403, 404)
    # A help request created by the connector.
    created = client.post("/api/v1/requests", headers=bearer(secret), json={
        "service": "toodego", "category": "teleservice-communal", "commune": "69081",
        "subject": "Demande relayée par la GRU", "description": "Transmise par le connecteur de la commune."})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert "Set-Cookie" not in created.headers  # a token never opens a session
    assert _token_row(app, "GRU Écully").last_used_at == clock.now()

    clock.advance(timedelta(minutes=5))
    assert client.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    assert _token_row(app, "GRU Écully").last_used_at == clock.now()

    # Revoked: 401 everywhere, even where anonymous calls are allowed.
    admin = login_as("admin")
    revoked = admin.post(f"/admin/jetons/{row.id}/revoquer", data={"csrf_token": csrf_token(admin, "/admin/jetons")})
    assert revoked.status_code == 303
    for method, path, body in (("GET", "/api/v1/me", None), ("GET", "/api/v1/tickets", None),
                               ("POST", "/api/v1/requests", {"service": "toodego", "subject": "x",
                                                             "description": "y", "email": "a@example.org"})):
        response = client.open(path, method=method, json=body, headers=bearer(secret))
        assert response.status_code == 401, (path, response.get_data(as_text=True))
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert "invalid_token" in response.headers["WWW-Authenticate"]

    with app.app_context():
        from sau.admin.models import AuditEvent
        from sau.extensions import db

        actions = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.object_type == "api_token")
                                     .order_by(AuditEvent.id)).all()
        assert actions == ["api_token.created", "api_token.revoked"]


def test_scopes_limit_a_token(app: Flask, login_as, make_request) -> None:
    secret = create_via_admin(app, login_as, "69081", "Lecture seule", ["tickets:read"])
    client = app.test_client()
    ref = make_request(commune="69081")
    assert client.get(f"/api/v1/requests/{ref}", headers=bearer(secret)).status_code == 200
    denied = client.post(f"/api/v1/tickets/{ref}/priority", json={"priority": "majeur"}, headers=bearer(secret))
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "insufficient_scope"
    denied = client.post("/api/v1/requests", headers=bearer(secret), json={
        "service": "toodego", "subject": "x", "description": "y", "commune": "69081"})
    assert denied.status_code == 403


def test_bad_bearer_values_are_401_not_anonymous(app: Flask) -> None:
    client = app.test_client()
    for header in ("Bearer sau_inconnu", "Bearer ", "Basic abc", "Bearer not-a-sau-token"):
        response = client.post("/api/v1/requests", headers={"Authorization": header}, json={
            "service": "toodego", "subject": "x", "description": "y", "email": "a@example.org"})
        assert response.status_code == 401, header


def test_only_admins_manage_tokens(app: Flask, login_as) -> None:
    assert app.test_client().get("/admin/jetons").status_code == 302
    for role in ("usager_a", "agent_ecully", "agent_metropole", "manager_metropole", "referent_ecully"):
        assert login_as(role).get("/admin/jetons").status_code == 403, role
    assert login_as("admin").get("/admin/jetons").status_code == 200


def test_creation_form_errors(app: Flask, login_as) -> None:
    admin = login_as("admin")
    page = admin.post("/admin/jetons", data={"csrf_token": csrf_token(admin, "/admin/jetons"),
                                             "organisation": "69081", "name": "", "scopes": []})
    assert page.status_code == 422
    assert "Donnez un nom au jeton" in page.get_data(as_text=True)
