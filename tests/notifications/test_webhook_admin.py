"""The admins' screen for connector webhook endpoints (/admin-notifications/webhooks): access, creation with a
secret shown once, subscribed events, disable / enable, secret rotation, the delivery log, the journal; with a
real receiver process verifying the signatures."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import csrf_token
from tests.notifications.conftest import WebhookReceiver, dispatch, notifications

PAGE = "/admin-notifications/webhooks"
SECRET_RE = re.compile(r'id="secret-webhook" type="text" readonly value="([^"]+)"')


def _endpoints(app):
    from sau.extensions import db
    from sau.notify.models import WebhookEndpoint

    with app.app_context():
        rows = list(db.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
        db.session.expunge_all()
        return rows


def _journal(app, action):
    from sau.admin.models import AuditEvent
    from sau.extensions import db

    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))
        db.session.expunge_all()
        return rows


@pytest.fixture()
def receiver(tmp_path: Path):
    directory = tmp_path / "hooks"
    directory.mkdir()
    receiver = WebhookReceiver(directory, "not-yet-known")  # started once the secret is shown
    yield receiver
    receiver.stop()


def _create(admin, url, events=("ticket.created", "comment.public"), commune="69266"):
    token = csrf_token(admin, PAGE)
    return admin.post(PAGE, data={"csrf_token": token, "organisation": commune, "url": url, "events": list(events)})


@pytest.mark.parametrize(("role", "expected"), [
    ("admin", 200), ("agent_metropole", 403), ("manager_metropole", 403), ("referent_ecully", 403),
    ("usager_a", 403)])
def test_access_is_for_metropole_admins(login_as, role, expected):
    assert login_as(role).get(PAGE).status_code == expected


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert client.post(PAGE, data={"url": "https://x.example"}).status_code in (302, 400)
    assert _endpoints(client.application) == []


def test_create_shows_the_secret_once_and_delivers_only_subscribed_events(app, login_as, receiver, make_request):
    admin = login_as("admin")
    response = _create(admin, receiver.url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET_RE.search(html).group(1)
    [endpoint] = _endpoints(app)
    assert endpoint.secret == secret and len(secret) >= 32
    assert endpoint.url == receiver.url and endpoint.events == ["ticket.created", "comment.public"]
    assert endpoint.is_active

    # Never again: neither the list nor the delivery log shows it.
    for page in (PAGE, f"{PAGE}/{endpoint.id}"):
        later = admin.get(page)
        assert later.status_code == 200 and secret not in later.get_data(as_text=True)
    # Journaled, without the secret.
    [event] = _journal(app, "webhook_endpoint.created")
    assert event.object_id == endpoint.id and secret not in str(event.data)
    assert event.data["after"]["url"] == receiver.url

    receiver.args[3] = secret
    receiver.start()
    reference = make_request(commune="69266")  # Villeurbanne (Connecté): ticket.created and ticket.routed
    assert dispatch(app).failed == 0
    calls = receiver.calls()
    assert [c["event"] for c in calls] == ["ticket.created"]  # ticket.routed is not subscribed
    assert calls[0]["valid"] and calls[0]["body"]["ticket"]["reference"] == reference

    log = admin.get(f"{PAGE}/{endpoint.id}").get_data(as_text=True)
    assert "Demande créée" in log and reference in log and "réussi" in log and "<td>200</td>" in log


@pytest.mark.parametrize(("url", "events"), [
    ("http://gru.example.org/hook", ["ticket.created"]),  # http only to the loopback interface
    ("ftp://127.0.0.1/hook", ["ticket.created"]),
    ("https://gru.example.org/hook", []),  # at least one event
    ("https://gru.example.org/hook", ["sla.breached"]),  # not a webhook event
])
def test_invalid_endpoints_are_refused(app, login_as, url, events):
    response = _create(login_as("admin"), url, events)
    assert response.status_code == 422
    assert "erreur" in response.get_data(as_text=True)
    assert _endpoints(app) == []


def test_disable_stops_deliveries_and_enable_resumes(app, login_as, receiver, make_request):
    admin = login_as("admin")
    secret = SECRET_RE.search(_create(admin, receiver.url, ["ticket.created", "ticket.routed"])
                              .get_data(as_text=True)).group(1)
    [endpoint] = _endpoints(app)
    receiver.args[3] = secret
    receiver.start()
    make_request(commune="69266")  # queued before the endpoint is disabled

    token = csrf_token(admin, PAGE)
    response = admin.post(f"{PAGE}/{endpoint.id}/desactiver", data={"csrf_token": token})
    assert response.status_code == 303
    assert not _endpoints(app)[0].is_active
    assert "désactivé" in admin.get(PAGE).get_data(as_text=True)
    make_request(commune="69266")  # after: no webhook row at all
    assert len(notifications(app, channel="webhook")) == 2

    dispatch(app)
    assert receiver.calls() == []
    assert {n.status for n in notifications(app, channel="webhook")} == {"pending"}

    assert admin.post(f"{PAGE}/{endpoint.id}/activer", data={"csrf_token": token}).status_code == 303
    assert _endpoints(app)[0].is_active
    reference = make_request(commune="69266")
    dispatch(app)
    assert reference in {c["body"]["ticket"]["reference"] for c in receiver.calls()}
    assert all(c["valid"] for c in receiver.calls())
    assert len(_journal(app, "webhook_endpoint.disabled")) == 1 and len(_journal(app, "webhook_endpoint.enabled")) == 1


def test_rotate_secret_shows_the_new_one_once(app, login_as):
    admin = login_as("admin")
    old = SECRET_RE.search(_create(admin, "https://gru.villeurbanne.example/sau").get_data(as_text=True)).group(1)
    [endpoint] = _endpoints(app)
    token = csrf_token(admin, PAGE)
    response = admin.post(f"{PAGE}/{endpoint.id}/secret", data={"csrf_token": token})
    assert response.status_code == 200
    new = SECRET_RE.search(response.get_data(as_text=True)).group(1)
    assert new != old and _endpoints(app)[0].secret == new
    assert new not in admin.get(PAGE).get_data(as_text=True)
    [event] = _journal(app, "webhook_endpoint.secret_rotated")
    assert new not in str(event.data) and old not in str(event.data)
    # Without the CSRF token: refused, unchanged.
    assert admin.post(f"{PAGE}/{endpoint.id}/secret").status_code == 400
    assert _endpoints(app)[0].secret == new


def test_unknown_endpoint_is_404(login_as):
    admin = login_as("admin")
    token = csrf_token(admin, PAGE)
    assert admin.get(f"{PAGE}/999999").status_code == 404
    assert admin.post(f"{PAGE}/999999/desactiver", data={"csrf_token": token}).status_code == 404
