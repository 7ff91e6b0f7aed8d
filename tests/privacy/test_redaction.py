"""Agents mask personal data a usager typed into a ticket: the text is gone (also from the notifications), the
masking is logged without the text, and only those who may work the ticket can do it (issue 8, point 1)."""
from __future__ import annotations

import html
import json

import sqlalchemy as sa
from flask import Flask

from tests.conftest import csrf_token, login

IBAN = "FR76 3000 6000 0112 3456 7890 189"


def _ticket_with_reply(app: Flask, make_request) -> tuple[str, int]:
    """A request of usager A (Écully) where A replied with their IBAN."""
    from sau.auth import policy
    from sau.auth.models import User
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.tickets import operations as ops
    from tests.conftest import DEMO_EMAILS

    reference = make_request(requester="usager_a", commune="69081",
                             description="Ma démarche est bloquée. Mon téléphone : 06 11 22 33 44.")
    with app.app_context():
        ticket = ops.get_ticket(reference)
        usager = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["usager_a"]))
        comment = ops.requester_reply(ticket, policy.Principal(user=usager), f"Voici mon IBAN : {IBAN}, merci.",
                                      now_utc())
        db.session.commit()
        return reference, comment.id


def _state(app: Flask, reference: str) -> dict[str, object]:
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.tickets import operations as ops

    with app.app_context():
        ticket = ops.get_ticket(reference)
        notifications = db.session.scalars(sa.select(Notification).where(Notification.ticket_id == ticket.id)).all()
        return {
            "description": ticket.description,
            "comments": {c.id: c.body for c in ticket.comments},
            "events": [(e.type, e.actor_label, e.data, e.is_public) for e in ticket.events],
            "notifications": json.dumps([[n.subject, n.payload] for n in notifications], ensure_ascii=False),
        }


def test_agent_masks_a_span_of_a_comment_and_the_masking_is_logged_without_the_text(app: Flask, make_request):
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    reference, comment_id = _ticket_with_reply(app, make_request)
    assert IBAN in _state(app, reference)["notifications"]  # the reply was copied into the outbox
    agent = login(app.test_client(), app, "agent_ecully")
    assert 'id="masquer"' in agent.get(f"/agent/tickets/{reference}").get_data(as_text=True)
    token = csrf_token(agent, f"/agent/tickets/{reference}")
    response = agent.post(f"/agent/tickets/{reference}/masquer",
                          data={"csrf_token": token, "target": f"comment-{comment_id}", "span": IBAN})
    assert response.status_code == 303
    state = _state(app, reference)
    assert state["comments"][comment_id] == "Voici mon IBAN : [donnée masquée], merci."
    assert IBAN not in state["notifications"] and IBAN not in json.dumps(state["events"])
    [redacted] = [e for e in state["events"] if e[0] == "ticket.redacted"]
    assert redacted[1] == "Étienne Roux" and redacted[3] is False  # who, internal
    assert redacted[2] == {"field": "comment", "comment_id": comment_id, "whole": False, "masked_chars": len(IBAN)}
    page = agent.get(f"/agent/tickets/{reference}").get_data(as_text=True)
    assert "Donnée personnelle masquée par un agent" in page and IBAN not in page
    with app.app_context():
        assert db.session.scalar(sa.select(AccessLogEntry).where(AccessLogEntry.action == "ticket.redaction"))


def test_agent_masks_the_whole_description(app: Flask, make_request) -> None:
    reference, _ = _ticket_with_reply(app, make_request)
    agent = login(app.test_client(), app, "agent_ecully")
    token = csrf_token(agent, f"/agent/tickets/{reference}")
    agent.post(f"/agent/tickets/{reference}/masquer", data={"csrf_token": token, "target": "description", "whole": "y"})
    state = _state(app, reference)
    assert state["description"] == "[donnée masquée]"
    assert "06 11 22 33 44" not in json.dumps(state["events"], ensure_ascii=False)


def test_bad_input_is_refused_in_french_and_changes_nothing(app: Flask, make_request) -> None:
    reference, comment_id = _ticket_with_reply(app, make_request)
    before = _state(app, reference)
    agent = login(app.test_client(), app, "agent_ecully")
    token = csrf_token(agent, f"/agent/tickets/{reference}")
    for data, message in (
        ({"target": f"comment-{comment_id}", "span": "absent du texte"}, "Ce texte ne figure pas dans le champ choisi."),
        ({"target": "description", "span": "ab"}, "3 caractères au moins"),
        ({"target": "comment-999999", "span": "IBAN"}, "Ce message n'existe pas sur ce ticket."),
    ):
        response = agent.post(f"/agent/tickets/{reference}/masquer", data={"csrf_token": token, **data},
                              follow_redirects=True)
        assert message in html.unescape(response.get_data(as_text=True)), data
    assert agent.post(f"/agent/tickets/{reference}/masquer", data={"target": "description",
                                                                   "whole": "y"}).status_code == 400  # no CSRF
    assert _state(app, reference) == before


def test_those_who_may_not_work_the_ticket_are_refused(app: Flask, make_request) -> None:
    reference, comment_id = _ticket_with_reply(app, make_request)
    before = _state(app, reference)
    for role, status in (("referent_ecully", 403), ("agent_tassin", 404), ("agent_metropole", 404),
                         ("usager_a", 404), ("usager_b", 404)):
        client = login(app.test_client(), app, role)
        token = csrf_token(client, "/mes-donnees")
        response = client.post(f"/agent/tickets/{reference}/masquer",
                               data={"csrf_token": token, "target": f"comment-{comment_id}", "span": IBAN})
        assert response.status_code == status, role
    assert _state(app, reference) == before
