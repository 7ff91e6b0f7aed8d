"""Retention (issue 8, point 2): inactive accounts deleted after one warning e-mail 30 days before (Toodego annex
§ 8), closed tickets anonymised after the retention period, and a second run deletes nothing more."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS
from tests.privacy.personal import create_person, scan, table_rows


def _warnings(user_id: int) -> list[object]:
    from sau.extensions import db
    from sau.notify.models import Notification

    return list(db.session.scalars(sa.select(Notification).where(
        Notification.user_id == user_id, Notification.kind == "account_deletion_warning")))


def _is_erased(user_id: int) -> bool:
    from sau.extensions import db
    from sau.privacy.models import ErasedAccount

    return db.session.get(ErasedAccount, user_id) is not None


def test_inactive_account_is_warned_once_30_days_before_then_deleted_and_a_rerun_deletes_nothing_more(
        app: Flask, ctx: None, clock) -> None:
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.retention import run_retention

    start = clock.now()
    person = create_person(start, with_history=False)
    agent_id = db.session.scalar(sa.select(User.id).where(User.email == DEMO_EMAILS["agent_ecully"]))
    # 699 days without use: nothing yet.
    clock.advance(timedelta(days=699))
    assert run_retention(clock.now()).warned == 0
    assert _warnings(person.user_id) == []
    # 700 days (730 - 30): one warning, in the outbox, announcing the deletion 30 days later.
    clock.advance(timedelta(days=1))
    first = run_retention(clock.now())
    assert first.warned >= 1 and first.accounts_deleted == 0
    [warning] = _warnings(person.user_id)
    assert warning.email == person.email and warning.status == "pending"
    due = (clock.now() + timedelta(days=30)).astimezone(warning_tz()).strftime("%d/%m/%Y")
    assert due in warning.payload["message"]
    # Staff accounts are managed by administrators: never warned.
    assert _warnings(agent_id) == []
    # The same day again, and 29 days later: no second warning, nothing deleted.
    assert run_retention(clock.now()).warned == 0
    clock.advance(timedelta(days=29))
    assert run_retention(clock.now()).accounts_deleted == 0
    assert len(_warnings(person.user_id)) == 1 and not _is_erased(person.user_id)
    # 30 days after the warning: deleted.
    clock.advance(timedelta(days=1))
    result = run_retention(clock.now())
    assert result.accounts_deleted >= 1 and _is_erased(person.user_id)
    assert scan({"email": person.email, "family_name": person.family_name}) == []
    assert not _is_erased(agent_id)
    # Run twice: nothing more.
    before = table_rows(db)
    again = run_retention(clock.now())
    assert (again.warned, again.accounts_deleted, again.tickets_anonymised, again.deleted_records_purged) == (0, 0, 0, 0)
    assert table_rows(db) == before


def warning_tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")


def test_signing_in_after_the_warning_cancels_the_deletion(app: Flask, ctx: None, clock) -> None:
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.models import AccountDeletionWarning
    from sau.privacy.retention import run_retention

    person = create_person(clock.now(), with_history=False)
    clock.advance(timedelta(days=700))
    run_retention(clock.now())
    assert db.session.get(AccountDeletionWarning, person.user_id) is not None
    clock.advance(timedelta(days=10))
    db.session.get(User, person.user_id).last_seen_at = clock.now()  # as a sign-in does
    db.session.commit()
    clock.advance(timedelta(days=25))
    result = run_retention(clock.now())
    assert result.warnings_cancelled == 1 and not _is_erased(person.user_id)
    assert db.session.get(AccountDeletionWarning, person.user_id) is None


def test_warning_email_is_delivered_through_smtp(app: Flask, ctx: None, clock, tmp_path) -> None:
    from sau.notify.dispatcher import dispatch_due
    from sau.privacy.retention import run_retention
    from tests.notifications.conftest import SmtpSink

    person = create_person(clock.now(), with_history=False)
    clock.advance(timedelta(days=700))
    run_retention(clock.now())
    sink = SmtpSink(tmp_path / "mail")
    (tmp_path / "mail").mkdir()
    sink.start()
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, SMTP_SECURITY="none")
        dispatch_due(clock.now())
        messages = [m for m in sink.messages() if m["To"] == person.email]
    finally:
        sink.stop()
    assert len(messages) == 1
    message = messages[0]
    assert "Votre compte sera supprimé faute d'utilisation" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "Bonjour Zéphirine Quastenbrook" in body and "annexe Toodego, § 8" in body and "/auth/login" in body


def test_closed_tickets_are_anonymised_after_the_retention_period_once(app: Flask, ctx: None, clock) -> None:
    from sau.extensions import db
    from sau.privacy.retention import run_retention
    from sau.reports.compliance import compliance_by_commune
    from sau.tickets.models import Comment, Ticket, TicketEvent
    from tests.privacy.test_erasure import MARCH

    app.config["RETENTION_CLOSED_TICKETS_DAYS"] = 90
    person = create_person(clock.now())
    # Also an e-mail address and a phone number typed in the description.
    closed = db.session.scalar(sa.select(Ticket).where(Ticket.reference == person.references[0]))
    closed.description += " Mon voisin : jean.voisin@example.com, 06 12 34 56 78."
    db.session.commit()

    def report() -> list[object]:
        return [(r.code, r.figures) for r in compliance_by_commune(*MARCH, clock.now())]

    before_report = report()
    clock.advance(timedelta(days=89))
    assert run_retention(clock.now()).tickets_anonymised == 0
    clock.advance(timedelta(days=2))
    result = run_retention(clock.now())
    assert result.tickets_anonymised == 1  # the open anonymous request is not closed: kept
    db.session.expire_all()
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == person.references[0]))
    assert ticket.requester_id is None and ticket.requester_email is None and ticket.tracking_token_hash is None
    assert ticket.status == "clos" and ticket.priority == "bloquant" and ticket.sla_met is True
    text = " ".join([ticket.subject, ticket.description, ticket.resolution_note or ""]
                    + [c.body for c in ticket.comments] + [str(e.data) for e in ticket.events])
    for value in (person.given_name, person.family_name, person.email, "jean.voisin@example.com", "06 12 34 56 78"):
        assert value.lower() not in text.lower(), value
    assert "[donnée masquée]" in ticket.description and "Ma démarche de cantine est bloquée." in ticket.description
    requester_rows = db.session.scalars(sa.select(Comment.author_label).where(
        Comment.ticket_id == ticket.id, Comment.is_from_requester.is_(True))).all()
    assert requester_rows == ["Demandeur"]
    assert "Demandeur" in db.session.scalars(sa.select(TicketEvent.actor_label).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.type == "ticket.created")).all()
    assert ticket.attachments == []
    assert report() == before_report  # usage statistics unchanged, and they never held the person
    # Run twice: nothing more.
    before = table_rows(db)
    assert run_retention(clock.now()).tickets_anonymised == 0
    assert table_rows(db) == before
