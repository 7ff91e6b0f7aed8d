"""The administration of reference data: who may open it, what each change does, and that every change is
audited (who, when, before/after)."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from sau.admin import operations as ops
from sau.admin.models import AuditEvent
from sau.auth.models import User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.faq.models import FaqEntry
from sau.orgs.models import Category, Organisation, School, Service, Subscription
from sau.routing.models import RoutingRule
from sau.tickets import operations as ticket_ops
from tests.conftest import DEMO_EMAILS, csrf_token

ADMIN_PAGES = [
    "/admin/", "/admin/communes", "/admin/communes/nouvelle", "/admin/communes/{ecully}", "/admin/services",
    "/admin/services/{toodego}", "/admin/categories/{category}", "/admin/adhesions", "/admin/adhesions/nouvelle",
    "/admin/adhesions/{subscription}", "/admin/etablissements", "/admin/etablissements/nouveau",
    "/admin/etablissements/{school}", "/admin/routage", "/admin/routage/nouvelle", "/admin/routage/{rule}",
    "/admin/routage/tester?service=toodego&category=teleservice-communal&commune=69081", "/admin/habilitations",
    "/admin/habilitations/nouvelle", "/admin/journal",
]
FAQ_PAGES = ["/admin/faq", "/admin/faq/nouvelle", "/admin/faq/{faq}"]
# Who gets what: the admin pages are for Métropole admins only; the FAQ is also maintained by Métropole agents
# (the Métropole's manager works the Métropole's queue, hence counts as one).
ADMIN_ONLY = {"usager_a": 403, "agent_ecully": 403, "agent_metropole": 403, "referent_ecully": 403,
              "manager_metropole": 403, "school_admin": 403, "admin": 200}
FAQ_ACCESS = {"usager_a": 403, "agent_ecully": 403, "agent_metropole": 200, "referent_ecully": 403,
              "manager_metropole": 200, "school_admin": 403, "admin": 200}


def _one(model: Any, **where: Any) -> Any:
    return db.session.scalar(sa.select(model).filter_by(**where))


def _user(role: str) -> User:
    return _one(User, email=DEMO_EMAILS[role])


@pytest.fixture()
def ids(app: Flask) -> dict[str, int]:
    with app.app_context():
        toodego = _one(Service, code="toodego")
        return {
            "ecully": _one(Organisation, code="69081").id,
            "toodego": toodego.id,
            "category": _one(Category, service_id=toodego.id, code="compte").id,
            "subscription": db.session.scalars(sa.select(Subscription.id).order_by(Subscription.id)).first(),
            "school": _one(School, uai="0690900A").id,
            "rule": db.session.scalars(sa.select(RoutingRule.id).order_by(RoutingRule.id)).first(),
            "faq": db.session.scalars(sa.select(FaqEntry.id).order_by(FaqEntry.id)).first(),
        }


def post(client: FlaskClient, url: str, data: dict[str, Any], page: str = "/admin/faq") -> Any:
    """POST a form with a valid CSRF token taken from `page` (any page the client may open)."""
    return client.post(url, data={"csrf_token": csrf_token(client, page), **data})


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def body(response: Any) -> str:
    return response.get_data(as_text=True)


# --- access --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ADMIN_PAGES + FAQ_PAGES)
def test_access_to_every_admin_page(app, client, login_as, ids, page):
    url = page.format(**ids)
    response = client.get(url)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    expected = FAQ_ACCESS if page in FAQ_PAGES else ADMIN_ONLY
    got = {role: login_as(role).get(url).status_code for role in expected}
    assert got == expected


def test_a_non_admin_cannot_grant_a_role_even_with_a_valid_form(app, login_as, ids):
    agent = login_as("agent_metropole")
    response = post(agent, "/admin/habilitations/nouvelle",
                    {"email": DEMO_EMAILS["usager_b"], "organisation": "metropole", "role": "admin"})
    assert response.status_code == 403
    with app.app_context():
        assert _user("usager_b").memberships == []
        assert events("membership.granted") == []


def test_admin_nav_link_only_for_admins(login_as):
    assert 'href="/admin/"' in body(login_as("admin").get("/"))
    assert 'href="/admin/"' not in body(login_as("agent_metropole").get("/"))


def test_forms_require_the_csrf_token(app, login_as, ids):
    admin = login_as("admin")
    response = admin.post("/admin/communes/nouvelle", data={"code": "01001", "name": "Sans jeton"})
    assert response.status_code == 400
    assert "jeton de sécurité" in body(response)
    with app.app_context():
        membership = _user("agent_ecully").memberships[0]
    assert admin.post(f"/admin/habilitations/{membership.id}/retirer").status_code == 400
    with app.app_context():
        assert _one(Organisation, code="01001") is None
        assert len(_user("agent_ecully").memberships) == 1
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == 0
    response = post(admin, "/admin/communes/nouvelle", {"code": "01001", "name": "Avec jeton"})
    assert response.status_code == 303
    with app.app_context():
        assert _one(Organisation, code="01001").name == "Avec jeton"


# --- communes and services -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "field", "message"), [
    ({"code": "6908", "name": "X"}, "code", "exactement 5 chiffres"),
    ({"code": "69A81", "name": "X"}, "code", "exactement 5 chiffres"),
    ({"code": "69081", "name": "Doublon"}, "code", "déjà celui de Écully"),
    ({"code": "01002", "name": ""}, "name", "Indiquez le nom de la commune"),
    ({"code": "01002", "name": "X", "population": "beaucoup"}, "population", "nombre entier"),
    ({"code": "01002", "name": "X", "population": "-5"}, "population", "négative"),
])
def test_invalid_commune_is_refused_with_a_message_on_the_field(app, login_as, data, field, message):
    response = post(login_as("admin"), "/admin/communes/nouvelle", data)
    assert response.status_code == 422
    html = body(response)
    assert f'id="{field}-erreur"' in html and message in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(AuditEvent.id))) == 0


def test_create_edit_and_deactivate_a_commune_is_audited(app, login_as):
    admin = login_as("admin")
    response = post(admin, "/admin/communes/nouvelle", {"code": "01003", "name": "Nouvelle", "population": "1200"})
    assert response.status_code == 303
    with app.app_context():
        org = _one(Organisation, code="01003")
        org_id = org.id
    assert post(admin, f"/admin/communes/{org_id}", {"code": "01003", "name": "Nouvelle-sur-Saône",
                                                     "population": "1300"}).status_code == 303
    assert post(admin, f"/admin/communes/{org_id}/desactiver", {}).status_code == 303
    with app.app_context():
        assert _one(Organisation, code="01003").is_active is False
        created, updated, deactivated = (events("organisation.created"), events("organisation.updated"),
                                         events("organisation.deactivated"))
        assert created[0].data == {"before": None, "after": {"code": "01003", "name": "Nouvelle", "population": 1200,
                                                             "is_active": True}}
        assert updated[0].before["name"] == "Nouvelle" and updated[0].after["name"] == "Nouvelle-sur-Saône"
        assert deactivated[0].after["is_active"] is False and deactivated[0].actor_id == _user("admin").id
    # A deactivated commune is no longer offered in the help form.
    assert 'value="01003"' not in body(admin.get("/aide?service=toodego"))
    assert 'value="69081"' in body(admin.get("/aide?service=toodego"))


def test_service_without_sau_needs_a_reason(app, login_as, ids):
    admin = login_as("admin")
    response = post(admin, f"/admin/services/{ids['toodego']}", {"name": "Toodego", "asks_commune": "y"})
    assert response.status_code == 422
    assert "pourquoi ce service n&#39;a pas de SAU" in body(response)
    response = post(admin, f"/admin/services/{ids['toodego']}",
                    {"name": "Toodego", "has_sau": "y", "asks_commune": "y", "description": "Guichet"})
    assert response.status_code == 303
    with app.app_context():
        assert _one(Service, code="toodego").description == "Guichet"
        assert events("service.updated")[0].after["description"] == "Guichet"


def test_categories_can_be_added_and_removed_only_when_unused(app, login_as, ids, make_request):
    admin = login_as("admin")
    url = f"/admin/services/{ids['toodego']}/categories"
    bad = post(admin, url, {"category-code": "Avec Espaces", "category-label": "X", "category-position": "5"})
    assert bad.status_code == 422 and "minuscules sans accent" in body(bad)
    dup = post(admin, url, {"category-code": "compte", "category-label": "X", "category-position": "5"})
    assert dup.status_code == 422 and "déjà une catégorie" in body(dup)
    ok = post(admin, url, {"category-code": "paiement", "category-label": "Paiement en ligne",
                           "category-position": "5"})
    assert ok.status_code == 303
    with app.app_context():
        new_id = _one(Category, code="paiement").id
        used_by_rules = _one(Category, code="teleservice-communal").id
    assert post(admin, f"/admin/categories/{new_id}/supprimer", {}).status_code == 303
    refused = post(admin, f"/admin/categories/{used_by_rules}/supprimer", {})
    assert refused.status_code == 422 and "ne peut pas être supprimée" in body(refused)
    make_request(category="compte")
    refused = post(admin, f"/admin/categories/{ids['category']}/supprimer", {})
    assert refused.status_code == 422 and "1 demande" in body(refused)
    with app.app_context():
        assert _one(Category, code="paiement") is None
        assert _one(Category, code="teleservice-communal") is not None
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "category.created", "category.deleted"]


# --- subscriptions and routing -------------------------------------------------------------------------------

def test_a_new_subscription_changes_the_routing(app, login_as, make_request):
    admin = login_as("admin")
    tester = "/admin/routage/tester?service=toodego&category=teleservice-communal&commune=69123"
    before = body(admin.get(tester))
    assert "<dd>Métropole de Lyon</dd>" in before and "Commune non adhérente" in before
    with app.app_context():
        assert ticket_ops.get_ticket(make_request(commune="69123")).organisation.code == "metropole"

    response = post(admin, "/admin/adhesions/nouvelle", {"commune": "69123", "service": "toodego",
                                                         "offer": "partenaire", "starts_on": "2026-03-10"})
    assert response.status_code == 303

    after = body(admin.get(tester))
    assert "<dd>Lyon</dd>" in after and "commune Partenaire" in after
    with app.app_context():
        ticket = ticket_ops.get_ticket(make_request(commune="69123"))
        assert (ticket.organisation.code, ticket.level) == ("69123", 1)
        assert ticket.needs_triage is False
        (event,) = events("subscription.created")
        assert event.actor_id == _user("admin").id and event.actor_label == "Adèle Moreau"
        assert event.data == {"before": None, "after": {"commune": "69123", "service": "toodego",
                                                        "offer": "partenaire", "starts_on": "2026-03-10",
                                                        "ends_on": None}}


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"commune": "69123", "service": "toodego", "starts_on": "2026-03-10"}, "offer", "Choisissez l&#39;offre Toodego"),
    ({"commune": "69123", "service": "laclasse", "offer": "abonne", "starts_on": "2026-03-10"}, "offer",
     "ne concernent que Toodego"),
    ({"commune": "69123", "service": "laclasse", "starts_on": "2026-03-10", "ends_on": "2026-03-09"}, "ends_on",
     "ne peut pas précéder"),
    ({"commune": "69123", "service": "laclasse", "starts_on": "31/02/2026"}, "starts_on", "Date invalide"),
    ({"commune": "69123", "service": "laclasse"}, "starts_on", "Indiquez la date de début"),
    ({"commune": "99999", "service": "laclasse", "starts_on": "2026-03-10"}, "commune", "choix valide"),
    # Écully has been a Partenaire since 2025-01-01 with no end date.
    ({"commune": "69081", "service": "toodego", "offer": "abonne", "starts_on": "2026-06-01"}, "starts_on",
     "adhère déjà à Toodego"),
    ({"commune": "69081", "service": "toodego", "offer": "abonne", "starts_on": "2024-01-01",
      "ends_on": "2025-01-01"}, "starts_on", "adhère déjà"),
])
def test_invalid_subscription_is_refused(app, login_as, data, field, message):
    response = post(login_as("admin"), "/admin/adhesions/nouvelle", data)
    assert response.status_code == 422
    html = body(response)
    assert f'id="{field}-erreur"' in html and message in html
    with app.app_context():
        assert events("subscription.created") == []


def test_ending_a_subscription_then_subscribing_again(app, login_as):
    admin = login_as("admin")
    with app.app_context():
        toodego = _one(Service, code="toodego")
        sub_id = _one(Subscription, organisation_id=_one(Organisation, code="69081").id, service_id=toodego.id).id
    early = post(admin, f"/admin/adhesions/{sub_id}/terminer", {"end-ends_on": "2024-12-31"})
    assert early.status_code == 422 and "ne peut pas précéder le début" in body(early)
    assert post(admin, f"/admin/adhesions/{sub_id}/terminer", {"end-ends_on": "2026-05-31"}).status_code == 303
    response = post(admin, "/admin/adhesions/nouvelle", {"commune": "69081", "service": "toodego",
                                                         "offer": "abonne", "starts_on": "2026-06-01"})
    assert response.status_code == 303
    with app.app_context():
        (ended,) = events("subscription.ended")
        assert ended.before["ends_on"] is None and ended.after["ends_on"] == "2026-05-31"
        assert len(events("subscription.created")) == 1


# --- schools --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uai", "message"), [
    ("123ABC", "7 chiffres suivis d&#39;une lettre"),
    ("06909001", "7 chiffres suivis d&#39;une lettre"),
    ("0690900AA", "7 chiffres suivis d&#39;une lettre"),
    ("0690900A", "déjà celui de l&#39;établissement"),
])
def test_bad_or_duplicate_uai_is_refused(app, login_as, uai, message):
    response = post(login_as("admin"), "/admin/etablissements/nouveau",
                    {"uai": uai, "name": "École test", "commune": "69081"})
    assert response.status_code == 422
    assert 'id="uai-erreur"' in body(response) and message in body(response)
    with app.app_context():
        assert _one(School, name="École test") is None


def test_school_is_created_with_its_administrator(app, login_as):
    admin = login_as("admin")
    response = post(admin, "/admin/etablissements/nouveau", {"uai": "0690930e", "name": "École test",
                                                            "commune": "69081"})
    assert response.status_code == 303
    with app.app_context():
        school = _one(School, uai="0690930E")
        assert school.commune.code == "69081"
        school_id = school.id
    unknown = post(admin, f"/admin/etablissements/{school_id}/administrateurs", {"admin-email": "nobody@example.org"})
    assert unknown.status_code == 422 and "Aucun compte" in body(unknown)
    added = post(admin, f"/admin/etablissements/{school_id}/administrateurs",
                 {"admin-email": DEMO_EMAILS["usager_b"].upper()})
    assert added.status_code == 303
    with app.app_context():
        assert [a.user.email for a in _one(School, uai="0690930E").administrators] == [DEMO_EMAILS["usager_b"]]
        assert events("school_administrator.added")[0].after["user"] == DEMO_EMAILS["usager_b"]


def test_school_commune_must_be_subscribed_to_laclasse(app, ctx, clock):
    # Villeurbanne (69266) does not subscribe to laclasse.com.
    with pytest.raises(ValidationFailed) as exc:
        ops.create_school(_user("admin"), clock.now(), uai="0690940F", name="École",
                          commune=_one(Organisation, code="69266"))
    assert "n'adhère pas à laclasse.com" in exc.value.fields["commune"]


# --- routing rules ----------------------------------------------------------------------------------------------

def test_routing_rules_can_be_created_and_deactivated(app, login_as, make_request):
    admin = login_as("admin")
    bad = post(admin, "/admin/routage/nouvelle", {"name": "Sans organisation", "position": "5", "service": "toodego",
                                                 "target": "organisation", "level": "1"})
    assert bad.status_code == 422 and "Choisissez l&#39;organisation" in body(bad)
    wrong_category = post(admin, "/admin/routage/nouvelle", {"name": "X", "position": "5", "service": "laclasse",
                                                            "category_code": "teleservice-communal",
                                                            "target": "metropole", "level": "1"})
    assert wrong_category.status_code == 422 and "n&#39;a pas de catégorie" in body(wrong_category)
    # Écully's Toodego account questions go to Tassin (an arbitrary but observable decision).
    ok = post(admin, "/admin/routage/nouvelle", {
        "name": "Comptes d'Écully", "position": "5", "service": "toodego", "category_code": "compte",
        "commune": "69081", "target": "organisation", "target_organisation": "69244", "level": "2",
        "reason": "Test", "is_active": "y"})
    assert ok.status_code == 303
    with app.app_context():
        ticket = ticket_ops.get_ticket(make_request(category="compte", commune="69081"))
        assert (ticket.organisation.code, ticket.level) == ("69244", 2)
        rule_id = _one(RoutingRule, name="Comptes d'Écully").id
    assert post(admin, f"/admin/routage/{rule_id}/desactiver", {}).status_code == 303
    with app.app_context():
        ticket = ticket_ops.get_ticket(make_request(category="compte", commune="69081"))
        assert ticket.organisation.code == "metropole"
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "routing_rule.created", "routing_rule.deactivated"]


def test_routing_tester_explains_invalid_input(login_as):
    response = login_as("admin").get("/admin/routage/tester?service=laclasse&category=connexion")
    assert response.status_code == 422
    assert "Choisissez votre établissement" in body(response)


# --- memberships ---------------------------------------------------------------------------------------------

def test_grant_and_revoke_a_membership(app, login_as, make_request):
    reference = make_request(commune="69081")  # lands in Écully's queue
    admin, louis = login_as("admin"), login_as("usager_b")
    assert louis.get("/agent/").status_code == 403

    response = post(admin, "/admin/habilitations/nouvelle",
                    {"email": DEMO_EMAILS["usager_b"], "organisation": "69081", "role": "agent"})
    assert response.status_code == 303
    queue = louis.get("/agent/")
    assert queue.status_code == 200 and reference in body(queue)
    duplicate = post(admin, "/admin/habilitations/nouvelle",
                     {"email": DEMO_EMAILS["usager_b"], "organisation": "69081", "role": "agent"})
    assert duplicate.status_code == 422 and "a déjà ce rôle" in body(duplicate)

    with app.app_context():
        membership = _user("usager_b").memberships[0]
        membership_id, louis_id = membership.id, membership.user_id
    assert post(admin, f"/admin/habilitations/{membership_id}/retirer", {}).status_code == 303
    assert louis.get("/agent/").status_code == 403

    with app.app_context():
        admin_user = _user("admin")
        (granted,) = events("membership.granted")
        (revoked,) = events("membership.revoked")
        expected = {"user_id": louis_id, "user": DEMO_EMAILS["usager_b"], "organisation": "69081", "role": "agent",
                    "service": None}
        assert granted.data == {"before": None, "after": expected}
        assert revoked.data == {"before": expected, "after": None}
        for event in (granted, revoked):
            assert event.actor_id == admin_user.id and event.actor_label == admin_user.display_name
            assert event.object_type == "membership" and event.object_id == membership_id
        assert revoked.at >= granted.at
    journal = body(admin.get("/admin/journal"))
    assert journal.index("Habilitation retirée") < journal.index("Habilitation accordée")


def test_an_admin_cannot_revoke_their_own_last_admin_role(app, login_as):
    admin = login_as("admin")
    with app.app_context():
        own = _user("admin").memberships[0]
    response = post(admin, f"/admin/habilitations/{own.id}/retirer", {})
    assert response.status_code == 422
    assert "dernière habilitation d&#39;administrateur" in body(response)
    with app.app_context():
        assert len(_user("admin").memberships) == 1 and events("membership.revoked") == []


def test_unknown_user_cannot_be_granted_a_role(login_as):
    response = post(login_as("admin"), "/admin/habilitations/nouvelle",
                    {"email": "inconnu@example.org", "organisation": "69081", "role": "agent"})
    assert response.status_code == 422
    assert 'id="email-erreur"' in body(response) and "Aucun compte" in body(response)


# --- FAQ ----------------------------------------------------------------------------------------------------

def test_metropole_agent_edits_the_faq_and_a_commune_agent_cannot(app, login_as, ids):
    data = {"service": "toodego", "question": "Comment suivre ma démarche ?", "answer": "Dans « Mes démarches ».",
            "keywords": "suivi", "is_published": "y"}
    assert post(login_as("agent_ecully"), f"/admin/faq/{ids['faq']}", data, page="/aide?service=toodego"
                ).status_code == 403
    assert post(login_as("agent_metropole"), f"/admin/faq/{ids['faq']}", data).status_code == 303
    with app.app_context():
        entry = db.session.get(FaqEntry, ids["faq"])
        assert entry.question == "Comment suivre ma démarche ?"
        (event,) = events("faq.updated")
        assert event.actor_id == _user("agent_metropole").id
        assert event.after["question"] == "Comment suivre ma démarche ?" != event.before["question"]


def test_faq_publish_unpublish_and_delete(app, login_as, ids):
    admin = login_as("admin")
    assert post(admin, f"/admin/faq/{ids['faq']}/depublier", {}).status_code == 303
    with app.app_context():
        question = str(escape(db.session.get(FaqEntry, ids["faq"]).question))
    assert question not in body(admin.get("/faq?service=toodego"))
    assert post(admin, f"/admin/faq/{ids['faq']}/publier", {}).status_code == 303
    assert question in body(admin.get("/faq?service=toodego"))
    assert post(admin, f"/admin/faq/{ids['faq']}/supprimer", {}).status_code == 303
    with app.app_context():
        assert db.session.get(FaqEntry, ids["faq"]) is None
        assert [e.action for e in db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))] == [
            "faq.unpublished", "faq.published", "faq.deleted"]


def test_faq_entry_needs_a_question_and_an_answer(login_as):
    response = post(login_as("admin"), "/admin/faq/nouvelle", {"service": "geonet", "question": "", "answer": ""})
    assert response.status_code == 422
    html = body(response)
    for field in ("service", "question", "answer"):
        assert f'id="{field}-erreur"' in html


def test_xss_in_a_faq_question_is_escaped(app, login_as):
    payload = '<script>alert("faq")</script><img src=x onerror=alert(1)>'
    admin = login_as("admin")
    response = post(admin, "/admin/faq/nouvelle", {"service": "toodego", "question": f"Paiement {payload}",
                                                  "answer": f"Réponse {payload}", "keywords": "paiement",
                                                  "is_published": "y"})
    assert response.status_code == 303
    for page in ("/faq?service=toodego&q=paiement", "/admin/faq", "/admin/journal"):
        html = body(admin.get(page))
        assert "&lt;script&gt;alert(" in html, page
        assert "<script>alert(" not in html and "<img src=x" not in html, page


# --- journal --------------------------------------------------------------------------------------------------

def test_journal_is_newest_first_and_paginated(app, ctx, clock, login_as):
    admin_user = _user("admin")
    rule = db.session.scalars(sa.select(RoutingRule).order_by(RoutingRule.id)).first()
    for i in range(55):
        ops.set_routing_rule_active(admin_user, clock.now(), rule, i % 2 == 1)
        clock.advance(timedelta(minutes=1))
    db.session.commit()
    newest = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    admin = login_as("admin")
    page1, page2 = body(admin.get("/admin/journal")), body(admin.get("/admin/journal?page=2"))
    times = re.findall(r'<time datetime="([^"]+)"', page1)
    assert len(times) == 50 and times == sorted(times, reverse=True)
    assert times[0] == newest.at.isoformat()
    assert len(re.findall(r"<time datetime=", page2)) == 5
    assert "55 entrées" in page1 and "Page 1 sur 2" in page1


def test_audit_events_are_immutable(app, ctx, clock):
    ops.set_commune_active(_user("admin"), clock.now(), _one(Organisation, code="69081"), False)
    db.session.commit()
    event = events("organisation.deactivated")[0]
    event.actor_label = "falsifié"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.delete(events("organisation.deactivated")[0])
        db.session.flush()
    db.session.rollback()


def test_no_500_on_unknown_objects(app, login_as):
    admin = login_as("admin")
    with app.app_context():
        metropole_id = _one(Organisation, code="metropole").id
    for page in ("/admin/communes/999999", "/admin/services/999999", "/admin/faq/999999",
                 f"/admin/communes/{metropole_id}"):  # the Métropole is not a commune
        assert admin.get(page).status_code == 404, page
    assert admin.get("/admin/journal?page=abc").status_code == 200
