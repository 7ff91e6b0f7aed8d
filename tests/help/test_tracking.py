"""The requester's side after submitting: the secret tracking link, the public timeline (never internal notes),
answering the agent's question, reopening within the window, and « Mes demandes »."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from sau.extensions import db
from sau.tickets.models import Comment, Ticket

REQUEST = {"service": "toodego", "category": "teleservice-communal", "commune": "69081",
           "subject": "Inscription cantine impossible", "description": "Le bouton « Valider » reste grisé.",
           "email": "parent@example.org"}


def create_anonymous(app) -> tuple[str, str]:
    """An anonymous request through the API; returns (reference, tracking token)."""
    response = app.test_client().post("/api/v1/requests", json=REQUEST)
    assert response.status_code == 201
    data = response.get_json()
    return data["reference"], parse_qs(urlsplit(data["tracking_url"]).query)["jeton"][0]


def follow_link(app, reference: str, token: str):
    """A new browser opening the tracking link: redirected to the page, which now shows the request."""
    client = app.test_client()
    response = client.get(f"/suivi/{reference}?jeton={token}")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/suivi/{reference}"  # the token leaves the address bar
    return client


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action`."""
    match = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.DOTALL)
    assert match, f"no form posting to {action}"
    return dict(re.findall(r'<input id="[^"]*" name="([^"]+)" type="hidden" value="([^"]*)">', match.group(1)))


def ticket_state(app, reference: str) -> dict[str, Any]:
    with app.app_context():
        t = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        comments = db.session.scalars(sa.select(Comment).where(Comment.ticket_id == t.id).order_by(Comment.id)).all()
        return {"status": t.status, "version": t.version,
                "comments": [(c.is_from_requester, c.is_internal, c.body) for c in comments]}


def agent_does(login_as, reference: str, action: str, payload: dict[str, Any]) -> None:
    response = login_as("agent_ecully").post(f"/api/v1/tickets/{reference}/{action}", json=payload)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def flashes(page: str) -> list[tuple[str, str]]:
    return [(c, html.unescape(m).strip())
            for c, m in re.findall(r'<div class="alert alert-(\w+)" role="(?:alert|status)">(.*?)</div>', page,
                                   re.DOTALL)]


# --- the tracking link ------------------------------------------------------------------------------------------


def test_tracking_link_shows_the_public_timeline(app):
    reference, token = create_anonymous(app)
    client = follow_link(app, reference, token)

    page = client.get(f"/suivi/{reference}")
    assert page.status_code == 200
    body = text(page)
    assert f"Demande {reference}" in body and "Inscription cantine impossible" in body
    assert "Demande envoyée." in body and "Demande transmise à Écully." in body
    assert "Nouveau" in body


@pytest.mark.parametrize("query", ["?jeton=faux", "?jeton=", ""])
def test_wrong_or_missing_token_is_404(app, query):
    reference, _token = create_anonymous(app)
    response = app.test_client().get(f"/suivi/{reference}{query}")
    assert response.status_code == 404
    assert "Inscription cantine" not in text(response)


def test_a_token_opens_only_its_own_request(app):
    first, first_token = create_anonymous(app)
    second, _ = create_anonymous(app)
    assert app.test_client().get(f"/suivi/{second}?jeton={first_token}").status_code == 404
    client = follow_link(app, first, first_token)
    assert client.get(f"/suivi/{second}").status_code == 404


def test_unknown_reference_is_404(client):
    assert client.get("/suivi/SAU-2026-999999?jeton=abc").status_code == 404
    assert client.get("/suivi/SAU-2026-999999").status_code == 404


# --- what the requester sees ------------------------------------------------------------------------------------


