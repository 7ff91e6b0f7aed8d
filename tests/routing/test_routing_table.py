"""The routing table (convention art. 3, Toodego annex § 4, laclasse.com annex): for each service × offer × category,
the competent organisation, the support level, whether the Métropole must triage, and the rule that decided.

Demo communes: Écully 69081 and Vénissieux 69259 are Toodego Partenaires, Tassin 69244 and Caluire 69034 Abonnées,
Villeurbanne 69266 Connectée; Bron 69029 was Connectée until 2024-12-31 (ended: not active on the frozen date,
2026-03-10); Lyon 69123 never subscribed. Each case is checked through `route()` and through the API, and the
decision's reason is recorded in the `ticket.routed` event.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sau import refdata
from sau.auth import policy
from sau.extensions import db
from sau.orgs.models import Organisation, School, Service
from sau.routing.models import RoutingRule
from sau.routing.operations import RoutingRequest, commune_offer, route
from tests.conftest import FROZEN_AT

TODAY = FROZEN_AT.date()
TRIAGE = None  # no rule matched: the Métropole's triage queue

PARTENAIRE = "Toodego — démarche communale, commune Partenaire"
ABONNEE = "Toodego — démarche communale, commune Abonnée"
CONNECTEE = "Toodego — démarche communale, commune Connectée"
TOODEGO_METROPOLE = "Toodego — plateforme et démarches métropolitaines"
TOODEGO_COMPTE = "Toodego — compte usager"
TOODEGO_AUTRE = "Toodego — autre question"
LACLASSE = "laclasse.com — administrateur de l'établissement"
GLC = "GrandLyon Connect — Métropole"
DATA = "data.grandlyon.com — Métropole"


class Case(NamedTuple):
    service: str
    category: str
    commune: str | None  # INSEE code sent with the request
    school: str | None  # UAI
    offer: str | None  # the commune's Toodego offer on the day, "none" when not subscribed
    organisation: str  # expected organisation code
    level: int
    rule: str | None  # expected rule name; None → triage


CASES = {
    # Toodego, a communal téléservice: the commune competent according to its offer (annex § 4).
    "toodego-communal-partenaire-ecully": Case("toodego", "teleservice-communal", "69081", None, "partenaire",
                                               "69081", 1, PARTENAIRE),
    "toodego-communal-partenaire-venissieux": Case("toodego", "teleservice-communal", "69259", None, "partenaire",
                                                   "69259", 1, PARTENAIRE),
    "toodego-communal-abonne-tassin": Case("toodego", "teleservice-communal", "69244", None, "abonne",
                                           "69244", 1, ABONNEE),
    "toodego-communal-abonne-caluire": Case("toodego", "teleservice-communal", "69034", None, "abonne",
                                            "69034", 1, ABONNEE),
    "toodego-communal-connecte-villeurbanne": Case("toodego", "teleservice-communal", "69266", None, "connecte",
                                                   "69266", 1, CONNECTEE),
    "toodego-communal-ended-bron": Case("toodego", "teleservice-communal", "69029", None, "none",
                                       "metropole", 1, TRIAGE),
    "toodego-communal-never-lyon": Case("toodego", "teleservice-communal", "69123", None, "none",
                                        "metropole", 1, TRIAGE),
    # Toodego, the platform and the Métropole's téléservices: the Métropole, whatever the commune's offer.
    "toodego-metropole-partenaire": Case("toodego", "teleservice-metropole", "69081", None, "partenaire",
                                         "metropole", 1, TOODEGO_METROPOLE),
    "toodego-metropole-abonne": Case("toodego", "teleservice-metropole", "69244", None, "abonne",
                                     "metropole", 1, TOODEGO_METROPOLE),
    "toodego-metropole-connecte": Case("toodego", "teleservice-metropole", "69266", None, "connecte",
                                       "metropole", 1, TOODEGO_METROPOLE),
    "toodego-metropole-ended": Case("toodego", "teleservice-metropole", "69029", None, "none",
                                    "metropole", 1, TOODEGO_METROPOLE),
    "toodego-metropole-no-commune": Case("toodego", "teleservice-metropole", None, None, None,
                                         "metropole", 1, TOODEGO_METROPOLE),
    "toodego-compte-partenaire": Case("toodego", "compte", "69081", None, "partenaire", "metropole", 1, TOODEGO_COMPTE),
    "toodego-compte-abonne": Case("toodego", "compte", "69034", None, "abonne", "metropole", 1, TOODEGO_COMPTE),
    "toodego-compte-no-commune": Case("toodego", "compte", None, None, None, "metropole", 1, TOODEGO_COMPTE),
    "toodego-autre-connecte": Case("toodego", "autre", "69266", None, "connecte", "metropole", 1, TOODEGO_AUTRE),
    "toodego-autre-never": Case("toodego", "autre", "69123", None, "none", "metropole", 1, TOODEGO_AUTRE),
    # laclasse.com: first level by the administrators of the usager's school, in the school's commune.
    "laclasse-connexion-ecully-school": Case("laclasse", "connexion", None, "0690900A", "subscribed",
                                             "69081", 1, LACLASSE),
    "laclasse-usage-ecully-other-school": Case("laclasse", "usage", None, "0690901B", "subscribed",
                                               "69081", 1, LACLASSE),
    "laclasse-technique-tassin-school": Case("laclasse", "technique", None, "0690910C", "subscribed",
                                             "69244", 1, LACLASSE),
    "laclasse-connexion-caluire-school": Case("laclasse", "connexion", None, "0690920D", "subscribed",
                                              "69034", 1, LACLASSE),
    "laclasse-school-and-its-commune": Case("laclasse", "usage", "69244", "0690910C", "subscribed",
                                            "69244", 1, LACLASSE),
    # GrandLyon Connect and data.grandlyon.com are operated by the Métropole.
    "glc-compte-no-commune": Case("grandlyon-connect", "compte", None, None, None, "metropole", 1, GLC),
    "glc-connexion-no-commune": Case("grandlyon-connect", "connexion", None, None, None, "metropole", 1, GLC),
    "glc-franceconnect-subscribed-commune": Case("grandlyon-connect", "franceconnect", "69081", None, "subscribed",
                                                 "metropole", 1, GLC),
    "glc-donnees-unsubscribed-commune": Case("grandlyon-connect", "donnees", "69259", None, "none",
                                             "metropole", 1, GLC),
    "data-jeu-no-commune": Case("data-grandlyon", "jeu-de-donnees", None, None, None, "metropole", 1, DATA),
    "data-api-subscribed-commune": Case("data-grandlyon", "api", "69259", None, "subscribed", "metropole", 1, DATA),
    "data-compte-unsubscribed-commune": Case("data-grandlyon", "compte", "69081", None, "none", "metropole", 1, DATA),
}


def _objects(case: Case) -> tuple[Service, Organisation | None, School | None]:
    service = db.session.scalar(sa.select(Service).where(Service.code == case.service))
    commune = db.session.scalar(sa.select(Organisation).where(Organisation.code == case.commune)) if case.commune \
        else None
    school = db.session.scalar(sa.select(School).where(School.uai == case.school)) if case.school else None
    if school is not None and commune is None:
        commune = school.commune  # as the intake does: the school names its commune
    assert service is not None and (case.commune is None or commune is not None)
    return service, commune, school


def _rule_id(name: str | None) -> int | None:
    if name is None:
        return None
    rule_id = db.session.scalar(sa.select(RoutingRule.id).where(RoutingRule.name == name))
    assert rule_id is not None, f"no rule named {name!r} in the demo data"
    return rule_id


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_routing_table(app, login_as, case: Case):
    # 1. The decision itself.
    with app.app_context():
        service, commune, school = _objects(case)
        decision = route(RoutingRequest(service=service, category_code=case.category, commune=commune,
                                        school=school, on=TODAY))
        assert (decision.organisation.code, decision.level) == (case.organisation, case.level)
        assert decision.needs_triage is (case.rule is None)
        assert decision.offer == case.offer
        expected_rule_id = _rule_id(case.rule)
        assert decision.rule_id == expected_rule_id
        if case.rule is None:
            assert "file de tri" in decision.reason
        else:
            assert case.rule in decision.reason

    # 2. The same decision through the API, recorded with its reason in the ticket's log.
    payload = {"service": case.service, "category": case.category, "subject": "Aide",
               "description": "Je n'arrive pas à terminer ma démarche.", "email": "demandeur@example.org"}
    payload |= {"commune": case.commune} if case.commune else {}
    payload |= {"school": case.school} if case.school else {}
    created = app.test_client().post("/api/v1/requests", json=payload)
    assert created.status_code == 201, created.get_data(as_text=True)
    data = created.get_json()
    assert data["routed_to"]["code"] == case.organisation
    assert data["routed_to"]["kind"] == ("metropole" if case.organisation == "metropole" else "commune")
    assert data["level"] == case.level

    staff = login_as("admin").get(f"/api/v1/requests/{data['reference']}").get_json()
    assert staff["needs_triage"] is (case.rule is None)
    assert staff["routing_reason"] == decision.reason
    routed = [e for e in staff["events"] if e["type"] == "ticket.routed"]
    assert len(routed) == 1
    assert routed[0]["data"]["reason"] == decision.reason
    assert routed[0]["data"]["rule_id"] == expected_rule_id
    assert routed[0]["data"]["organisation"] == case.organisation and routed[0]["data"]["offer"] == case.offer


def test_every_sau_service_and_category_is_in_the_table(app, ctx):
    """The table covers every category of every service with a SAU, so a new category cannot go untested."""
    covered = {(c.service, c.category) for c in CASES.values()}
    services = db.session.scalars(sa.select(Service).where(Service.has_sau.is_(True))).all()
    expected = {(s.code, c.code) for s in services for c in s.categories}
    assert expected and expected <= covered, sorted(expected - covered)


# --- subscriptions in time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("on", "offer", "organisation", "triage"), [
    (date(2024, 12, 31), "connecte", "69029", False),  # last day of Bron's subscription
    (date(2025, 1, 1), "none", "metropole", True),  # the day after: no competent commune
    (TODAY, "none", "metropole", True),
])
def test_ended_subscription_no_longer_routes_to_the_commune(app, ctx, on, offer, organisation, triage):
    service = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
    bron = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69029"))
    assert commune_offer(bron, service, on) == offer
    decision = route(RoutingRequest(service, "teleservice-communal", bron, None, on))
    assert (decision.organisation.code, decision.needs_triage) == (organisation, triage)


def test_api_routes_with_the_subscriptions_of_the_day(app, clock):
    payload = {"service": "toodego", "category": "teleservice-communal", "commune": "69029", "subject": "Aide",
               "description": "Ma démarche de Bron ne fonctionne pas.", "email": "demandeur@example.org"}
    clock.set(datetime(2024, 12, 31, 16, 0, tzinfo=ZoneInfo("Europe/Paris")))
    assert app.test_client().post("/api/v1/requests", json=payload).get_json()["routed_to"]["code"] == "69029"
    clock.set(datetime(2025, 1, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris")))
    assert app.test_client().post("/api/v1/requests", json=payload).get_json()["routed_to"]["code"] == "metropole"


# --- rules are data ---------------------------------------------------------------------------------------------


def test_an_inactive_rule_is_skipped(app, ctx):
    db.session.execute(sa.update(RoutingRule).where(RoutingRule.name == PARTENAIRE).values(is_active=False))
    refdata.bump()  # a write that bypasses the ORM's flush says so itself (sau/refdata.py)
    service, commune, school = _objects(CASES["toodego-communal-partenaire-ecully"])
    decision = route(RoutingRequest(service, "teleservice-communal", commune, school, TODAY))
    assert decision.needs_triage and decision.organisation.code == "metropole" and decision.rule_id is None


def test_first_matching_rule_by_position_wins(app, ctx):
    """A commune-specific rule placed first overrides the general one (e.g. a level-2 agreement)."""
    service = db.session.scalar(sa.select(Service).where(Service.code == "grandlyon-connect"))
    villeurbanne = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69266"))
    db.session.add(RoutingRule(position=1, name="GLC — Villeurbanne traite ses usagers", service=service,
                               commune=villeurbanne, target="commune", level=1, reason="Convention locale."))
    db.session.flush()

    local = route(RoutingRequest(service, "compte", villeurbanne, None, TODAY))
    assert local.organisation.code == "69266" and "Villeurbanne traite ses usagers" in local.reason
    ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
    general = route(RoutingRequest(service, "compte", ecully, None, TODAY))
    assert general.organisation.code == "metropole" and GLC in general.reason


def test_a_commune_rule_without_a_commune_does_not_match(app, ctx):
    """A rule targeting "the commune of the request" is skipped when the request names none."""
    service = db.session.scalar(sa.select(Service).where(Service.code == "data-grandlyon"))
    db.session.add(RoutingRule(position=1, name="data — la commune", service=service, target="commune", level=1))
    db.session.flush()
    decision = route(RoutingRequest(service, "api", None, None, TODAY))
    assert decision.organisation.code == "metropole" and DATA in decision.reason


# --- laclasse.com: the school's administrator works level 1 -----------------------------------------------------


def test_school_administrator_works_their_schools_laclasse_requests(app, login_as, make_request):
    from sau.auth.models import User
    from sau.tickets.operations import get_ticket
    from tests.conftest import DEMO_EMAILS

    own = make_request(service="laclasse", category="connexion", commune=None, school="0690900A")
    other = make_request(service="laclasse", category="connexion", commune=None, school="0690910C")
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["school_admin"]))
        assert policy.can_work(admin, get_ticket(own))
        assert not policy.can_work(admin, get_ticket(other))

    school_admin = login_as("school_admin")
    listed = school_admin.get("/api/v1/tickets").get_json()["tickets"]
    assert [t["reference"] for t in listed] == [own]
    response = school_admin.post(f"/api/v1/tickets/{own}/priority", json={"priority": "majeur"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["assignee"]["name"] == "Sophie Durand"
    assert school_admin.post(f"/api/v1/tickets/{other}/priority", json={"priority": "majeur"}).status_code == 404
    # The commune's own agents work their commune's queue too; Tassin's agent does not see Écully's school.
    assert login_as("agent_ecully").get(f"/api/v1/requests/{own}").status_code == 200
    assert login_as("agent_tassin").get(f"/api/v1/requests/{own}").status_code == 404


def test_triaged_request_lands_in_the_metropole_queue(login_as, make_request):
    ref = make_request(commune="69123")
    listed = login_as("agent_metropole").get("/api/v1/tickets").get_json()["tickets"]
    assert [t["reference"] for t in listed] == [ref]
    assert login_as("agent_metropole").get(f"/api/v1/requests/{ref}").get_json()["needs_triage"] is True
    html = login_as("agent_metropole").get("/agent/").get_data(as_text=True)
    assert ref in html and "À trier" in html
