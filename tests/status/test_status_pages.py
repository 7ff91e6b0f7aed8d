"""The public status page, the help form's maintenance banner and the management pages (issue 6, points 2–3)."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.conftest import csrf_token
from tests.status.conftest import demo, service

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def _maintenance(now: datetime, start: timedelta, hours: int = 2, impact: str = "Paiement en ligne coupé.") -> Any:
    from sau.extensions import db
    from sau.status import operations as ops

    # Announced in the past (clock moved back), so that a window under way can be set up.
    m = ops.announce_maintenance(demo("admin"), now + start - timedelta(days=3), service("toodego"), now + start,
                                 now + start + timedelta(hours=hours), impact)
    db.session.commit()
    return m


def _outage(start: datetime, end: datetime | None, kind: str = "total", planned: bool = False) -> Any:
    from sau.extensions import db
    from sau.status.models import Outage

    o = Outage(service=service("toodego"), started_at=start, ended_at=end, kind=kind, is_planned=planned,
               description="Erreur 502 sur les téléservices", created_at=start)
    db.session.add(o)
    db.session.commit()
    return o


def text(response: Any) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def test_status_page_is_public_and_lists_every_service(client: Any, ctx: None) -> None:
    response = client.get("/statut")
    assert response.status_code == 200
    body = text(response)
    assert "<h1>État des services</h1>" in body
    for name in ("Toodego", "laclasse.com"):
        assert name in body
    assert "Opérationnel" in body and "Indisponible" not in body
    assert 'href="/statut/toodego"' in body
    assert client.get("/statut/inconnu").status_code == 404
    assert 'href="/statut">État des services</a>' in text(client.get("/aide"))  # the footer link


def test_service_page_shows_ongoing_and_upcoming_maintenance(client: Any, ctx: None, clock: Any) -> None:
    now = clock.now()
    _maintenance(now, -timedelta(hours=1), impact="Paiement en ligne coupé.")
    _maintenance(now, timedelta(days=2), impact="Connexion impossible.")
    body = text(client.get("/statut/toodego"))
    assert "Maintenance en cours" in body and "Paiement en ligne coupé." in body
    assert "du 12/03/2026 à 10:00 au 12/03/2026 à 12:00 — impact prévu : Connexion impossible." in body
    overview = text(client.get("/statut"))
    assert "Maintenance en cours" in overview and "Prochaine : du 12/03/2026" in overview


def test_cancelled_maintenance_is_not_shown(client: Any, ctx: None, clock: Any) -> None:
    from sau.extensions import db
    from sau.status import operations as ops

    m = _maintenance(clock.now(), timedelta(days=2))
    ops.cancel_maintenance(demo("admin"), clock.now(), m)
    db.session.commit()
    assert "Aucune maintenance programmée." in text(client.get("/statut/toodego"))


def test_service_page_shows_the_last_90_days_and_the_month(client: Any, ctx: None, clock: Any) -> None:
    # 10 March 2026 10:00 Paris. An unplanned 1 h outage on 3 March; a planned one on 4 March (excluded);
    # a partial outage of 2 h on 5 March (weighted 0.5).
    _outage(paris(2026, 3, 3, 14), paris(2026, 3, 3, 15))
    _outage(paris(2026, 3, 4, 14), paris(2026, 3, 4, 18), planned=True)
    _outage(paris(2026, 3, 5, 8), paris(2026, 3, 5, 10), kind="partial")
    body = text(client.get("/statut/toodego"))
    rows = re.findall(r'<tr[^>]*> <th scope="row">([^<]+)</th> <td>([^<]+)</td> <td>([^<]+)</td> </tr>', body)
    assert len(rows) == 90
    assert rows[0][0] == "mardi 10 mars 2026" and rows[-1][0] == "jeudi 11 décembre 2025"
    by_day = {day: (pct, detail) for day, pct, detail in rows}
    assert by_day["mardi 3 mars 2026"] == ("95,83 %", "1 (1 h 00 min 00 s)")  # 1 h of 24
    assert by_day["mercredi 4 mars 2026"][0] == "100,00 %"
    assert by_day["jeudi 5 mars 2026"] == ("95,83 %", "1 (1 h 00 min 00 s)")
    assert by_day["lundi 9 mars 2026"] == ("100,00 %", "Aucune")
    # March lasts 31 days − 1 h (DST): 743 h; 2 h down → 99.731 %; allowed 44 min 34.8 s ≈ 44 min 35 s.
    assert "Disponibilité de mars 2026" in body
    assert "99,731 % (objectif : 99,9 %)" in body
    assert "44 min 35 s" in body
    assert "dépassée de 1 h 15 min 25 s" in body


def test_ongoing_outage_sets_the_state_and_counts_up_to_now(client: Any, ctx: None, clock: Any) -> None:
    _outage(clock.now() - timedelta(minutes=20), None)
    body = text(client.get("/statut/toodego"))
    assert "Indisponible" in body and "Indisponibilités en cours" in body
    assert "20 min 00 s" in body
    assert "Indisponible" in text(client.get("/statut"))
    assert "Opérationnel" in text(client.get("/statut/laclasse"))


def test_help_form_shows_the_banner_while_maintenance_is_under_way(client: Any, ctx: None, clock: Any) -> None:
    now = clock.now()
    _maintenance(now, timedelta(hours=1))
    assert "Maintenance en cours" not in text(client.get("/aide?service=toodego"))
    clock.advance(timedelta(hours=1, minutes=30))
    body = text(client.get("/aide?service=toodego"))
    assert "<strong>Maintenance en cours</strong> : Toodego est en maintenance programmée jusqu'au 10/03/2026 à 13:00" \
        in body
    assert "Maintenance en cours" not in text(client.get("/aide?service=laclasse"))
    clock.advance(timedelta(hours=2))
    assert "Maintenance en cours" not in text(client.get("/aide?service=toodego"))


@pytest.mark.parametrize("role", ["agent_metropole", "admin", "manager_metropole"])
def test_metropole_staff_manage_outages_and_maintenance(login_as: Any, ctx: None, role: str, make_request: Any) -> None:
    from sau.admin.models import AuditEvent
    from sau.extensions import db
    from sau.status.models import Maintenance, Outage

    reference = make_request()
    client = login_as(role)
    assert client.get("/statut/gestion").status_code == 200
    token = csrf_token(client, "/statut/gestion/indisponibilites/nouvelle")
    response = client.post("/statut/gestion/indisponibilites/nouvelle", data={
        "csrf_token": token, "service": "toodego", "started_at": "2026-03-10T08:00", "ended_at": "",
        "kind": "partial", "description": "Lenteurs", "tickets": reference})
    assert response.status_code == 303, text(response)
    outage = db.session.scalar(sa.select(Outage))
    assert outage.ended_at is None and outage.kind == "partial" and not outage.is_planned
    assert [t.reference for t in outage.tickets] == [reference]
    assert outage.started_at == paris(2026, 3, 10, 8)
    # Ended later.
    response = client.post(f"/statut/gestion/indisponibilites/{outage.id}", data={
        "csrf_token": token, "service": "toodego", "started_at": "2026-03-10T08:00", "ended_at": "2026-03-10T09:15",
        "kind": "partial", "description": "Lenteurs", "tickets": reference})
    assert response.status_code == 303
    db.session.refresh(outage)
    assert outage.ended_at == paris(2026, 3, 10, 9, 15)

    response = client.post("/statut/gestion/maintenances/nouvelle", data={
        "csrf_token": token, "service": "toodego", "starts_at": "2026-03-14T22:00", "ends_at": "2026-03-15T02:00",
        "impact": "Toodego indisponible"})
    assert response.status_code == 303, text(response)
    m = db.session.scalar(sa.select(Maintenance))
    assert (m.status, m.version, m.starts_at) == ("announced", 1, paris(2026, 3, 14, 22))
    response = client.post(f"/statut/gestion/maintenances/{m.id}", data={
        "csrf_token": token, "starts_at": "2026-03-14T23:00", "ends_at": "2026-03-15T02:00",
        "impact": "Toodego indisponible"})
    assert response.status_code == 303, text(response)
    response = client.post(f"/statut/gestion/maintenances/{m.id}/annuler", data={"csrf_token": token})
    assert response.status_code == 303
    db.session.refresh(m)
    assert (m.status, m.version) == ("cancelled", 2)
    actions = set(db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.object_type.in_(("outage", "maintenance")))))
    assert actions == {"outage.recorded", "outage.updated", "maintenance.announced", "maintenance.changed",
                       "maintenance.cancelled"}


def test_invalid_forms_show_french_errors(login_as: Any, ctx: None) -> None:
    client = login_as("admin")
    token = csrf_token(client, "/statut/gestion/maintenances/nouvelle")
    response = client.post("/statut/gestion/maintenances/nouvelle", data={
        "csrf_token": token, "service": "toodego", "starts_at": "2026-03-01T10:00", "ends_at": "demain", "impact": ""})
    assert response.status_code == 422
    body = text(response)
    assert "Date et heure invalides" in body
    response = client.post("/statut/gestion/maintenances/nouvelle", data={
        "csrf_token": token, "service": "toodego", "starts_at": "2026-03-01T10:00", "ends_at": "2026-03-01T09:00",
        "impact": ""})
    assert response.status_code == 422
    body = text(response)
    assert "Une maintenance s'annonce avant son début" in body
    assert "La fin doit être postérieure au début." in body
    assert "Décrivez l'impact prévu" in body
    # Without a service, the other errors show at once too.
    response = client.post("/statut/gestion/maintenances/nouvelle", data={"csrf_token": token, "service": ""})
    body = text(response)
    assert response.status_code == 422
    assert "Choisissez le service." in body and "Indiquez le début de la maintenance." in body
    assert "Décrivez l'impact prévu" in body
    response = client.post("/statut/gestion/indisponibilites/nouvelle", data={
        "csrf_token": token, "service": "toodego", "started_at": "2026-03-10T08:00", "kind": "total",
        "tickets": "SAU-2026-999999"})
    assert response.status_code == 422
    assert "Ticket introuvable : SAU-2026-999999." in text(response)


@pytest.mark.parametrize("role", ["usager_a", "agent_ecully", "referent_ecully"])
def test_management_pages_are_for_metropole_staff_only(login_as: Any, client: Any, role: str) -> None:
    for path in ("/statut/gestion", "/statut/gestion/indisponibilites/nouvelle", "/statut/gestion/maintenances/nouvelle"):
        assert login_as(role).get(path).status_code == 403
        response = client.get(path)
        assert response.status_code in (302, 303) and "/auth/login" in response.headers["Location"]
    # And the public pages stay public for them.
    assert login_as(role).get("/statut/toodego").status_code == 200
