"""What every request pays, made cheap without changing behaviour: the pooled-connection check without a round
trip (sau/__init__.py), the session interface (sau/web.py), the security headers, Flask's ensure_sync."""
from __future__ import annotations

import select
import socket
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Response
from itsdangerous import BadSignature

from sau import SauFlask, _check_socket
from sau.web import CSP


class FakeConnection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


def test_an_idle_connection_passes_the_checkout_check() -> None:
    ours, server = socket.socketpair()
    try:
        _check_socket(FakeConnection(ours), None, None)
    finally:
        ours.close()
        server.close()


@pytest.mark.parametrize("server_side", ["closes", "sends"])
def test_a_connection_the_server_ended_is_replaced_at_checkout(server_side: str) -> None:
    ours, server = socket.socketpair()
    try:
        if server_side == "closes":
            server.close()
        else:  # e.g. PostgreSQL's FATAL "terminating connection due to administrator command", then close
            server.sendall(b"E")
        with pytest.raises(sa.exc.DisconnectionError):
            _check_socket(FakeConnection(ours), None, None)
    finally:
        ours.close()
        server.close()


def test_a_closed_connection_is_replaced_at_checkout() -> None:
    ours, server = socket.socketpair()
    ours.close()
    server.close()
    with pytest.raises(sa.exc.DisconnectionError):
        _check_socket(FakeConnection(ours), None, None)


def test_postgresql_session_ended_by_the_server_is_not_an_outage(app: Flask, client: Any) -> None:
    """The server ends the pooled connection's session (as on a restart): the next request reconnects, no 503."""
    from sau.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only (SAU_TEST_DB=postgresql)")
        assert app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("pool_pre_ping") is False
        assert sa.event.contains(db.engine, "checkout", _check_socket)
        db.engine.dispose()  # the pool holds only the connection made below
        pooled, other = db.engine.connect(), db.engine.connect()
        before = pooled.scalar(sa.text("SELECT pg_backend_pid()"))
        raw = pooled.connection.dbapi_connection  # the psycopg connection that goes back to the pool
        pooled.close()  # back to the pool
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
        other.invalidate()  # not pooled: the next checkout gets the terminated one
        # Until the FATAL message reaches the pooled socket (the server writes it as the session ends).
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        assert poller.poll(10_000), "the server did not end the session within 10 s"
    response = client.get("/healthz")
    assert response.status_code == 200, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT pg_backend_pid()")) != before
        db.session.remove()


def test_a_request_without_session_sets_no_cookie_but_still_varies_on_it(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers.get("Vary") == "Cookie"  # the session was read (sign-in check): as Flask does


def test_session_signing_follows_the_secret_key(app: Flask, client: Any) -> None:
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first  # built once
    client.get("/aide?service=toodego")  # a page that puts the CSRF token in the session
    cookie = client.get_cookie("session")
    assert cookie is not None and first.loads(cookie.value)
    app.config["SECRET_KEY"] = "another-secret-key-for-this-test-0123456789"
    second = interface.get_signing_serializer(app)
    assert second is not first
    with pytest.raises(BadSignature):
        second.loads(cookie.value)  # a cookie signed with the old key is refused
    app.config["SECRET_KEY_FALLBACKS"] = [first_key := "test-secret-key-not-for-production-0123456789"]
    assert first_key and interface.get_signing_serializer(app).loads(cookie.value)  # unless listed as a fallback


def test_security_headers_once_each_and_a_view_keeps_its_own(app: Flask, client: Any) -> None:
    response = client.get("/healthz")
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options",
                 "Permissions-Policy"):
        assert len(response.headers.getlist(name)) == 1, name
    assert response.headers["Content-Security-Policy"] == CSP
    hook = next(f for f in app.after_request_funcs[None] if f.__name__ == "security_headers")
    with app.test_request_context("/api/v1/services"):
        own = Response("{}", headers={"content-security-policy": "default-src 'none'", "Cache-Control": "max-age=5"})
        hook(own)
    assert own.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert own.headers.getlist("Cache-Control") == ["max-age=5"]
    assert own.headers["X-Frame-Options"] == "DENY"
    with app.test_request_context("/api/v1/services"):
        plain = hook(Response("{}"))
    assert plain.headers["Cache-Control"] == "no-store"


def test_ensure_sync_returns_plain_functions_and_still_handles_coroutines(app: Flask) -> None:
    assert isinstance(app, SauFlask)

    def plain() -> None:
        return None

    async def coroutine() -> None:
        return None

    assert app.ensure_sync(plain) is plain
    try:
        wrapped = app.ensure_sync(coroutine)
    except RuntimeError as exc:  # Flask's own answer without the `async` extra (asgiref)
        assert "async" in str(exc).lower()
    else:
        assert wrapped is not coroutine
