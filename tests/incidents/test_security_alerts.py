"""Security alerts (issue 6, point 5; Toodego annex § 8): bloquant by default, SLA started, the Métropole's
security contacts notified at once, and whether the commune alerted within 8 hours of detection."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from sau.auth.models import User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.incidents import operations as iops
from sau.incidents.models import SecurityAlert
from sau.notify.models import Notification
from tests.conftest import DEMO_EMAILS, csrf_token, ticket_count


def _user(role: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))


NEW = iops.NewIncident("69081", "toodego", "Compte GLC compromis", "Connexions suspectes sur le client OIDC.")


def _alert(clock, ago: timedelta) -> SecurityAlert:
    alert = iops.report_security_alert(_user("referent_ecully"), NEW, clock.now() - ago, clock.now())
    db.session.commit()
    return alert


def test_alert_within_8_hours_is_bloquant_with_sla_and_contacts_notified(app, ctx, clock):
    app.config["SECURITY_CONTACT_EMAILS"] = ["rssi@grandlyon.example"]
    alert = _alert(clock, timedelta(hours=7, minutes=59))
    ticket = alert.ticket
    assert alert.within_deadline and alert.delay_label == "7 h 59 min"
    assert (ticket.kind, ticket.priority, ticket.organisation.code) == ("incident", "bloquant", "metropole")
    assert ticket.priority_set_at == clock.now() and ticket.sla_deadline_at is not None
    assert ticket.sla_deadline_at > clock.now()
    prio = next(e for e in ticket.events if e.type == "priority.set")
    assert prio.actor is None and prio.data["after"] == "bloquant"
    event = next(e for e in ticket.events if e.type == "security.alert")
    assert event.data["within_8h"] is True
    rows = db.session.scalars(sa.select(Notification).where(Notification.ticket_id == ticket.id,
                                                            Notification.kind == "security_alert")).all()
    manager = _user("manager_metropole")
    assert {(r.user_id, r.channel) for r in rows} == {(manager.id, "email"), (manager.id, "inapp"),
                                                      (None, "email")}
    assert {r.email for r in rows if r.user_id is None} == {"rssi@grandlyon.example"}
    assert all(r.created_at == clock.now() for r in rows)  # at once, in the reporting transaction
    assert "ALERTE SÉCURITÉ" in rows[0].subject and "alerte dans les 8 heures : oui" in rows[0].payload["message"]
    # Nobody outside the security contacts gets a security alert.
    assert not any(r.user_id in (_user("referent_ecully").id, _user("agent_ecully").id) for r in rows)


def test_alert_after_8_hours_is_flagged_late(app, ctx, clock):
    late = _alert(clock, timedelta(hours=8, minutes=1))
    assert not late.within_deadline
    on_time = _alert(clock, timedelta(hours=8))
    assert on_time.within_deadline  # "sous un délai de huit heures": exactly 8 h is still on time


def test_8_hours_is_wall_clock_across_the_dst_change(app, ctx, clock):
    # Detected on Saturday 28 March 2026 at 22:00 Paris (UTC+1); reported on Sunday at 06:30 (UTC+2): the
    # clocks moved forward at 02:00, 8 h 30 on the dial but 7 h 30 of real (elapsed) time.
    from datetime import datetime

    detected = datetime(2026, 3, 28, 22, 0, tzinfo=iops.PARIS)
    reported = datetime(2026, 3, 29, 6, 30, tzinfo=iops.PARIS)
    alert = iops.report_security_alert(_user("referent_ecully"), NEW, detected, reported)
    assert alert.delay == timedelta(hours=7, minutes=30) and alert.within_deadline


def test_detection_in_the_future_is_refused(app, ctx, clock):
    before = ticket_count(app)
    try:
        iops.report_security_alert(_user("referent_ecully"), NEW, clock.now() + timedelta(minutes=5), clock.now())
    except ValidationFailed as exc:
        assert exc.fields["detected_at"] == "La date de détection ne peut pas être dans le futur."
        assert "date de détection" in exc.message
    else:
        raise AssertionError("a detection time in the future was accepted")
    db.session.rollback()
    assert ticket_count(app) == before


def test_alert_form_and_pages(app, login_as):
    client = login_as("referent_ecully")
    token = csrf_token(client, "/incidents/alerte-securite")
    bad = client.post("/incidents/alerte-securite", data={
        "csrf_token": token, "commune": "69081", "service": "toodego", "subject": "Attaque",
        "description": "Connexions suspectes.", "detected_at": "2026-03-10T11:00"})  # frozen now is 10:00
    assert bad.status_code == 422
    assert "La date de détection ne peut pas être dans le futur." in bad.get_data(as_text=True)
    missing = client.post("/incidents/alerte-securite", data={
        "csrf_token": token, "commune": "69081", "service": "toodego", "subject": "Attaque",
        "description": "Connexions suspectes.", "detected_at": ""})
    assert missing.status_code == 422 and "Indiquez la date et l&#39;heure de détection" in missing.get_data(as_text=True)
    ok = client.post("/incidents/alerte-securite", data={
        "csrf_token": token, "commune": "69081", "service": "toodego", "subject": "Attaque",
        "description": "Connexions suspectes.", "detected_at": "2026-03-10T01:30"})
    assert ok.status_code == 303
    reference = ok.headers["Location"].split("/incidents/")[1].split("?")[0]
    page = client.get(f"/incidents/{reference}").get_data(as_text=True)
    assert "Alerte au-delà des 8 heures" in page and "8 h 30 min" in page and "Bloquant" in page
    agent_page = login_as("agent_metropole").get(f"/agent/tickets/{reference}").get_data(as_text=True)
    assert "Alerte au-delà des 8 heures" in agent_page
    assert "au-delà des 8 h" in login_as("agent_ecully").get("/incidents").get_data(as_text=True)
    assert login_as("agent_tassin").get(f"/incidents/{reference}").status_code == 404


def test_alert_api(app, login_as):
    client = login_as("agent_ecully")
    ok = client.post("/api/v1/incidents", json={"service": "toodego", "subject": "Attaque", "security_alert": True,
                                               "description": "Connexions suspectes.",
                                               "detected_at": "2026-03-10T08:00:00+01:00"})
    body = ok.get_json()
    assert ok.status_code == 201, body
    assert body["priority"] == "bloquant" and body["security_alert"]["within_8h"] is True
    assert body["sla"]["deadline_at"] is not None
    future = client.post("/api/v1/incidents", json={"service": "toodego", "subject": "Attaque", "security_alert": True,
                                                   "description": "Connexions suspectes.",
                                                   "detected_at": "2026-03-10T12:00:00+01:00"})
    err = future.get_json()["error"]
    assert future.status_code == 422 and err["fields"]["detected_at"].startswith("La date de détection")
    missing = client.post("/api/v1/incidents", json={"service": "toodego", "subject": "Attaque", "security_alert": True,
                                                    "description": "Connexions suspectes."})
    assert missing.status_code == 422 and "detected_at" in missing.get_json()["error"]["fields"]
