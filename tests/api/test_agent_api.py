"""Agent actions through the JSON API: priority, comments, status transitions, escalation, transfer, assignment;
tenant isolation (an agent of Tassin can neither list, read nor change an Écully ticket); optimistic locking."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sau.auth.models import Membership, User
from sau.extensions import db
from sau.orgs.models import Organisation
from sau.tickets.models import Comment, Ticket, TicketEvent

API = "/api/v1/tickets"


def act(client, reference: str, action: str, payload: dict[str, Any], version: int | str | None = None):
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    return client.post(f"{API}/{reference}/{action}", json=payload, headers=headers)


def read(client, reference: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/requests/{reference}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def error_of(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def snapshot(app, reference: str) -> tuple[Any, ...]:
    """Everything an action could change, read straight from the database."""
    with app.app_context():
        t = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        events = db.session.scalar(sa.select(sa.func.count()).select_from(TicketEvent).where(TicketEvent.ticket_id == t.id))
        comments = db.session.scalar(sa.select(sa.func.count()).select_from(Comment).where(Comment.ticket_id == t.id))
        return (t.version, t.status, t.priority, t.assignee_id, t.organisation_id, t.level, events, comments)


def make_agent(app, email: str, commune: str, given_name: str = "Élise") -> int:
    """A second agent of `commune`, created through the models as an admin would."""
    from sau.clock import now_utc

    with app.app_context():
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
        user = User(email=email, given_name=given_name, family_name="Agent", created_at=now_utc())
        db.session.add(user)
        db.session.add(Membership(user=user, organisation=org, role="agent", created_at=now_utc()))
        db.session.commit()
        return user.id


@pytest.fixture()
def ecully_ref(make_request) -> str:
    """A Toodego request of a usager about an Écully téléservice (Écully is Partenaire → Écully's queue)."""
    return make_request(requester="usager_a")


# --- priority ---------------------------------------------------------------------------------------------------


def test_set_priority_starts_work_and_is_logged(app, login_as, ecully_ref):
    agent = login_as("agent_ecully")
    version = read(agent, ecully_ref)["version"]

    response = act(agent, ecully_ref, "priority", {"priority": "majeur", "justification": "Démarche indisponible"},
                   version)

    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["priority"] == "majeur" and data["status"] == "en_cours"
    assert data["assignee"]["name"] == "Étienne Roux"
    assert data["version"] > version and response.headers["ETag"] == f'"{data["version"]}"'
    event = next(e for e in data["events"] if e["type"] == "priority.set")
    assert event["data"]["after"] == "majeur" and event["actor"] == "Étienne Roux" and event["public"] is False


def test_priority_body_version_is_also_accepted(login_as, ecully_ref):
    agent = login_as("agent_ecully")
    version = read(agent, ecully_ref)["version"]
    response = agent.post(f"{API}/{ecully_ref}/priority", json={"priority": "bloquant", "version": version})
    assert response.status_code == 200 and response.get_json()["priority"] == "bloquant"


@pytest.mark.parametrize("priority", ["urgent", "", None, 3])
def test_unknown_priority_is_422(app, login_as, ecully_ref, priority):
    before = snapshot(app, ecully_ref)
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "priority", {"priority": priority}), 422,
                     "validation_error")
    assert "priority" in error["fields"]
    assert snapshot(app, ecully_ref) == before


def test_same_priority_twice_is_an_invalid_transition(login_as, ecully_ref):
    agent = login_as("agent_ecully")
    assert act(agent, ecully_ref, "priority", {"priority": "mineur"}).status_code == 200
    error_of(act(agent, ecully_ref, "priority", {"priority": "mineur"}), 409, "invalid_transition")


# --- comments ---------------------------------------------------------------------------------------------------