def test_internal_notes_never_appear_on_the_requesters_page(app, login_as):
    reference, token = create_anonymous(app)
    agent_does(login_as, reference, "priority", {"priority": "majeur", "justification": "DIAGNOSTIC-INTERNE"})
    agent_does(login_as, reference, "comments", {"body": "NOTE-SECRETE : l'éditeur est en retard", "internal": True})
    agent_does(login_as, reference, "comments", {"body": "Nous regardons votre démarche."})

    body = text(follow_link(app, reference, token).get(f"/suivi/{reference}"))

    assert "Nous regardons votre démarche." in body
    for secret in ("NOTE-SECRETE", "Note interne", "DIAGNOSTIC-INTERNE", "Étienne Roux → ", "Attribution"):
        assert secret not in body, secret
    # The agents' page has it all.
    staff = text(login_as("agent_ecully").get(f"/agent/tickets/{reference}"))
    assert "NOTE-SECRETE" in staff and "DIAGNOSTIC-INTERNE" in staff


def test_staff_opening_the_tracking_page_get_the_agent_page(login_as, make_request):
    reference = make_request()
    response = login_as("agent_ecully").get(f"/suivi/{reference}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/agent/tickets/{reference}")


# --- answering the agent ----------------------------------------------------------------------------------------


def test_requester_reply_puts_a_waiting_ticket_back_in_progress(app, login_as):
    reference, token = create_anonymous(app)
    agent_does(login_as, reference, "status", {"status": "en_attente", "message": "Quel navigateur utilisez-vous ?"})
    assert ticket_state(app, reference)["status"] == "en_attente"
    client = follow_link(app, reference, token)
    page = text(client.get(f"/suivi/{reference}"))
    assert "Quel navigateur utilisez-vous ?" in page and "Répondre à la question de l'agent" in page
    fields = form_fields(page, f"/suivi/{reference}/repondre")

    response = client.post(f"/suivi/{reference}/repondre", data=fields | {"body": "Firefox 130 sous Windows."})

    assert response.status_code == 303
    after = text(client.get(f"/suivi/{reference}"))
    assert ("success", "Votre réponse a été envoyée.") in flashes(after)
    assert "Firefox 130 sous Windows." in after
    state = ticket_state(app, reference)
    assert state["status"] == "en_cours"
    assert state["comments"][-1] == (True, False, "Firefox 130 sous Windows.")
    # The agent sees the answer.
    assert "Firefox 130 sous Windows." in text(login_as("agent_ecully").get(f"/agent/tickets/{reference}"))


def test_signed_in_requester_replies_from_their_space(app, login_as, make_request):
    reference = make_request(requester="usager_a")
    agent_does(login_as, reference, "status", {"status": "en_attente", "message": "Une capture d'écran ?"})
    usager = login_as("usager_a")
    fields = form_fields(text(usager.get(f"/suivi/{reference}")), f"/suivi/{reference}/repondre")
    usager.post(f"/suivi/{reference}/repondre", data=fields | {"body": "La voici."})
    assert ticket_state(app, reference)["status"] == "en_cours"


def test_empty_or_stale_reply_is_refused(app, login_as):
    reference, token = create_anonymous(app)
    client = follow_link(app, reference, token)
    fields = form_fields(text(client.get(f"/suivi/{reference}")), f"/suivi/{reference}/repondre")
    before = ticket_state(app, reference)

    client.post(f"/suivi/{reference}/repondre", data=fields | {"body": ""})
    assert ("error", "Saisissez votre réponse.") in flashes(text(client.get(f"/suivi/{reference}")))
    assert ticket_state(app, reference) == before

    agent_does(login_as, reference, "priority", {"priority": "mineur"})  # the ticket changes meanwhile
    changed = ticket_state(app, reference)
    client.post(f"/suivi/{reference}/repondre", data=fields | {"body": "Réponse sur une page périmée"})
    shown = flashes(text(client.get(f"/suivi/{reference}")))
    assert any("modifié par quelqu'un d'autre" in m for _, m in shown), shown
    assert ticket_state(app, reference) == changed


def test_another_usager_cannot_reply(app, login_as, make_request):
    reference = make_request(requester="usager_a")
    usager_b = login_as("usager_b")
    from tests.conftest import csrf_token

    token = csrf_token(usager_b)
    before = ticket_state(app, reference)
    response = usager_b.post(f"/suivi/{reference}/repondre", data={"csrf_token": token, "body": "Intrusion"})
    assert response.status_code == 404
    assert ticket_state(app, reference) == before


# --- reopening --------------------------------------------------------------------------------------------------


