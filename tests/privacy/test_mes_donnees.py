"""« Mes données »: see and download everything held about oneself (and nothing of anyone else), correct one's
contact details with French errors and CSRF (issue 8, point 1; convention art. 7.2)."""
from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, csrf_token, login, user_id


def _history(app: Flask, make_request) -> tuple[str, str]:
    """A request of usager A answered by an agent (comment + notifications), and one of usager B."""
    from sau.auth.models import User
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.tickets import operations as ops

    mine = make_request(requester="usager_a", service="toodego", category="compte",
                        subject="Mot de passe oublié A", description="Je n'arrive plus à me connecter (A).")
    theirs = make_request(requester="usager_b", subject="Demande secrète de B", description="Texte privé de B.")
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_metropole"]))
        ops.add_comment(ops.get_ticket(mine), agent, "Réponse de l'agent à A.", now_utc(), internal=False)
        ops.add_comment(ops.get_ticket(mine), agent, "Note interne sur A.", now_utc(), internal=True)
        db.session.commit()
    return mine, theirs


def test_download_holds_my_requests_comments_and_notifications_and_nothing_of_another_user(app: Flask, make_request):
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    mine, theirs = _history(app, make_request)
    client = login(app.test_client(), app, "usager_a")
    page = client.get("/mes-donnees")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert DEMO_EMAILS["usager_a"] in html and mine in html and theirs not in html

    response = client.get("/mes-donnees/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["format"] == "sau-mes-donnees/1"
    assert data["account"]["email"] == DEMO_EMAILS["usager_a"]
    [request] = [r for r in data["requests"] if r["reference"] == mine]
    assert request["subject"] == "Mot de passe oublié A"
    assert [c["body"] for c in request["comments"]] == ["Réponse de l'agent à A."]  # internal notes are not theirs
    assert any(n["ticket"] == mine for n in data["notifications"])
    assert {n["kind"] for n in data["notifications"]} >= {"request_received", "answered"}
    dumped = json.dumps(data, ensure_ascii=False)
    for other in (theirs, "Demande secrète de B", "Texte privé de B.", DEMO_EMAILS["usager_b"], "Note interne sur A."):
        assert other not in dumped
    # And usager B's download holds nothing of A.
    other = login(app.test_client(), app, "usager_b").get("/mes-donnees/export.json").get_json()
    assert mine not in json.dumps(other) and DEMO_EMAILS["usager_a"] not in json.dumps(other)
    # The download is in the access log.
    with app.app_context():
        entries = db.session.scalars(sa.select(AccessLogEntry).where(AccessLogEntry.action == "user.data_export")).all()
        assert {e.subject_user_id for e in entries} == {user_id(app, "usager_a"), user_id(app, "usager_b")}


def test_anonymous_visitors_are_sent_to_sign_in(client) -> None:
    for path in ("/mes-donnees", "/mes-donnees/export.json"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_correction_validates_in_french_and_needs_the_csrf_token(app: Flask) -> None:
    from sau.auth.models import User
    from sau.extensions import db

    uid = user_id(app, "usager_a")
    client = login(app.test_client(), app, "usager_a")
    token = csrf_token(client, "/mes-donnees")
    cases = [
        ({"given_name": "", "family_name": "Martin", "email": "c@example.org"}, "Indiquez votre prénom."),
        ({"given_name": "Camille", "family_name": "", "email": "c@example.org"}, "Indiquez votre nom."),
        ({"given_name": "Camille", "family_name": "Martin", "email": "pas-une-adresse"}, "Adresse e-mail invalide"),
        ({"given_name": "C" * 101, "family_name": "Martin", "email": "c@example.org"}, "100 caractères au plus."),
        ({"given_name": "<script>", "family_name": "Martin", "email": "c@example.org"}, "Caractères non autorisés"),
    ]
    for form, message in cases:
        response = client.post("/mes-donnees/coordonnees", data={"csrf_token": token, **form})
        assert response.status_code == 422, form
        html = response.get_data(as_text=True)
        assert message in html and 'aria-invalid="true"' in html, form
    no_token = client.post("/mes-donnees/coordonnees", data={"given_name": "X", "family_name": "Y",
                                                             "email": "x@example.org"})
    assert no_token.status_code == 400 and "jeton de sécurité" in no_token.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, uid)
        assert (user.given_name, user.family_name) == ("Camille", "Martin")

    done = client.post("/mes-donnees/coordonnees", data={"csrf_token": token, "given_name": "Camille-Anne",
                                                          "family_name": "Martin", "email": "camille.anne@example.org"})
    assert done.status_code == 303
    assert "Vos coordonnées ont été corrigées (prénom, adresse e-mail)." in client.get("/mes-donnees").get_data(
        as_text=True)
    with app.app_context():
        user = db.session.get(User, uid)
        assert (user.given_name, user.email) == ("Camille-Anne", "camille.anne@example.org")
        assert not user.is_email_verified