def test_internal_note_is_hidden_from_the_requester(app, login_as, ecully_ref):
    agent = login_as("agent_ecully")
    public = act(agent, ecully_ref, "comments", {"body": "Pouvez-vous vider le cache de votre navigateur ?"})
    internal = act(agent, ecully_ref, "comments", {"body": "NOTE-INTERNE : l'éditeur est prévenu", "internal": True})
    assert public.status_code == 201 and internal.status_code == 201, internal.get_data(as_text=True)

    staff_view = read(agent, ecully_ref)
    assert [(c["internal"], c["body"]) for c in staff_view["comments"]] == [
        (False, "Pouvez-vous vider le cache de votre navigateur ?"),
        (True, "NOTE-INTERNE : l'éditeur est prévenu"),
    ]
    requester = login_as("usager_a").get(f"/api/v1/requests/{ecully_ref}")
    assert requester.status_code == 200
    text = requester.get_data(as_text=True)
    assert "NOTE-INTERNE" not in text and "comment.internal" not in text
    bodies = [e["body"] for e in requester.get_json()["events"] if e["body"]]
    assert bodies == ["Pouvez-vous vider le cache de votre navigateur ?"]


@pytest.mark.parametrize("payload", [{"body": ""}, {"body": "   "}, {}, {"body": "x", "internal": "peut-être"},
                                     {"body": "x" * 20_001}])
def test_invalid_comment_is_422_and_saves_nothing(app, login_as, ecully_ref, payload):
    before = snapshot(app, ecully_ref)
    error_of(act(login_as("agent_ecully"), ecully_ref, "comments", payload), 422, "validation_error")
    assert snapshot(app, ecully_ref) == before


# --- status transitions -----------------------------------------------------------------------------------------

# Steps from a new ticket: (status, message, expected status afterwards).
TRANSITIONS = {
    "take": [("en_cours", None, "en_cours")],
    "ask-then-resolve-then-close": [("en_attente", "Quel navigateur utilisez-vous ?", "en_attente"),
                                    ("resolu", "Cache vidé, tout fonctionne.", "resolu"),
                                    ("clos", None, "clos")],
    "resolve-then-reopen": [("resolu", "Corrigé.", "resolu"), ("en_cours", "Le problème revient.", "en_cours")],
    "reject": [("rejete", "Demande hors du champ du SAU.", "rejete")],
    "take-then-reject": [("en_cours", None, "en_cours"), ("rejete", "Spam.", "rejete")],
}


@pytest.mark.parametrize("steps", TRANSITIONS.values(), ids=TRANSITIONS.keys())
def test_status_transitions(login_as, ecully_ref, steps):
    agent = login_as("agent_ecully")
    for status, message, expected in steps:
        payload = {"status": status} | ({"message": message} if message else {})
        response = act(agent, ecully_ref, "status", payload, read(agent, ecully_ref)["version"])
        assert response.status_code == 200, (status, response.get_data(as_text=True))
        assert response.get_json()["status"] == expected


def test_duplicate_points_to_the_original(login_as, make_request):
    original, duplicate = make_request(), make_request()
    agent = login_as("agent_ecully")
    response = act(agent, duplicate, "status", {"status": "doublon", "message": "Déjà signalé.",
                                                "duplicate_of": original})
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["status"] == "doublon"
    assert any(e["type"] == "ticket.duplicate" and e["data"]["duplicate_of"] == original for e in data["events"])


# Steps to reach a state, then the impossible transition: 409 invalid_transition.
IMPOSSIBLE = {
    "close-a-new-ticket": ([], {"status": "clos"}),
    "close-a-ticket-in-progress": ([{"status": "en_cours"}], {"status": "clos"}),
    "wait-twice": ([{"status": "en_attente", "message": "Question ?"}], {"status": "en_attente", "message": "Encore ?"}),
    "resolve-a-closed-ticket": ([{"status": "resolu", "message": "Fait."}, {"status": "clos"}],
                                {"status": "resolu", "message": "Encore."}),
    "take-a-closed-ticket": ([{"status": "resolu", "message": "Fait."}, {"status": "clos"}], {"status": "en_cours"}),
    "reject-a-resolved-ticket": ([{"status": "resolu", "message": "Fait."}], {"status": "rejete", "message": "Non."}),
    "resolve-a-rejected-ticket": ([{"status": "rejete", "message": "Spam."}], {"status": "resolu", "message": "Oui."}),
    "reopen-a-rejected-ticket": ([{"status": "rejete", "message": "Spam."}], {"status": "en_cours"}),
}


