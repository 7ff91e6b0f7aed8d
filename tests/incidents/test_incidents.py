"""Commune incident tickets (issue 6, point 1): routed to the Métropole's support whatever the commune's offer,
the commune's subscription shown, its référents (and no one else's) notified on resolution, tenant isolation."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from sau.auth.models import Membership, User
from sau.extensions import db
from sau.incidents import operations as iops
from sau.notify.models import Notification
from sau.orgs.models import Organisation
from sau.tickets import operations as ops
from tests.conftest import DEMO_EMAILS, csrf_token, ticket_count


def _user(role: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))


def add_member(insee: str, role: str, email: str, now: Any) -> User:
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == insee))
    user = User(email=email, given_name="Test", family_name=email.split("@")[0], created_at=now)
    db.session.add(user)
    db.session.flush()
    db.session.add(Membership(user_id=user.id, organisation_id=org.id, role=role, created_at=now))
    db.session.flush()
    db.session.refresh(user)
    return user


def test_incident_goes_to_metropole_whatever_the_offer(app, ctx, clock, make_request):
    # Without the incident rule, an Écully (partenaire) Toodego request goes to the commune's own queue.
    demande = ops.get_ticket(make_request(commune="69081"))
    assert demande.organisation.code == "69081"
    now = clock.now()
    villeurbanne = add_member("69266", "agent", "agent@villeurbanne.example", now)
    cases = [(_user("referent_ecully"), "69081", "partenaire"), (_user("agent_tassin"), "69244", "abonne"),
             (villeurbanne, "69266", "connecte")]
    for user, insee, offer in cases:
        ticket = iops.open_incident(user, iops.NewIncident(insee, "toodego", "Téléservices indisponibles",
                                                            "Plus aucune démarche ne s'affiche depuis 9 h."), now)
        assert ticket.kind == "incident" and ticket.commune.code == insee
        assert (ticket.organisation.code, ticket.level, ticket.needs_triage) == ("metropole", 1, False)
        assert ticket.priority is None  # set by the Métropole after diagnosis
        routed = next(e for e in ticket.events if e.type == "ticket.routed")
        assert routed.data["organisation"] == "metropole" and routed.data["offer"] == offer
        assert iops.subscription_for(ticket).offer == offer


def test_service_must_be_one_the_commune_subscribes_to(app, ctx, clock):
    referent = _user("referent_ecully")
    try:
        iops.open_incident(referent, iops.NewIncident("69081", "data-grandlyon", "Objet", "Description assez longue"),
                           clock.now())
    except iops.ValidationFailed as exc:
        assert "n'adhère pas à ce service" in exc.fields["service"]
    else:
        raise AssertionError("an incident about a service the commune does not subscribe to was accepted")


def test_form_shows_subscription_and_creates_incident(app, login_as):
    client = login_as("referent_ecully")
    page = client.get("/incidents/nouveau")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Adhésions de votre commune" in html and "Partenaire" in html
    token = csrf_token(client, "/incidents/nouveau")
    response = client.post("/incidents/nouveau", data={
        "csrf_token": token, "commune": "69081", "service": "toodego", "subject": "Démarches indisponibles",
        "description": "Les démarches de la commune ne s'affichent plus."})
    assert response.status_code == 303
    reference = response.headers["Location"].split("/incidents/")[1].split("?")[0]
    detail = client.get(f"/incidents/{reference}").get_data(as_text=True)
    assert "Métropole de Lyon" in detail and "offre Partenaire" in detail
    # The Métropole's agent sees the subscription and offer on the ticket page, and the commune's list has it.
    agent_page = login_as("agent_metropole").get(f"/agent/tickets/{reference}").get_data(as_text=True)
    assert "Adhésion de la commune" in agent_page and "offre Partenaire" in agent_page
    assert reference in login_as("agent_ecully").get("/incidents").get_data(as_text=True)
    assert reference not in login_as("agent_tassin").get("/incidents").get_data(as_text=True)


def test_validation_errors_in_french_html(app, login_as):
    client = login_as("referent_ecully")
    token = csrf_token(client, "/incidents/nouveau")
    before = ticket_count(app)
    response = client.post("/incidents/nouveau", data={"csrf_token": token, "commune": "69081", "service": "",
                                                       "subject": "", "description": "court"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Choisissez le service concerné." in html and "Indiquez l&#39;objet de l&#39;incident." in html
    assert "La description doit compter entre 10" in html
    assert ticket_count(app) == before


def test_usager_and_other_commune_cannot_open_or_see(app, login_as):
    assert login_as("usager_a").get("/incidents/nouveau").status_code == 403
    assert login_as("usager_a").get("/incidents").status_code == 403
    assert app.test_client().get("/incidents/nouveau").status_code in (302, 303)
    tassin = login_as("agent_tassin")
    token = csrf_token(tassin, "/incidents/nouveau")
    before = ticket_count(app)
    response = tassin.post("/incidents/nouveau", data={
        "csrf_token": token, "commune": "69081", "service": "toodego", "subject": "Pour Écully",
        "description": "Je tente d'ouvrir un incident pour Écully."})
    assert response.status_code == 403 and ticket_count(app) == before
    api = tassin.post("/api/v1/incidents", json={"commune": "69081", "service": "toodego", "subject": "x",
                                                "description": "Pour une autre commune."})
    assert api.status_code == 403 and api.get_json()["error"]["code"] == "forbidden"
    assert login_as("usager_a").post("/api/v1/incidents", json={"service": "toodego", "subject": "x",
                                                                "description": "Je suis un usager."}).status_code == 403
    assert app.test_client().post("/api/v1/incidents", json={}).status_code == 401
    # An Écully incident is hidden from usagers and from another commune, shown to Écully's agent.
    created = login_as("referent_ecully").post("/api/v1/incidents", json={
        "service": "toodego", "subject": "Panne", "description": "Les démarches ne s'affichent plus."})
    assert created.status_code == 201, created.get_json()
    reference = created.get_json()["reference"]
    assert created.get_json()["routed_to"]["code"] == "metropole"
    for role, status in (("usager_b", 404), ("agent_tassin", 404), ("agent_ecully", 200), ("agent_metropole", 200)):
        assert login_as(role).get(f"/incidents/{reference}").status_code == status, role
    assert ticket_count(app) == before + 1


def test_api_validation_errors_in_french(app, login_as):
    client = login_as("referent_ecully")
    response = client.post("/api/v1/incidents", json={"service": "data-grandlyon", "subject": "Panne",
                                                      "description": "Les données ne sont plus publiées."})
    body = response.get_json()
    assert response.status_code == 422 and body["error"]["code"] == "validation_error"
    assert "n'adhère pas" in body["error"]["fields"]["service"]
    missing = client.post("/api/v1/incidents", json={"subject": "Panne"}).get_json()
    assert set(missing["error"]["fields"]) >= {"service", "description"}


def test_referents_of_the_commune_notified_on_resolution_only(app, ctx, clock):
    now = clock.now()
    other_referent = add_member("69244", "referent", "referent@tassin.example", now)
    second_ecully = add_member("69081", "referent", "second.referent@ville-ecully.example", now)
    ticket = iops.open_incident(_user("agent_ecully"), iops.NewIncident("69081", "toodego", "Panne",
                                                                         "Plus aucune démarche en ligne."), now)
    agent = _user("agent_metropole")
    clock.advance(timedelta(minutes=30))
    ops.set_priority(ticket, agent, "majeur", clock.now(), ticket.version, "Fonction non essentielle")
    assert ticket.sla_deadline_at is not None
    clock.advance(timedelta(hours=2))
    ops.resolve(ticket, agent, "Connecteur relancé.", clock.now(), ticket.version)
    db.session.commit()
    rows = db.session.scalars(sa.select(Notification).where(Notification.ticket_id == ticket.id,
                                                            Notification.kind == "incident_resolved")).all()
    assert {r.user_id for r in rows} == {_user("referent_ecully").id, second_ecully.id}
    assert other_referent.id not in {r.user_id for r in rows}
    assert {r.channel for r in rows} == {"email", "inapp"}
    assert all("Connecteur relancé." in r.payload["message"] for r in rows)
    # The Écully agent who opened it is told as the requester ("resolved"), not as a référent.
    assert not any(r.user_id == _user("agent_ecully").id for r in rows)

