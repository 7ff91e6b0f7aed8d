"""Database outages seen by a request (issue 9, point 5): a clear 503 with `Retry-After` (JSON on /api/, a French
page elsewhere), the session rolled back so the next request works, and never a 503 for work that committed."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from sau import resilience
from sau.extensions import db
from tests.conftest import DEMO_EMAILS, csrf_token, ticket_count

URL = "/api/v1/requests"
BODY: dict[str, Any] = {
    "service": "toodego", "category": "teleservice-communal", "commune": "69081",
    "subject": "Inscription cantine impossible", "description": "Le bouton « Valider » ne répond pas.",
    "email": "habitant@example.org",
}


def lost_connection(*_args: Any, **_kwargs: Any) -> None:
    """What SQLAlchemy raises when PostgreSQL restarts under a query."""
    raise sa_exc.OperationalError(
        "INSERT INTO tickets ...", {}, psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        connection_invalidated=True)


def test_api_answers_503_with_retry_after_and_creates_nothing(app, client, monkeypatch):
    before = ticket_count(app)
    monkeypatch.setattr("sau.api.views.ops.create_request", lost_connection)
    response = client.post(URL, json=BODY, headers={"Idempotency-Key": "k-503"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(resilience.RETRY_AFTER_SECONDS)
    error = response.get_json()["error"]
    assert error["code"] == "service_unavailable"
    assert "réessayer" in error["message"] and "n'a pas été enregistrée" in error["message"]
    assert ticket_count(app) == before

    monkeypatch.undo()  # the database is back: the same key now creates the ticket, once
    retry = client.post(URL, json=BODY, headers={"Idempotency-Key": "k-503"})
    assert retry.status_code == 201, retry.get_json()
    again = client.post(URL, json=BODY, headers={"Idempotency-Key": "k-503"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["reference"] == retry.get_json()["reference"]
    assert ticket_count(app) == before + 1


def test_html_page_is_french_503_without_touching_the_database(app, login_as, monkeypatch):
    client = login_as("usager_a")  # signed in: the usual layout would read the user and the unread count
    client.get("/")  # the session is live
    monkeypatch.setattr("sau.help.views.faq_search", lost_connection)
    monkeypatch.setattr("sau.web.db.session.get", lost_connection)  # the user cannot be loaded either
    response = client.get("/aide?service=toodego")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(resilience.RETRY_AFTER_SECONDS)
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<html lang="fr">' in page and "Service momentanément indisponible" in page
    assert "réessayer dans quelques secondes" in page
    assert "style=" not in page and "<script>" not in page


def test_session_is_rolled_back_so_the_next_request_works(app, client, monkeypatch):
    # The request's work is lost with the connection where it would have become durable: the session's commit,
    # or on PostgreSQL the one statement that writes a new request (sau.autocommit.fetch_row).
    from sau import autocommit

    calls = {"n": 0}

    def fail_first(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                lost_connection()
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(db.session, "commit", fail_first(db.session.commit))
    monkeypatch.setattr(autocommit, "fetch_row", fail_first(autocommit.fetch_row))
    first = client.post(URL, json=BODY)
    assert first.status_code == 503
    second = client.post(URL, json={**BODY, "subject": "Deuxième essai"})
    assert second.status_code == 201, second.get_json()
    with app.app_context():
        subjects = list(db.session.scalars(sa.text("SELECT subject FROM tickets WHERE subject IN "
                                                   "('Inscription cantine impossible', 'Deuxième essai')")))
    assert subjects == ["Deuxième essai"]  # the failed request left nothing half-written


def test_outage_after_the_commit_keeps_the_201(app, client, monkeypatch):
    before = ticket_count(app)
    monkeypatch.setattr("sau.api.idempotency._store_response", lost_connection)
    response = client.post(URL, json=BODY, headers={"Idempotency-Key": "k-after"})
    assert response.status_code == 201, response.get_json()
    reference = response.get_json()["reference"]
    assert ticket_count(app) == before + 1
    monkeypatch.undo()
    retry = client.post(URL, json=BODY, headers={"Idempotency-Key": "k-after"})
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["reference"] == reference  # answered from the ticket it created
    assert ticket_count(app) == before + 1


def test_outage_after_a_form_commit_is_answered_accepted_not_503(app, client, monkeypatch):
    before = ticket_count(app)
    token = csrf_token(client)
    monkeypatch.setattr("sau.help.views.remember_tracked_ticket", lost_connection)  # fails after the commit
    response = client.post("/aide?service=toodego", data={
        "csrf_token": token, "service": "toodego", "category": "teleservice-communal", "commune": "69081",
        "subject": "Paiement refusé", "description": "Le paiement de la cantine échoue.",
        "email": "habitant@example.org"})
    assert response.status_code == 202
    page = response.get_data(as_text=True)
    assert "bien été enregistrée" in page and "Inutile de la renvoyer" in page
    assert "Retry-After" not in response.headers
    assert ticket_count(app) == before + 1


def test_a_hook_commit_before_the_view_does_not_make_the_request_accepted(app, clock, monkeypatch):
    from sau.auth.models import User
    from sau.auth.tokens import create_token
    from sau.orgs.models import Organisation

    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
        secret = create_token(admin, org, "GRU Écully", ["requests:write"], clock.now()).secret
        db.session.commit()
    before = ticket_count(app)
    monkeypatch.setattr("sau.api.views.ops.create_request", lost_connection)
    # The token's first use commits last_used_at before the view runs; the view then fails.
    response = app.test_client().post(URL, json=BODY, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert ticket_count(app) == before


def test_other_errors_stay_500(app, client, monkeypatch):
    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("sau.api.views.ops.create_request", boom)
    response = client.post(URL, json=BODY)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(("exc", "expected"), [
    (sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")), True),
    (sa_exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("connection already closed")), True),
    (sa_exc.TimeoutError("QueuePool limit reached"), True),
    (psycopg.OperationalError("server closed the connection unexpectedly"), True),
    (sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")), False),
    (RuntimeError("bug"), False),
])
def test_which_errors_mean_the_database_is_away(exc, expected):
    assert resilience.is_database_unavailable(exc) is expected


def test_a_pending_rollback_caused_by_a_lost_connection_is_an_outage():
    try:
        try:
            raise sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("terminating connection"))
        except sa_exc.OperationalError as inner:
            raise sa_exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back") from inner
    except sa_exc.PendingRollbackError as outer:
        assert resilience.is_database_unavailable(outer)


def test_a_rollback_lost_after_the_answer_does_not_turn_it_into_a_500(app, client, monkeypatch, caplog):
    """PostgreSQL shut down between the view's answer and the end of the request: the session's closing ROLLBACK
    fails. The answer already built is sent (it was a 500 from gunicorn, after every error handler)."""
    import logging

    real_close = sa.orm.Session.close
    calls = []

    def close_on_a_closed_connection(self: Any) -> None:
        calls.append(self)
        if len(calls) == 1 and self.in_transaction():
            real_close(self)
            raise sa_exc.OperationalError("ROLLBACK", {}, psycopg.errors.AdminShutdown(
                "terminating connection due to administrator command"), connection_invalidated=True)
        real_close(self)

    monkeypatch.setattr(sa.orm.Session, "close", close_on_a_closed_connection)
    with caplog.at_level(logging.WARNING, logger="sau.resilience"):
        response = client.get("/aide?service=toodego")  # reads the database: the session holds a transaction
    assert calls and response.status_code == 200
    assert "session closed without its rollback" in caplog.text
    monkeypatch.undo()
    assert client.get("/aide?service=toodego").status_code == 200  # the next request works


def test_any_other_error_while_closing_the_session_still_raises(app, monkeypatch):
    def broken(self: Any) -> None:
        raise RuntimeError("a bug, not an outage")

    with app.app_context():
        monkeypatch.setattr(sa.orm.Session, "close", broken)
        db.session.execute(sa.text("SELECT 1"))
        with pytest.raises(RuntimeError):
            resilience.close_session()
        monkeypatch.undo()
        db.session.remove()