@pytest.mark.parametrize(("setup", "payload"), IMPOSSIBLE.values(), ids=IMPOSSIBLE.keys())
def test_impossible_transition_is_409_and_changes_nothing(app, login_as, ecully_ref, setup, payload):
    agent = login_as("agent_ecully")
    for step in setup:
        assert act(agent, ecully_ref, "status", step).status_code == 200, step
    before = snapshot(app, ecully_ref)

    error = error_of(act(agent, ecully_ref, "status", payload, before[0]), 409, "invalid_transition")

    assert "Impossible" in error["message"] or "Seul" in error["message"] or "déjà" in error["message"]
    assert snapshot(app, ecully_ref) == before


INCOMPLETE = {
    "resolve-without-note": ({"status": "resolu"}, "resolution_note"),
    "reject-without-reason": ({"status": "rejete"}, "reason"),
    "duplicate-without-original": ({"status": "doublon", "message": "Doublon."}, "duplicate_of"),
    "duplicate-of-unknown": ({"status": "doublon", "message": "Doublon.", "duplicate_of": "SAU-2026-999999"},
                             "duplicate_of"),
    "unknown-status": ({"status": "ferme"}, "status"),
    "missing-status": ({}, "status"),
}


@pytest.mark.parametrize(("payload", "field"), INCOMPLETE.values(), ids=INCOMPLETE.keys())
def test_incomplete_status_change_is_422(app, login_as, ecully_ref, payload, field):
    before = snapshot(app, ecully_ref)
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "status", payload), 422, "validation_error")
    assert field in error["fields"], error
    assert snapshot(app, ecully_ref) == before


def test_duplicate_of_itself_is_refused(app, login_as, ecully_ref):
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "status",
                         {"status": "doublon", "message": "Moi-même.", "duplicate_of": ecully_ref}), 422)
    assert "duplicate_of" in error["fields"]


def test_duplicate_of_another_organisations_ticket_is_unknown(login_as, make_request, ecully_ref):
    tassin = make_request(commune="69244")
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "status",
                         {"status": "doublon", "message": "Doublon.", "duplicate_of": tassin}), 422)
    assert "duplicate_of" in error["fields"]


# --- escalation, transfer, assignment ---------------------------------------------------------------------------


def test_school_admin_escalates_a_laclasse_ticket_to_the_metropole(app, login_as, make_request):
    ref = make_request(service="laclasse", category="connexion", commune=None, school="0690900A", requester="usager_a")
    school_admin = login_as("school_admin")
    assert read(school_admin, ref)["routed_to"]["code"] == "69081"
    assert act(school_admin, ref, "status", {"status": "en_cours"}).status_code == 200

    response = act(school_admin, ref, "escalate", {"reason": "Panne du serveur d'authentification"})

    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["routed_to"]["code"] == "metropole" and data["level"] == 2
    assert data["status"] == "nouveau" and data["assignee"] is None
    # Level 2 belongs to the Métropole: the school administrator no longer sees it, the Métropole's agent works it.
    error_of(school_admin.get(f"/api/v1/requests/{ref}"), 404)
    metropole = login_as("agent_metropole")
    assert act(metropole, ref, "priority", {"priority": "bloquant"}).status_code == 200
    error_of(act(metropole, ref, "escalate", {"reason": "Encore"}), 409, "invalid_transition")
    # The requester still follows it.
    assert read(login_as("usager_a"), ref)["level"] == 2


def test_escalation_needs_a_reason(app, login_as, ecully_ref):
    before = snapshot(app, ecully_ref)
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "escalate", {"reason": ""}), 422)
    assert "reason" in error["fields"]
    assert snapshot(app, ecully_ref) == before


