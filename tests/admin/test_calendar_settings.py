"""Calendar closures, exceptional hours and per-service targets move the deadlines of open tickets."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sau.admin.models import AuditEvent
from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from tests.conftest import DEMO_EMAILS, csrf_token

PARIS = ZoneInfo("Europe/Paris")


def _bloquant_ticket(app, make_request, clock) -> str:
    ref = make_request()
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))
        ops.set_priority(ops.get_ticket(ref), agent, "bloquant", clock.now())
        db.session.commit()
    return ref


def _deadline(app, ref: str) -> datetime:
    with app.app_context():
        return ops.get_ticket(ref).sla_deadline_at


def test_bridge_day_moves_open_deadlines_and_is_audited(app, clock, make_request, login_as):
    ref = _bloquant_ticket(app, make_request, clock)
    assert _deadline(app, ref) == datetime(2026, 3, 11, 10, 0, tzinfo=PARIS)
    admin = login_as("admin")
    token = csrf_token(admin, "/admin/calendrier")
    r = admin.post("/admin/calendrier/jours", data={"csrf_token": token, "day": "11/03/2026", "label": "Pont"})
    assert r.status_code == 303
    assert _deadline(app, ref) == datetime(2026, 3, 12, 10, 0, tzinfo=PARIS)
    page = admin.get("/admin/calendrier").get_data(as_text=True)
    assert "11/03/2026" in page and "Fermé toute la journée" in page
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "calendar.day_added"))
        assert event is not None and event.object_label == "Pont"
        closure_id = event.object_id
    r = admin.post(f"/admin/calendrier/jours/{closure_id}/supprimer", data={"csrf_token": token})
    assert r.status_code == 303
    assert _deadline(app, ref) == datetime(2026, 3, 11, 10, 0, tzinfo=PARIS)


def test_exceptional_hours_count_only_those_hours(app, clock, make_request, login_as):
    ref = _bloquant_ticket(app, make_request, clock)
    admin = login_as("admin")
    token = csrf_token(admin, "/admin/calendrier")
    r = admin.post("/admin/calendrier/jours", data={"csrf_token": token, "day": "2026-03-11", "label": "Demi-journée",
                                                    "opens_at": "11:00", "closes_at": "12:00"})
    assert r.status_code == 303
    # Tuesday 10:00–17:00 = 7 h; Wednesday opens only 11:00–12:00: the 8th hour ends at 12:00.
    assert _deadline(app, ref) == datetime(2026, 3, 11, 12, 0, tzinfo=PARIS)
    r = admin.post("/admin/calendrier/jours", data={"csrf_token": token, "day": "2026-03-12", "label": "Matin",
                                                    "opens_at": "13:00", "closes_at": "14:00"})
    assert r.status_code == 303


@pytest.mark.parametrize("data, field, message", [
    ({"day": "", "label": "x"}, "day", "Indiquez la date."),
    ({"day": "31/02/2026", "label": "x"}, "day", "Date invalide"),
    ({"day": "12/03/2026", "label": ""}, "label", "Indiquez le motif"),
    ({"day": "12/03/2026", "label": "x", "opens_at": "25:00", "closes_at": "26:00"}, "opens_at", "Heure invalide"),
    ({"day": "12/03/2026", "label": "x", "opens_at": "10:00"}, "closes_at", "ou aucune des deux"),
    ({"day": "12/03/2026", "label": "x", "opens_at": "14:00", "closes_at": "10:00"}, "closes_at", "doit suivre"),
])
def test_bad_calendar_input_is_refused_in_french(app, login_as, data, field, message):
    admin = login_as("admin")
    token = csrf_token(admin, "/admin/calendrier")
    r = admin.post("/admin/calendrier/jours", data={"csrf_token": token, **data})
    assert r.status_code == 422
    assert message in r.get_data(as_text=True)


def test_service_targets_override_the_convention(app, clock, make_request, login_as):
    ref = _bloquant_ticket(app, make_request, clock)
    with app.app_context():
        service_id = ops.get_ticket(ref).service_id
    admin = login_as("admin")
    token = csrf_token(admin, "/admin/calendrier")
    r = admin.post(f"/admin/calendrier/services/{service_id}",
                   data={"csrf_token": token, f"s{service_id}-csrf_token": token, f"s{service_id}-bloquant": "4",
                         f"s{service_id}-majeur": ""})
    assert r.status_code == 303
    assert _deadline(app, ref) == datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
    r = admin.post(f"/admin/calendrier/services/{service_id}",
                   data={f"s{service_id}-csrf_token": token, f"s{service_id}-bloquant": "abc"})
    assert r.status_code == 422 and "nombre d&#39;heures" in r.get_data(as_text=True)


@pytest.mark.parametrize("role, status", [("agent_metropole", 403), ("manager_metropole", 403), ("usager_a", 403)])
def test_calendar_is_for_admins_only(app, login_as, role, status):
    assert login_as(role).get("/admin/calendrier").status_code == status
    assert app.test_client().get("/admin/calendrier").status_code == 302
