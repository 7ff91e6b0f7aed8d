"""Webhooks to a real HTTP receiver process that verifies signatures: delivery, retries on 5xx and timeouts,
dead-letter after N attempts (admin list and retry), and the connector round trip of a Connecté commune."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import DEMO_EMAILS, csrf_token
from tests.notifications.conftest import dispatch, notifications

SECRET = "secret-partage-gru-villeurbanne"


def _endpoint(app, url, commune="69266"):
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.notify.operations import add_webhook_endpoint
    from sau.orgs.models import Organisation

    with app.app_context():
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
        add_webhook_endpoint(org, url, now_utc(), secret=SECRET)
        db.session.commit()


def _villeurbanne_request(make_request):
    # Toodego, communal téléservice, Villeurbanne (Connecté) → the commune's queue.
    return make_request(commune="69266")


def test_signed_webhooks_reach_the_connector(app, receiver_factory, make_request):
    receiver = receiver_factory(SECRET)
    _endpoint(app, receiver.url)
    reference = _villeurbanne_request(make_request)
    result = dispatch(app)
    calls = receiver.calls()
    assert result.failed == 0 and calls
    assert all(c["valid"] and c["status"] == 200 for c in calls)
    assert [c["event"] for c in calls][:2] == ["ticket.created", "ticket.routed"]
    first = calls[0]["body"]
    assert first["ticket"]["reference"] == reference and first["ticket"]["organisation"] == "69266"
    assert first["id"] == calls[0]["delivery"]
    hooks = notifications(app, channel="webhook")
    assert {c["delivery"] for c in calls} == {n.idempotency_key for n in hooks}


def test_webhook_retries_on_5xx_then_succeeds(app, receiver_factory, make_request, clock):
    from sau.extensions import db
    from sau.notify.models import DeliveryAttempt

    receiver = receiver_factory(SECRET, "fail:2")
    _endpoint(app, receiver.url)
    _villeurbanne_request(make_request)
    hooks = notifications(app, channel="webhook")
    first = hooks[0]
    assert dispatch(app).failed == len(hooks)
    clock.advance(timedelta(seconds=61))
    assert dispatch(app).failed == len(hooks)  # second 503; backoff doubles
    clock.advance(timedelta(seconds=119))
    assert dispatch(app).sent == 0  # not due before 2 minutes
    clock.advance(timedelta(seconds=2))
    assert dispatch(app).sent == len(hooks)
    assert {n.status for n in notifications(app, channel="webhook")} == {"sent"}
    calls = [c for c in receiver.calls() if c["delivery"] == first.idempotency_key]
    assert [c["status"] for c in calls] == [503, 503, 200]
    assert len({c["delivery"] for c in calls}) == 1  # the same delivery id on every attempt
    with app.app_context():
        log = list(db.session.scalars(sa.select(DeliveryAttempt).where(DeliveryAttempt.notification_id == first.id)
                                      .order_by(DeliveryAttempt.attempt)))
        assert [(a.attempt, a.is_success, a.status_code) for a in log] == [(1, False, 503), (2, False, 503),
                                                                           (3, True, 200)]


def test_webhook_timeout_is_retried(app, receiver_factory, make_request, clock):
    receiver = receiver_factory(SECRET, "sleep:3")
    app.config["NOTIFY_WEBHOOK_TIMEOUT"] = 1
    _endpoint(app, receiver.url)
    _villeurbanne_request(make_request)
    hooks = notifications(app, channel="webhook")
    assert dispatch(app).failed == len(hooks)
    for failed in notifications(app, channel="webhook"):
        assert failed.attempts == 1 and failed.status == "pending" and "délai dépassé" in failed.last_error
        assert failed.next_attempt_at > clock.now()


def test_dead_letter_after_max_attempts_and_admin_retry(app, receiver_factory, make_request, clock, login_as):
    receiver = receiver_factory(SECRET, "always:500")
    app.config["NOTIFY_MAX_ATTEMPTS"] = 3
    _endpoint(app, receiver.url)
    _villeurbanne_request(make_request)
    count = len(notifications(app, channel="webhook"))
    for _ in range(3):
        dispatch(app)
        clock.advance(timedelta(hours=1))
    hooks = notifications(app, channel="webhook")
    assert {n.status for n in hooks} == {"dead"} and {n.attempts for n in hooks} == {3}
    assert len(receiver.calls()) == 3 * count
    assert dispatch(app).sent == 0  # dead rows are not retried by themselves

    admin = login_as("admin")
    page = admin.get("/admin-notifications")
    assert page.status_code == 200 and "réponse HTTP 500" in page.get_data(as_text=True)
    assert login_as("agent_metropole").get("/admin-notifications").status_code == 403
    token = csrf_token(admin, "/admin-notifications")
    assert admin.post(f"/admin-notifications/{hooks[0].id}/relancer", data={"csrf_token": token}).status_code == 302
    retried = notifications(app, id=hooks[0].id)[0]
    assert retried.status == "pending" and retried.idempotency_key == hooks[0].idempotency_key


def test_connector_round_trip_with_idempotency_key(app, receiver_factory, clock):
    from sau.auth.models import User
    from sau.auth.tokens import create_token
    from sau.extensions import db
    from sau.orgs.models import Organisation
    from sau.tickets import operations as ops
    from sau.tickets.models import Ticket

    receiver = receiver_factory(SECRET)
    _endpoint(app, receiver.url)
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69266"))
        secret = create_token(admin, org, "GRU Villeurbanne", ["requests:write", "tickets:read", "tickets:write"],
                              clock.now()).secret
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "gru-demande-4242"}
    body = {"service": "toodego", "category": "teleservice-communal", "commune": "69266",
            "subject": "Demande transmise par la GRU", "description": "Inscription cantine impossible.",
            "email": "habitant@example.org"}
    first = client.post("/api/v1/requests", json=body, headers=headers)
    assert first.status_code == 201
    again = client.post("/api/v1/requests", json=body, headers=headers)  # the GRU retries after a timeout
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/api/v1/requests", json={**body, "subject": "Autre"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    reference = first.get_json()["reference"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Ticket.id)).where(
            Ticket.subject == "Demande transmise par la GRU")) == 1
        # An agent answers (here the Métropole admin, who may work any queue).
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        ops.add_comment(ops.get_ticket(reference), admin, "Votre inscription est débloquée.", clock.now(),
                        internal=False)
        db.session.commit()
    # The GRU's comment through the API, with its own key, is accepted once.
    comment_headers = {**headers, "Idempotency-Key": "gru-commentaire-1"}
    c1 = client.post(f"/api/v1/tickets/{reference}/comments", json={"body": "Merci, transmis à l'usager."},
                     headers=comment_headers)
    c2 = client.post(f"/api/v1/tickets/{reference}/comments", json={"body": "Merci, transmis à l'usager."},
                     headers=comment_headers)
    assert c1.status_code in (200, 201) and c2.status_code == c1.status_code
    dispatch(app)
    calls = receiver.calls()
    assert all(c["valid"] for c in calls)
    answers = [c for c in calls if c["event"] == "comment.public"]
    assert any(c["body"]["comment"]["body"] == "Votre inscription est débloquée." for c in answers)
    with app.app_context():
        ticket = ops.get_ticket(reference)
        assert sum(1 for c in ticket.comments if c.body == "Merci, transmis à l'usager.") == 1