def test_transfer_moves_the_ticket_out_of_the_agents_reach(app, login_as, ecully_ref):
    agent = login_as("agent_ecully")
    act(agent, ecully_ref, "status", {"status": "en_cours"})

    response = act(agent, ecully_ref, "transfer", {"organisation": "metropole",
                                                  "reason": "Démarche mutualisée : relève de la Métropole"})

    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()
    assert data["routed_to"]["code"] == "metropole" and data["status"] == "nouveau" and data["assignee"] is None
    event = next(e for e in data["events"] if e["type"] == "ticket.transferred")
    assert event["data"]["before"]["organisation"] == "69081" and event["data"]["reason"].startswith("Démarche")
    error_of(act(agent, ecully_ref, "priority", {"priority": "mineur"}), 404)
    assert act(login_as("agent_metropole"), ecully_ref, "priority", {"priority": "mineur"}).status_code == 200


@pytest.mark.parametrize(("payload", "field"), [
    ({"organisation": "atlantide", "reason": "?"}, "organisation"),
    ({"organisation": "69081", "reason": "Même file"}, "organisation"),
    ({"organisation": "metropole", "reason": ""}, "reason"),
    ({"organisation": "metropole"}, "reason"),
])
def test_invalid_transfer_is_422(app, login_as, ecully_ref, payload, field):
    before = snapshot(app, ecully_ref)
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "transfer", payload), 422)
    assert field in error["fields"]
    assert snapshot(app, ecully_ref) == before


def test_assign_to_a_colleague_then_unassign(app, login_as, ecully_ref):
    colleague = make_agent(app, "elise.agent@ville-ecully.example", "69081")
    agent = login_as("agent_ecully")

    response = act(agent, ecully_ref, "assign", {"assignee_id": colleague})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["assignee"] == {"id": colleague, "name": "Élise Agent"}
    assert response.get_json()["status"] == "en_cours"

    response = act(agent, ecully_ref, "assign", {"assignee_id": None})
    assert response.status_code == 200 and response.get_json()["assignee"] is None


def test_assign_to_someone_outside_the_queue_is_refused(app, login_as, ecully_ref):
    from tests.conftest import user_id

    before = snapshot(app, ecully_ref)
    agent = login_as("agent_ecully")
    error = error_of(act(agent, ecully_ref, "assign", {"assignee_id": user_id(app, "agent_tassin")}), 422)
    assert "assignee" in error["fields"]
    error = error_of(act(agent, ecully_ref, "assign", {"assignee_id": 999_999}), 422)
    assert "assignee_id" in error["fields"]
    error_of(act(agent, ecully_ref, "assign", {}), 422)  # assignee_id is required (null to unassign)
    assert snapshot(app, ecully_ref) == before


# --- who may act ------------------------------------------------------------------------------------------------

ACTIONS = [
    ("priority", {"priority": "bloquant"}),
    ("comments", {"body": "Bonjour"}),
    ("comments", {"body": "Note", "internal": True}),
    ("assign", {"assignee_id": None}),
    ("status", {"status": "en_cours"}),
    ("status", {"status": "rejete", "message": "Non"}),
    ("escalate", {"reason": "Niveau 2"}),
    ("transfer", {"organisation": "69244", "reason": "Chez nous"}),
]


def test_anonymous_gets_401(app, client, ecully_ref):
    before = snapshot(app, ecully_ref)
    for action, payload in ACTIONS:
        error_of(act(client, ecully_ref, action, payload), 401, "unauthorized")
    assert snapshot(app, ecully_ref) == before


@pytest.mark.parametrize(("role", "status"), [
    ("agent_tassin", 404),  # another commune's agent does not even learn that the ticket exists
    ("school_admin", 404),
    ("usager_a", 404),  # the requester is not staff
    ("usager_b", 404),
    ("referent_ecully", 403),  # sees the commune's tickets but does not work them
])
def test_other_people_cannot_act(app, login_as, ecully_ref, role, status):
    before = snapshot(app, ecully_ref)
    client = login_as(role)
    for action, payload in ACTIONS:
        error = error_of(act(client, ecully_ref, action, payload), status)
        assert error["code"] == ("forbidden" if status == 403 else "not_found"), (action, error)
    assert snapshot(app, ecully_ref) == before


