"""E-mail notifications through a real SMTP server process: recipients, French subject and body, tracking link,
threading headers; the transactional outbox (rollback sends nothing); preferences; the bell."""
from __future__ import annotations

import sqlalchemy as sa

from tests.conftest import DEMO_EMAILS, csrf_token, user_id
from tests.notifications.conftest import dispatch, notifications


def _ticket_action(app, reference, fn):
    from sau.extensions import db
    from sau.tickets import operations as ops

    with app.app_context():
        ticket = ops.get_ticket(reference)
        fn(ticket, ops)
        db.session.commit()


def _user(role):
    from sau.auth.models import User
    from sau.extensions import db

    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))


def test_request_received_email_to_anonymous_requester(app, smtp, make_request):
    reference = make_request(email="parent@example.org")
    result = dispatch(app)
    assert result.failed == 0 and result.sent >= 2

    mails = smtp.messages()
    to_requester = [m for m in mails if m["To"] == "parent@example.org"]
    assert len(to_requester) == 1
    mail = to_requester[0]
    assert mail["X-Envelope-To"] == "parent@example.org"
    assert mail["Subject"] == f"[{reference}] Votre demande a bien été reçue"
    assert mail["From"] == app.config["MAIL_FROM"]
    assert mail.is_multipart() and mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Votre demande d'aide « Ma démarche est bloquée » a bien été enregistrée" in text
    assert "Écully" in text  # routed to the commune (Toodego partenaire)
    # The anonymous requester's secret tracking link, built on PUBLIC_URL, is in both parts and it works.
    link = next(w for w in text.split() if w.startswith(f"http://sau.test/suivi/{reference}?jeton="))
    assert f'href="{link}"' in html
    page = app.test_client().get(link.removeprefix("http://sau.test"), follow_redirects=True)
    assert page.status_code == 200 and reference in page.get_data(as_text=True)
    assert "http://sau.test/notifications/preferences" in text
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@grandlyon.example>")

    # The commune's agent learns of the new ticket in their queue, with a link to the agent workspace.
    to_agent = [m for m in mails if m["To"] == DEMO_EMAILS["agent_ecully"]]
    assert len(to_agent) == 1
    assert to_agent[0]["Subject"] == f"[{reference}] Nouveau ticket dans la file Écully"
    assert f"http://sau.test/agent/tickets/{reference}" in to_agent[0].get_body(("plain",)).get_content()
    # Nothing is left to send.
    assert dispatch(app).sent == 0


def test_a_tickets_emails_thread_together(app, smtp, make_request, clock):
    from datetime import timedelta

    reference = make_request(requester="usager_a")
    dispatch(app)

    def work(ticket, ops):
        agent = _user("agent_ecully")
        ops.take(ticket, agent, clock.now())
        ops.request_information(ticket, agent, "Quel navigateur utilisez-vous ?", clock.now())

    _ticket_action(app, reference, work)
    clock.advance(timedelta(minutes=5))
    _ticket_action(app, reference, lambda t, ops: ops.resolve(t, _user("agent_ecully"), "Videz le cache.", clock.now()))
    dispatch(app)

    mails = [m for m in smtp.messages() if m["To"] == DEMO_EMAILS["usager_a"]]
    subjects = [m["Subject"] for m in mails]
    assert subjects == [
        f"[{reference}] Votre demande a bien été reçue",
        f"[{reference}] Votre demande est prise en charge",
        # the question is one message, not "answered" + "information requested"
        f"[{reference}] Des informations complémentaires sont nécessaires",
        f"[{reference}] Votre demande est résolue",
    ]
    assert "Quel navigateur utilisez-vous ?" in mails[2].get_body(("plain",)).get_content()
    assert "Videz le cache." in mails[3].get_body(("plain",)).get_content()
    thread = {m["In-Reply-To"] for m in mails} | {m["References"] for m in mails}
    assert len(thread) == 1 and None not in thread
    assert len({m["Message-ID"] for m in mails}) == len(mails)
    # A signed-in requester's link is the tracking page (no secret in it).
    assert f"http://sau.test/suivi/{reference}" in mails[0].get_body(("plain",)).get_content().split()

    # Another ticket is another thread.
    other = make_request(requester="usager_a", subject="Autre problème")
    dispatch(app)
    other_mail = next(m for m in smtp.messages() if m["Subject"] == f"[{other}] Votre demande a bien été reçue")
    assert other_mail["References"] not in thread


