"""New requests' notifications worked out by the dispatcher (sau.notify.models.NotificationFanout): a submission
writes one fan-out row and no notification; the dispatcher expands it into the notifications the request used to
enqueue itself (receipt with the anonymous tracking link, the queue's agents per preference, the organisation's
webhooks) and deletes it; a later event on the ticket, an attachment or a security alert expands it first so that
notifications keep their order; a failing row is retried; two dispatchers never expand a row twice (PostgreSQL)."""
from __future__ import annotations

import io
import itertools
import logging
import re
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, csrf_token, db_kind
from tests.help.test_help_form import tiny_png
from tests.notifications.conftest import dispatch

FORM = "/aide?service=toodego"
API = "/api/v1/requests"
REQUESTER = "demandeur@example.org"
SECRET = "secret-partage-ecully"
FIELDS: dict[str, Any] = {
    "service": "toodego",
    "category": "teleservice-communal",
    "commune": "69081",  # Écully, Toodego Partenaire: the commune's queue
    "subject": "Ma démarche est bloquée",
    "description": "Le bouton « Valider » ne répond pas à la dernière étape.",
    "email": REQUESTER,
}
JETON_RE = re.compile(r"jeton=([A-Za-z0-9_\-]+)")


# --- helpers --------------------------------------------------------------------------------------------------


def _user(role: str) -> Any:
    from sau.auth.models import User
    from sau.extensions import db

    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))


def _fanouts(app: Flask) -> list[tuple[str, str | None]]:
    """The pending fan-out rows: (ticket reference, tracking token), oldest first."""
    from sau.extensions import db
    from sau.notify.models import NotificationFanout
    from sau.tickets.models import Ticket

    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            sa.select(Ticket.reference, NotificationFanout.tracking_token)
            .join(Ticket, NotificationFanout.ticket_id == Ticket.id).order_by(NotificationFanout.id))]


def _outbox(app: Flask, reference: str | None = None) -> list[dict[str, Any]]:
    """The `notifications` rows as they are (no fan-out expanded here), in the dispatcher's claim order."""
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.tickets.models import Ticket

    with app.app_context():
        stmt = sa.select(Notification).order_by(Notification.next_attempt_at, Notification.id)
        if reference is not None:
            stmt = stmt.join(Ticket, Notification.ticket_id == Ticket.id).where(Ticket.reference == reference)
        rows = []
        for n in db.session.scalars(stmt):
            recipient = n.endpoint.url if n.endpoint is not None else (n.user.email if n.user is not None else n.email)
            rows.append({"id": n.id, "channel": n.channel, "kind": n.kind, "event_type": n.event_type,
                         "recipient": recipient, "created_at": n.created_at, "next_attempt_at": n.next_attempt_at,
                         "status": n.status, "payload": n.payload, "ticket_id": n.ticket_id})
        return rows


def _shape(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["channel"], r["kind"], r["event_type"], r["recipient"]) for r in rows]


def _event_order(rows: list[dict[str, Any]]) -> list[str]:
    """The event types of the rows in their order, consecutive repeats collapsed."""
    return [key for key, _ in itertools.groupby(r["event_type"] for r in rows)]


def _endpoint(app: Flask, url: str, commune: str = "69081", *, active: bool = True) -> None:
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.notify.operations import add_webhook_endpoint
    from sau.orgs.models import Organisation

    with app.app_context():
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
        endpoint = add_webhook_endpoint(org, url, now_utc(), secret=SECRET)
        endpoint.is_active = active
        db.session.commit()


def _second_ecully_agent_in_app_only(app: Flask) -> None:
    """Rémi (Écully's référent) also works Écully's queue, and wants new tickets in the app only."""
    from sau.auth.models import Membership
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.notify.models import PREF_INAPP, NotificationPreference
    from sau.orgs.models import Organisation

    with app.app_context():
        remi = _user("referent_ecully")
        ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
        db.session.add(Membership(user=remi, organisation=ecully, role="agent", created_at=now_utc()))
        db.session.add(NotificationPreference(user_id=remi.id, kind="new_ticket", channel=PREF_INAPP,
                                              updated_at=now_utc()))
        db.session.commit()