def test_tassin_agent_cannot_read_an_ecully_ticket(login_as, ecully_ref):
    error_of(login_as("agent_tassin").get(f"/api/v1/requests/{ecully_ref}"), 404, "not_found")


def test_ticket_list_is_limited_to_the_agents_organisation(login_as, make_request):
    ecully = {make_request(commune="69081"), make_request(commune="69081")}
    tassin = {make_request(commune="69244")}
    metropole = {make_request(service="grandlyon-connect", category="compte", commune=None)}

    def listed(role: str, query: str = "") -> set[str]:
        response = login_as(role).get(f"{API}{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return {t["reference"] for t in response.get_json()["tickets"]}

    assert listed("agent_ecully") == ecully
    assert listed("agent_tassin") == tassin
    assert listed("agent_metropole") == metropole
    assert listed("referent_ecully") == ecully
    assert listed("admin") == ecully | tassin | metropole
    assert listed("school_admin") == set()
    assert listed("agent_ecully", "?status=resolu") == set()
    assert listed("agent_ecully", "?status=all") == ecully


def test_ticket_list_access(client, login_as):
    error_of(client.get(API), 401, "unauthorized")
    error_of(login_as("usager_a").get(API), 403, "forbidden")
    error = error_of(login_as("agent_ecully").get(f"{API}?status=perdu"), 422)
    assert "status" in error["fields"]


# --- optimistic locking -----------------------------------------------------------------------------------------


def test_stale_if_match_is_a_conflict_and_changes_nothing(app, login_as, ecully_ref):
    agent = login_as("agent_ecully")
    seen = read(agent, ecully_ref)["version"]
    assert act(agent, ecully_ref, "priority", {"priority": "majeur"}, seen).status_code == 200
    before = snapshot(app, ecully_ref)

    for action, payload in ACTIONS:
        error = error_of(act(agent, ecully_ref, action, payload, seen), 409, "conflict")
        assert "modifié par quelqu'un d'autre" in error["message"]
    error_of(agent.post(f"{API}/{ecully_ref}/comments", json={"body": "Bonjour", "version": seen}), 409, "conflict")

    assert snapshot(app, ecully_ref) == before


def test_current_if_match_is_accepted_and_weak_etags_too(login_as, ecully_ref):
    agent = login_as("agent_ecully")
    response = agent.get(f"/api/v1/requests/{ecully_ref}")
    etag = response.headers["ETag"]
    assert etag == f'"{response.get_json()["version"]}"'
    ok = agent.post(f"{API}/{ecully_ref}/priority", json={"priority": "mineur"}, headers={"If-Match": f"W/{etag}"})
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_malformed_if_match_is_422(app, login_as, ecully_ref):
    before = snapshot(app, ecully_ref)
    error = error_of(act(login_as("agent_ecully"), ecully_ref, "priority", {"priority": "mineur"}, "trois"), 422)
    assert "If-Match" in error["fields"]
    assert snapshot(app, ecully_ref) == before


# --- transport errors on agent endpoints ------------------------------------------------------------------------


def test_agent_endpoints_want_json(app, login_as, ecully_ref):
    agent = login_as("agent_ecully")
    before = snapshot(app, ecully_ref)
    error_of(agent.post(f"{API}/{ecully_ref}/priority", data={"priority": "bloquant"}), 415, "unsupported_media_type")
    error_of(agent.post(f"{API}/{ecully_ref}/priority", data="{", content_type="application/json"), 400, "invalid_json")
    error_of(agent.get(f"{API}/{ecully_ref}/priority"), 405, "method_not_allowed")
    error_of(agent.post(f"{API}/SAU-2026-999999/priority", json={"priority": "bloquant"}), 404, "not_found")
    assert snapshot(app, ecully_ref) == before