def test_reopen_within_the_window(app, clock, login_as):
    reference, token = create_anonymous(app)
    agent_does(login_as, reference, "status", {"status": "resolu", "message": "Cache vidé : c'est réglé."})
    clock.advance(timedelta(days=14))
    client = follow_link(app, reference, token)
    page = text(client.get(f"/suivi/{reference}"))
    assert "Cache vidé : c'est réglé." in page and "Le problème persiste ?" in page
    fields = form_fields(page, f"/suivi/{reference}/rouvrir")

    client.post(f"/suivi/{reference}/rouvrir", data=fields | {"reason": "Toujours grisé ce matin."})

    assert ("success", "Votre demande a été rouverte.") in flashes(text(client.get(f"/suivi/{reference}")))
    state = ticket_state(app, reference)
    assert state["status"] == "en_cours"
    assert state["comments"][-1] == (True, False, "Toujours grisé ce matin.")


def test_reopen_after_the_window_is_refused_in_french(app, clock, login_as):
    reference, token = create_anonymous(app)
    agent_does(login_as, reference, "status", {"status": "resolu", "message": "Réglé."})
    client = follow_link(app, reference, token)
    fields = form_fields(text(client.get(f"/suivi/{reference}")), f"/suivi/{reference}/rouvrir")
    window = app.config["REOPEN_WINDOW_DAYS"]

    clock.advance(timedelta(days=window, minutes=1))
    page = text(client.get(f"/suivi/{reference}"))
    assert "Le problème persiste ?" not in page  # the form is no longer offered
    before = ticket_state(app, reference)
    client.post(f"/suivi/{reference}/rouvrir", data=fields | {"reason": "Encore en panne."})

    shown = flashes(text(client.get(f"/suivi/{reference}")))
    expected = (f"Le délai de réouverture ({window} jours après la résolution) est dépassé : "
                "merci de faire une nouvelle demande.")
    assert ("error", expected) in shown, shown
    assert ticket_state(app, reference) == before


def test_closed_request_can_no_longer_be_answered(app, login_as):
    reference, token = create_anonymous(app)
    agent_does(login_as, reference, "status", {"status": "resolu", "message": "Réglé."})
    client = follow_link(app, reference, token)
    fields = form_fields(text(client.get(f"/suivi/{reference}")), f"/suivi/{reference}/rouvrir")
    agent_does(login_as, reference, "status", {"status": "clos"})
    page = text(client.get(f"/suivi/{reference}"))
    assert "Demande close." in page and "Le problème persiste ?" not in page
    # Even with the current version (no conflict), a closed request takes no more answers.
    current = ticket_state(app, reference)["version"]
    client.post(f"/suivi/{reference}/repondre", data=fields | {"version": str(current), "body": "Encore moi"})
    assert any("ne pouvez plus y répondre" in m for _, m in flashes(text(client.get(f"/suivi/{reference}"))))
    assert ticket_state(app, reference)["status"] == "clos"


# --- « Mes demandes » -------------------------------------------------------------------------------------------


def test_my_requests_lists_only_mine(app, login_as, make_request):
    mine = [make_request(requester="usager_a", subject="Ma première demande"),
            make_request(requester="usager_a", service="grandlyon-connect", category="compte", commune=None,
                         subject="Mon compte GrandLyon Connect")]
    theirs = make_request(requester="usager_b", subject="La demande de Louis")
    anonymous = make_request(subject="Demande anonyme")

    page = text(login_as("usager_a").get("/mes-demandes"))
    for reference in mine:
        assert reference in page
    assert "Ma première demande" in page and "Mon compte GrandLyon Connect" in page
    assert theirs not in page and "La demande de Louis" not in page and anonymous not in page

    page_b = text(login_as("usager_b").get("/mes-demandes"))
    assert theirs in page_b and all(r not in page_b for r in mine)
    assert login_as("usager_b").get(f"/suivi/{mine[0]}").status_code == 404
    assert login_as("usager_a").get(f"/suivi/{mine[0]}").status_code == 200


def test_my_requests_needs_sign_in(client):
    response = client.get("/mes-demandes")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