def test_a_rolled_back_change_sends_nothing(app, smtp, make_request, clock):
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.tickets import operations as ops

    reference = make_request()
    dispatch(app)
    before = len(smtp.messages())
    with app.app_context():
        ticket = ops.get_ticket(reference)
        ops.resolve(ticket, _user("agent_ecully"), "Résolu.", clock.now())
        db.session.flush()
        # The outbox row exists inside the transaction…
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                                 .where(Notification.kind == "resolved")) == 1
        db.session.rollback()
    # …and is gone with the change.
    assert notifications(app, kind="resolved") == []
    assert dispatch(app).sent == 0
    assert len(smtp.messages()) == before


def test_in_app_only_preference_means_no_email(app, smtp, make_request, clock):
    from sau.extensions import db
    from sau.notify import operations as notify_ops

    with app.app_context():
        notify_ops.set_preferences(_user("usager_a"), {"request_received": "inapp"}, clock.now())
        db.session.commit()
    reference = make_request(requester="usager_a")
    dispatch(app)
    assert [m for m in smtp.messages() if m["To"] == DEMO_EMAILS["usager_a"]] == []
    inapp = notifications(app, kind="request_received", user_id=user_id(app, "usager_a"))
    assert [n.channel for n in inapp] == ["inapp"]
    assert inapp[0].subject == f"[{reference}] Votre demande a bien été reçue"
    # Other kinds still come by e-mail.
    _ticket_action(app, reference, lambda t, ops: ops.take(t, _user("agent_ecully"), clock.now()))
    dispatch(app)
    assert [m["Subject"] for m in smtp.messages() if m["To"] == DEMO_EMAILS["usager_a"]] == [
        f"[{reference}] Votre demande est prise en charge"]


def test_preferences_page_changes_the_choice(app, login_as):
    client = login_as("usager_a")
    page = client.get("/notifications/preferences")
    assert page.status_code == 200 and "Préférences de notification" in page.get_data(as_text=True)
    token = csrf_token(client, "/notifications/preferences")
    response = client.post("/notifications/preferences", data={"csrf_token": token, "pref-resolved": "inapp"})
    assert response.status_code == 302
    from sau.notify import operations as notify_ops

    with app.app_context():
        prefs = notify_ops.preferences_of(_user("usager_a"))
    assert prefs["resolved"] == "inapp" and prefs["request_received"] == "email"
    # Anonymous visitors are sent to sign in.
    assert app.test_client().get("/notifications/preferences").status_code == 302


def test_bell_counts_unread_and_mark_as_read(app, login_as, make_request, clock):
    reference = make_request(requester="usager_a")
    _ticket_action(app, reference, lambda t, ops: ops.take(t, _user("agent_ecully"), clock.now()))
    client = login_as("usager_a")
    html = client.get("/mes-demandes").get_data(as_text=True)
    assert 'data-unread="2"' in html
    inbox = client.get("/notifications").get_data(as_text=True)
    assert f"[{reference}] Votre demande a bien été reçue" in inbox
    first = notifications(app, user_id=user_id(app, "usager_a"), channel="inapp")[0]
    token = csrf_token(client, "/notifications")
    assert client.post(f"/notifications/{first.id}/lue", data={"csrf_token": token}).status_code == 302
    assert 'data-unread="1"' in client.get("/mes-demandes").get_data(as_text=True)
    # Someone else's notification cannot be marked.
    other = login_as("usager_b")
    assert other.post(f"/notifications/{first.id}/lue", data={"csrf_token": csrf_token(other, "/notifications")}
                      ).status_code == 404
    assert client.post("/notifications/tout-lire", data={"csrf_token": token}).status_code == 302
    assert "data-unread" not in client.get("/mes-demandes").get_data(as_text=True)


def test_sla_sweep_notifies_assignee_then_managers(app, smtp, make_request, clock):
    from datetime import timedelta

    from sau.tickets.sweeps import sweep

    reference = make_request(service="grandlyon-connect", category="compte", commune=None)  # → Métropole
    _ticket_action(app, reference, lambda t, ops: ops.set_priority(t, _user("agent_metropole"), "bloquant", clock.now()))
    clock.advance(timedelta(hours=7))  # 7 business hours of 8: at risk
    with app.app_context():
        sweep(clock.now())
    clock.advance(timedelta(days=1))
    with app.app_context():
        sweep(clock.now())
    dispatch(app)
    at_risk = [m for m in smtp.messages() if m["Subject"] == f"[{reference}] Échéance bientôt atteinte"]
    breached = [m for m in smtp.messages() if m["Subject"] == f"[{reference}] Échéance dépassée"]
    assert [m["To"] for m in at_risk] == [DEMO_EMAILS["agent_metropole"]]
    assert DEMO_EMAILS["manager_metropole"] in [m["To"] for m in breached]
    assert DEMO_EMAILS["agent_metropole"] not in [m["To"] for m in breached]
