"""The app refuses unsafe settings at start-up; sessions: new one at sign-in, idle and absolute timeouts,
cookie flags; /auth/login picks OpenID Connect or the development login."""
from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

import config as sau_config
from sau import create_app
from tests.conftest import csrf_token, user_id

GOOD_PROD = {
    "SECRET_KEY": "x" * 48, "DEV_LOGIN": False, "OIDC_ISSUER": "https://moncompte.example/",
    "OIDC_CLIENT_ID": "sau", "OIDC_CLIENT_SECRET": "s" * 40, "SQLALCHEMY_DATABASE_URI": "sqlite://",
    # The limiter is one object shared by every app of the process: keep it off for the test app's sake.
    "RATELIMIT_ENABLED": False,
}


def test_production_settings_that_start() -> None:
    app = create_app("production", GOOD_PROD)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize("change, words", [
    ({"DEV_LOGIN": True}, "DEV_LOGIN"),
    ({"SECRET_KEY": sau_config.BaseConfig.SECRET_KEY}, "SECRET_KEY"),
    ({"SECRET_KEY": "dev-secret-key-change-me"}, "SECRET_KEY"),
    ({"SECRET_KEY": "short-key"}, "SECRET_KEY"),
    ({"OIDC_ISSUER": None}, "OpenID Connect doit être configuré"),
    ({"OIDC_CLIENT_ID": None}, "OpenID Connect doit être configuré"),
    ({"OIDC_CLIENT_SECRET": None}, "OIDC_CLIENT_SECRET"),
    ({"OIDC_ID_TOKEN_ALGS": "none"}, "algorithmes refusés : none"),
    ({"OIDC_ID_TOKEN_ALGS": "HS256,none"}, "algorithmes refusés"),
    ({"OIDC_ID_TOKEN_ALGS": ""}, "vide"),
    ({"OIDC_AGENTS_ISSUER": "https://agents.example/"}, "OIDC_AGENTS_"),
    ({"SESSION_COOKIE_SECURE": False}, "Secure"),
])
def test_production_refuses_to_start(change: dict, words: str) -> None:
    with pytest.raises(sau_config.ConfigError) as info:
        create_app("production", {**GOOD_PROD, **change})
    assert words in str(info.value)


def test_development_refuses_inconsistent_oidc_settings() -> None:
    with pytest.raises(sau_config.ConfigError):
        sau_config.validate({"ENV_NAME": "development", "OIDC_ISSUER": "https://x/", "OIDC_CLIENT_ID": "a",
                             "OIDC_CLIENT_SECRET": "b", "OIDC_ID_TOKEN_ALGS": "none"})


def test_login_without_oidc_uses_the_dev_login_or_is_unavailable(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/auth/login?next=/mes-demandes")
    assert response.status_code == 302 and "/auth/dev-login" in response.headers["Location"]
    app.config["DEV_LOGIN"] = False
    assert client.get("/auth/login").status_code == 503
    assert client.get("/auth/dev-login").status_code == 404


def _dev_sign_in(app: Flask, role: str):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["tracked_tickets"] = [12]
        sess["planted"] = "fixation"
    token = csrf_token(client, "/auth/dev-login")
    response = client.post("/auth/dev-login", data={"csrf_token": token, "user": str(user_id(app, role))})
    assert response.status_code == 303
    return client


def test_sign_in_starts_a_new_session(app: Flask) -> None:
    client = _dev_sign_in(app, "usager_a")
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess["tracked_tickets"] == [12]
        assert sess["login_key"] and sess["auth_at"] == sess["seen_at"]
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_idle_timeout(app: Flask, clock) -> None:
    client = _dev_sign_in(app, "usager_a")
    clock.advance(timedelta(minutes=29))
    assert client.get("/api/v1/me").status_code == 200  # activity resets the idle clock
    clock.advance(timedelta(minutes=29))
    assert client.get("/api/v1/me").status_code == 200
    clock.advance(timedelta(minutes=31))
    assert client.get("/api/v1/me").status_code == 401
    page = client.get("/mes-demandes", follow_redirects=True).get_data(as_text=True)
    assert "Connectez-vous" in page or "connecter" in page


def test_absolute_timeout(app: Flask, clock) -> None:
    client = _dev_sign_in(app, "usager_a")
    start = clock.now()
    for _ in range(12 * 3 + 2):  # busy all day long, never idle
        clock.advance(timedelta(minutes=20))
        response = client.get("/api/v1/me")
        if response.status_code == 401:
            break
    assert response.status_code == 401
    assert clock.now() - start == timedelta(hours=12)


def test_logout_get_asks_post_signs_out(app: Flask) -> None:
    client = _dev_sign_in(app, "usager_a")
    assert client.get("/auth/logout").status_code == 200
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/auth/logout", data={}).status_code == 400  # no CSRF token: nothing happens
    assert client.get("/api/v1/me").status_code == 200
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/auth/logout")})
    assert response.status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_ended_server_side_session_cannot_be_replayed(app: Flask) -> None:
    """A copy of the cookie taken before sign-out is worthless after it."""
    client = _dev_sign_in(app, "usager_a")
    stolen = client.get_cookie("session").value
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/auth/logout")})
    thief = app.test_client()
    thief.set_cookie("session", stolen, domain="localhost")
    assert thief.get("/api/v1/me").status_code == 401


def test_open_redirects_are_not_followed(app: Flask) -> None:
    from sau.auth.views import safe_next

    for target in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", ""):
        assert safe_next(target) is None
    assert safe_next("/mes-demandes?x=1") == "/mes-demandes?x=1"
