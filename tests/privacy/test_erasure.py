"""Deleting an account erases the person's identity from every table, while tickets and the SLA report stay the same
(issue 8, point 1; convention-cadre art. 7.2, right to erasure)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from tests.conftest import csrf_token, login
from tests.privacy.personal import ISSUER, create_person, scan

PARIS = ZoneInfo("Europe/Paris")
MARCH = (datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS))


def _report(now: datetime) -> list[tuple[str, int, int, int, int]]:
    from sau.reports.compliance import compliance_by_commune

    return [(r.code, r.figures.committed, r.figures.met, r.figures.breached, r.figures.open)
            for r in compliance_by_commune(*MARCH, now)]


def _tickets_state() -> list[tuple[object, ...]]:
    from sau.extensions import db
    from sau.tickets.models import Ticket

    return [tuple(row) for row in db.session.execute(sa.select(
        Ticket.reference, Ticket.status, Ticket.priority, Ticket.commune_id, Ticket.created_at, Ticket.resolved_at,
        Ticket.closed_at, Ticket.sla_deadline_at, Ticket.sla_state, Ticket.sla_met).order_by(Ticket.id))]


def test_erasure_leaves_no_identifying_value_in_any_column_and_the_report_unchanged(app: Flask, ctx: None,
                                                                                      clock) -> None:
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.erasure import erase_account, pseudonym_for
    from sau.privacy.models import DeletedAccount
    from sau.tickets.models import Comment, Ticket, TicketEvent

    now = clock.now()
    person = create_person(now)
    assert len(scan(person.values)) > 20  # the history really holds her identity everywhere
    report_before, tickets_before = _report(now), _tickets_state()
    assert any(committed for _, committed, *_ in report_before)
    attachment_dir = Path(app.config["ATTACHMENTS_DIR"])
    assert all((attachment_dir / key).exists() for key in person.attachment_keys)

    result = erase_account(db.session.get(User, person.user_id), now, source="usager")
    db.session.commit()
    db.session.expire_all()

    leftovers = scan(person.values)
    # The one place the sub survives, on purpose: the deleted-accounts list (annex Toodego § 8).
    assert [(where, name) for where, name, _ in leftovers] == [("deleted_accounts.subject", "sub")]
    assert db.session.scalar(sa.select(DeletedAccount.issuer).where(DeletedAccount.subject == person.sub)) == ISSUER
    assert _report(now) == report_before
    assert _tickets_state() == tickets_before
    assert result.tickets == 2 and result.attachments_deleted == 1
    assert not any((attachment_dir / key).exists() for key in person.attachment_keys)
    # One stable pseudonym for all her rows; the tombstone holds nothing else.
    pseudonym = pseudonym_for(person.user_id)
    user = db.session.get(User, person.user_id)
    assert user.display_name == pseudonym and user.email is None and not user.is_active
    assert user.identities == [] and user.memberships == []
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == person.references[0]))
    assert ticket.requester_id == person.user_id and ticket.requester_label == pseudonym
    assert {c.author_label for c in db.session.scalars(sa.select(Comment).where(Comment.author_id == user.id))} \
        == {pseudonym}
    assert {e.actor_label for e in db.session.scalars(sa.select(TicketEvent).where(TicketEvent.actor_id == user.id))} \
        == {pseudonym}
    assert pseudonym in ticket.description and "Ma démarche de cantine est bloquée." in ticket.description


def test_erasing_twice_changes_nothing_more(app: Flask, ctx: None, clock) -> None:
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.erasure import erase_account
    from tests.privacy.personal import table_rows

    person = create_person(clock.now())
    erase_account(db.session.get(User, person.user_id), clock.now(), source="usager")
    db.session.commit()
    before = table_rows(db)
    again = erase_account(db.session.get(User, person.user_id), clock.now(), source="usager")
    db.session.commit()
    assert again.identities == [] and table_rows(db) == before


def test_usager_deletes_own_account_with_confirmation_and_is_signed_out(app: Flask, clock) -> None:
    from sau.extensions import db
    from sau.privacy.models import ErasedAccount

    with app.app_context():
        person = create_person(clock.now(), with_history=False)
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(person.user_id)
        sess["_fresh"] = True
    page = client.get("/mes-donnees")
    assert page.status_code == 200 and "Supprimer définitivement mon compte" in page.get_data(as_text=True)
    token = csrf_token(client, "/mes-donnees")

    refused = client.post("/mes-donnees/supprimer", data={"csrf_token": token, "understood": "y",
                                                         "confirmation": "oui"})
    assert refused.status_code == 422
    assert "Saisissez exactement SUPPRIMER pour confirmer." in refused.get_data(as_text=True)
    no_csrf = client.post("/mes-donnees/supprimer", data={"understood": "y", "confirmation": "SUPPRIMER"})
    assert no_csrf.status_code == 400
    with app.app_context():
        assert db.session.get(ErasedAccount, person.user_id) is None

    done = client.post("/mes-donnees/supprimer", data={"csrf_token": token, "understood": "y",
                                                      "confirmation": "supprimer"})
    assert done.status_code == 303
    assert "compte a été supprimé" in client.get("/").get_data(as_text=True)
    after = client.get("/mes-donnees")
    assert after.status_code == 302 and "/auth/login" in after.headers["Location"]  # signed out
    with app.app_context():
        assert db.session.get(ErasedAccount, person.user_id) is not None
        assert scan({"email": person.email, "family_name": person.family_name}) == []


def test_staff_cannot_delete_their_account_from_mes_donnees(app: Flask) -> None:
    client = login(app.test_client(), app, "agent_ecully")
    page = client.get("/mes-donnees").get_data(as_text=True)
    assert "géré par les administrateurs" in page
    token = csrf_token(client, "/mes-donnees")
    response = client.post("/mes-donnees/supprimer", data={"csrf_token": token, "understood": "y",
                                                          "confirmation": "SUPPRIMER"})
    assert response.status_code == 403


def test_erasing_a_staff_account_also_clears_assignments_and_the_admin_journal(app: Flask, ctx: None, clock) -> None:
    from sau.admin.operations import record
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.erasure import erase_account
    from tests.conftest import DEMO_EMAILS

    person = create_person(clock.now())  # worked by agent_metropole (Alice Dupont)
    agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_metropole"]))
    admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
    record(admin, clock.now(), "membership.created", "membership", 1, f"{agent.display_name} — agent",
           after={"email": agent.email})
    db.session.commit()
    values = {"given_name": "Alice", "family_name": "Dupont", "email": agent.email}
    assert scan(values)
    erase_account(agent, clock.now(), source="glc_import", actor=admin)
    db.session.commit()
    assert scan(values) == []
    assert scan(person.values)  # the usager's own data is not touched by the agent's erasure