def _submit(app: Flask, channel: str, files: list[Any] | None = None) -> tuple[str, str]:
    """An anonymous request through the API or the help form; returns (reference, tracking token)."""
    client = app.test_client()
    if channel == "api":
        response = client.post(API, json=FIELDS)
        assert response.status_code == 201, response.get_data(as_text=True)
        data = response.get_json()
        match = JETON_RE.search(data["tracking_url"])
        assert match
        return data["reference"], match.group(1)
    data = {"csrf_token": csrf_token(client, FORM), **FIELDS}
    if files:
        data["attachments"] = files
    response = client.post(FORM, data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    reference = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    match = JETON_RE.search(thanks)
    assert match, "no tracking link on the thanks page"
    return reference, match.group(1)


def _act(app: Flask, reference: str, fn: Any) -> None:
    from sau.extensions import db
    from sau.tickets import operations as ops

    with app.app_context():
        fn(ops.get_ticket(reference), ops)
        db.session.commit()


# --- a new request: one fan-out row, expanded by the dispatcher -----------------------------------------------


@pytest.mark.parametrize("channel", ["api", "form"])
def test_a_new_request_is_fanned_out_by_the_dispatcher(app, clock, smtp, receiver_factory, channel):
    receiver = receiver_factory(SECRET)
    _endpoint(app, receiver.url)
    _endpoint(app, "http://127.0.0.1:9/desactive", active=False)  # disabled: told nothing
    _endpoint(app, "http://127.0.0.1:9/tassin", commune="69244")  # another organisation: told nothing
    _second_ecully_agent_in_app_only(app)
    submitted_at = clock.now()

    reference, token = _submit(app, channel)

    # The request wrote its fan-out row (with the secret link for the receipt) and no notification.
    assert _fanouts(app) == [(reference, token)]
    assert _outbox(app) == []

    clock.advance(timedelta(minutes=3))  # the dispatcher runs later: the notifications keep the request's time
    result = dispatch(app)

    assert _fanouts(app) == []
    with app.app_context():
        agents = sorted((_user("agent_ecully"), _user("referent_ecully")), key=lambda u: u.id)
        inapp_only = _user("referent_ecully").email
    people = []
    for agent in agents:
        people.append(("inapp", "new_ticket", "ticket.routed", agent.email))
        if agent.email != inapp_only:
            people.append(("email", "new_ticket", "ticket.routed", agent.email))
    rows = _outbox(app)
    # What create_request used to enqueue itself: enqueue_for_events(ticket, [created, routed], now).
    assert _shape(rows) == [
        ("email", "request_received", "ticket.created", REQUESTER),
        ("webhook", "webhook", "ticket.created", receiver.url),
        *people,
        ("webhook", "webhook", "ticket.routed", receiver.url),
    ]
    assert {r["created_at"] for r in rows} == {submitted_at} == {r["next_attempt_at"] for r in rows}
    assert {r["status"] for r in rows} == {"sent"}
    assert result.failed == 0 and result.sent == sum(r["channel"] != "inapp" for r in rows)

    receipt = rows[0]["payload"]
    assert receipt["ticket_url"] == f"http://sau.test/suivi/{reference}?jeton={token}"
    mails = smtp.messages()
    (to_requester,) = [m for m in mails if m["To"] == REQUESTER]
    assert to_requester["Subject"] == f"[{reference}] Votre demande a bien été reçue"
    assert f"http://sau.test/suivi/{reference}?jeton={token}" in to_requester.get_body(("plain",)).get_content()
    assert [m["Subject"] for m in mails if m["To"] == DEMO_EMAILS["agent_ecully"]] == [
        f"[{reference}] Nouveau ticket dans la file Écully"]
    assert [m for m in mails if m["To"] == inapp_only] == []
    calls = receiver.calls()
    assert [c["event"] for c in calls] == ["ticket.created", "ticket.routed"]
    assert all(c["valid"] for c in calls) and calls[0]["body"]["ticket"]["reference"] == reference
    page = app.test_client().get(f"/suivi/{reference}?jeton={token}", follow_redirects=True)
    assert page.status_code == 200 and reference in page.get_data(as_text=True)

    # Nothing more the second time.
    again = dispatch(app)
    assert (again.sent, again.failed) == (0, 0)
    assert len(_outbox(app)) == len(rows) and _fanouts(app) == []
    assert len(smtp.messages()) == len(mails)


def test_disabling_an_endpoint_keeps_the_pending_requests_queued_for_it(app, make_request):
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.notify.models import WebhookEndpoint
    from sau.notify.operations import set_webhook_endpoint_active

    _endpoint(app, "http://127.0.0.1:9/ecully")
    before = make_request()
    assert len(_fanouts(app)) == 1
    with app.app_context():
        endpoint = db.session.scalar(sa.select(WebhookEndpoint))
        set_webhook_endpoint_active(_user("admin"), endpoint, False, now_utc())
        db.session.commit()
    # The request made before the change was expanded first: its webhooks are queued for the endpoint.
    assert _fanouts(app) == []
    hooks = [r for r in _outbox(app, before) if r["channel"] == "webhook"]
    assert [(r["event_type"], r["recipient"]) for r in hooks] == [("ticket.created", "http://127.0.0.1:9/ecully"),
                                                                  ("ticket.routed", "http://127.0.0.1:9/ecully")]
    after = make_request()
    dispatch(app)
    assert [r for r in _outbox(app, after) if r["channel"] == "webhook"] == []
    assert "request_received" in {r["kind"] for r in _outbox(app, after)}


# --- a later event expands the fan-out first ------------------------------------------------------------------


def test_taking_a_request_before_the_dispatcher_keeps_the_receipt_first(app, clock, smtp, make_request):
    reference = make_request(email=REQUESTER)
    assert len(_fanouts(app)) == 1 and _outbox(app) == []
    clock.advance(timedelta(minutes=5))

    _act(app, reference, lambda ticket, ops: ops.take(ticket, _user("agent_ecully"), clock.now()))

    assert _fanouts(app) == []  # expanded in the agent's transaction
    rows = _outbox(app, reference)
    kinds = [r["kind"] for r in rows]
    assert kinds.index("request_received") < kinds.index("new_ticket") < kinds.index("taken_in_charge")
    received = next(r for r in rows if r["kind"] == "request_received")
    taken = next(r for r in rows if r["kind"] == "taken_in_charge")
    assert received["created_at"] < taken["created_at"]
    assert received["payload"]["ticket_url"].startswith(f"http://sau.test/suivi/{reference}?jeton=")

    dispatch(app)
    assert [m["Subject"] for m in smtp.messages() if m["To"] == REQUESTER] == [
        f"[{reference}] Votre demande a bien été reçue",
        f"[{reference}] Votre demande est prise en charge",
    ]
    assert _fanouts(app) == []


def test_only_the_receipt_carries_the_secret_link_when_an_agent_acts_first(app, clock, make_request):
    """The tracking token of the fan-out row is for the receipt e-mail only (NotificationFanout's docstring, and
    what the request enqueued before): a later message to the requester links to the tracking page without it."""
    reference = make_request(email=REQUESTER)
    clock.advance(timedelta(minutes=5))
    _act(app, reference, lambda ticket, ops: ops.take(ticket, _user("agent_ecully"), clock.now()))
    to_requester = {r["kind"]: r["payload"]["ticket_url"] for r in _outbox(app, reference)
                    if r["channel"] == "email" and r["recipient"] == REQUESTER}
    assert "?jeton=" in to_requester["request_received"]
    assert to_requester["taken_in_charge"] == f"http://sau.test/suivi/{reference}"


def test_setting_the_priority_before_the_dispatcher_keeps_the_events_in_order(app, clock, make_request):
    _endpoint(app, "http://127.0.0.1:9/ecully")
    reference = make_request()
    clock.advance(timedelta(minutes=1))

    _act(app, reference, lambda ticket, ops: ops.set_priority(ticket, _user("agent_ecully"), "majeur", clock.now()))

    assert _fanouts(app) == []
    rows = _outbox(app, reference)
    # Setting the priority of a new ticket also puts it « en cours » (the requester is told).
    assert _event_order(rows) == ["ticket.created", "ticket.routed", "priority.set", "status.changed"]
    assert [r["event_type"] for r in rows if r["channel"] == "webhook"] == ["ticket.created", "ticket.routed",
                                                                            "priority.set", "status.changed"]
    kinds = [r["kind"] for r in rows]
    assert kinds.index("request_received") < kinds.index("new_ticket") < kinds.index("taken_in_charge")


# --- created and expanded in the same transaction -------------------------------------------------------------


def test_a_request_with_an_attachment_leaves_no_fan_out(app):
    _endpoint(app, "http://127.0.0.1:9/ecully")
    reference, token = _submit(app, "form", files=[(io.BytesIO(tiny_png()), "capture.png", "image/png")])

    assert _fanouts(app) == []
    rows = _outbox(app, reference)  # nothing expanded here: the request wrote them
    assert _event_order(rows) == ["ticket.created", "ticket.routed", "attachment.added"]
    assert [r["event_type"] for r in rows if r["channel"] == "webhook"] == ["ticket.created", "ticket.routed",
                                                                            "attachment.added"]
    receipt = next(r for r in rows if r["kind"] == "request_received")
    assert receipt["recipient"] == REQUESTER
    assert receipt["payload"]["ticket_url"] == f"http://sau.test/suivi/{reference}?jeton={token}"
    assert "new_ticket" in {r["kind"] for r in rows}


def test_a_security_alert_leaves_no_fan_out(app, clock):
    from sau.extensions import db
    from sau.incidents import operations as iops

    app.config["SECURITY_CONTACT_EMAILS"] = ["rssi@grandlyon.example"]
    with app.app_context():
        alert = iops.report_security_alert(
            _user("referent_ecully"),
            iops.NewIncident("69081", "toodego", "Compte compromis", "Connexions suspectes sur le client OIDC."),
            clock.now() - timedelta(hours=1), clock.now())
        db.session.commit()
        reference = alert.ticket.reference

    assert _fanouts(app) == []
    rows = _outbox(app, reference)
    assert _event_order(rows) == ["ticket.created", "ticket.routed", "security.alert"]
    kinds = [r["kind"] for r in rows]
    assert kinds.index("request_received") < kinds.index("new_ticket") < kinds.index("security_alert")
    assert ("email", "security_alert", "security.alert", "rssi@grandlyon.example") in _shape(rows)


# --- a failing fan-out row ------------------------------------------------------------------------------------


def test_a_failing_fan_out_is_logged_kept_and_retried(app, smtp, make_request, monkeypatch, caplog):
    from sau.notify import operations as notify_ops

    broken = make_request(subject="Celle-ci échoue", email="broken@example.org")  # the oldest row
    others = [make_request(subject=f"Demande {i}", email=f"demandeur{i}@example.org") for i in range(2)]
    real = notify_ops.enqueue_for_events

    def flaky(ticket: Any, events: Any, now: Any) -> Any:
        if ticket.reference == broken:
            raise RuntimeError("panne simulée")
        return real(ticket, events, now)

    monkeypatch.setattr(notify_ops, "enqueue_for_events", flaky)
    with caplog.at_level(logging.ERROR, logger="sau.notify.operations"):
        dispatch(app)

    assert [reference for reference, _ in _fanouts(app)] == [broken]  # left in place
    failures = [r for r in caplog.records if r.name == "sau.notify.operations" and "fan-out" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert _outbox(app, broken) == []
    for reference in others:  # not blocked by the failing row before them
        assert "request_received" in {r["kind"] for r in _outbox(app, reference)}
    delivered = {m["To"] for m in smtp.messages()}
    assert {"demandeur0@example.org", "demandeur1@example.org"} <= delivered
    assert "broken@example.org" not in delivered

    monkeypatch.setattr(notify_ops, "enqueue_for_events", real)  # the fault is gone
    dispatch(app)
    assert _fanouts(app) == []
    assert "request_received" in {r["kind"] for r in _outbox(app, broken)}
    assert [m["Subject"] for m in smtp.messages() if m["To"] == "broken@example.org"] == [
        f"[{broken}] Votre demande a bien été reçue"]


# --- two dispatchers (PostgreSQL) -----------------------------------------------------------------------------


pg_only = pytest.mark.skipif(db_kind() != "postgresql",
                             reason="row locks (SELECT … FOR UPDATE SKIP LOCKED) exist on PostgreSQL only")


@pg_only
def test_a_row_locked_by_another_dispatcher_is_skipped(app, make_request):
    from sau.extensions import db
    from sau.notify.models import NotificationFanout
    from sau.notify.operations import expand_fanouts

    references = [make_request(subject=f"Demande {i}") for i in range(3)]
    table = NotificationFanout.__table__
    with app.app_context():
        other = db.engine.connect()
        try:
            held = other.begin()
            # What the other dispatcher's expand_fanouts holds while it expands its row.
            locked = other.execute(sa.select(table.c.id).order_by(table.c.id).limit(1)
                                   .with_for_update(skip_locked=True)).scalar_one()
            assert expand_fanouts() == 2
            assert db.session.scalars(sa.select(NotificationFanout.id)).all() == [locked]
            db.session.rollback()
            held.rollback()  # the other dispatcher gave up: the row is free again
        finally:
            other.close()
        assert expand_fanouts() == 1
    assert _fanouts(app) == []
    for reference in references:
        assert [r["kind"] for r in _outbox(app, reference)].count("request_received") == 1


@pg_only
def test_two_dispatchers_at_once_expand_each_row_once(app, make_request):
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.notify.operations import expand_fanouts
    from sau.tickets.models import Ticket

    references = [make_request(subject=f"Demande {i}", email=f"d{i}@example.org") for i in range(30)]
    start = threading.Barrier(2)
    done: list[int] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            with app.app_context():
                start.wait(10)
                done.append(expand_fanouts())
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(done) == 2
    assert sum(done) == 30
    assert _fanouts(app) == []
    with app.app_context():
        receipts = dict(db.session.execute(
            sa.select(Ticket.reference, sa.func.count(Notification.id))
            .join(Notification, Notification.ticket_id == Ticket.id)
            .where(Notification.kind == "request_received").group_by(Ticket.reference)).all())
        per_ticket = dict(db.session.execute(
            sa.select(Ticket.reference, sa.func.count(Notification.id))
            .join(Notification, Notification.ticket_id == Ticket.id).group_by(Ticket.reference)).all())
    assert receipts == {reference: 1 for reference in references}
    assert len(set(per_ticket.values())) == 1 and set(per_ticket) == set(references)  # same fan-out for each


# --- the scheduler's fan-out job, its time budget, a row claimed elsewhere -------------------------------------


def test_the_scheduler_expands_fan_outs_on_its_own_job(app):
    from sau.scheduler import build_scheduler

    jobs = {job.id: job for job in build_scheduler(app).get_jobs()}
    assert "notify-fanout" in jobs
    assert jobs["notify-fanout"].trigger.interval == timedelta(seconds=app.config["NOTIFY_FANOUT_SECONDS"])
    assert app.config["NOTIFY_FANOUT_SECONDS"] < app.config["NOTIFY_DISPATCH_SECONDS"]


def test_an_exhausted_time_budget_expands_nothing_and_the_next_run_does(app, make_request):
    from sau.extensions import db
    from sau.notify.operations import expand_fanouts

    references = [make_request(), make_request()]
    with app.app_context():
        assert expand_fanouts(seconds=0) == 0  # the budget is spent before the first row
        db.session.remove()
    assert [ref for ref, _token in _fanouts(app)] == references
    with app.app_context():
        assert expand_fanouts(seconds=60) == 2
        db.session.remove()
    assert _fanouts(app) == []
    assert {row["kind"] for row in _outbox(app, references[0])} >= {"request_received", "new_ticket"}


def test_a_row_claimed_by_another_dispatcher_first_enqueues_nothing_here(app, make_request):
    """The DELETE decides who expands a row (SQLite has no row locks): a dispatcher that loaded the row but finds
    it gone when it claims it enqueues nothing."""
    from sau.extensions import db
    from sau.notify.models import NotificationFanout
    from sau.notify.operations import _expand

    reference = make_request()
    with app.app_context():
        fanout = db.session.scalars(sa.select(NotificationFanout)).one()
        with db.engine.begin() as other:  # another dispatcher claims it and commits
            other.execute(sa.delete(NotificationFanout.__table__).where(NotificationFanout.__table__.c.id == fanout.id))
        assert _expand(fanout) is False
        db.session.commit()
        db.session.remove()
    assert _outbox(app, reference) == []
    assert _fanouts(app) == []
