"""The help form works on the process's snapshot without reading the version first (sau.refdata, `optimistic`):
its write checks the snapshot (PostgreSQL: in the creation statement itself; elsewhere a read before writing),
an error answer is checked before it is shown, and a stale snapshot reruns the request on a fresh one."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from sau import refdata
from sau.extensions import db
from sau.orgs.models import Category, Service
from sau.routing.models import RoutingRule
from sau.tickets.models import ReferenceCounter, Ticket
from tests.conftest import csrf_token, ticket_count
from tests.refdata.test_snapshot import (
    API,
    BODY,
    FORM,
    FORM_DATA,
    PARTENAIRE,
    _count_statements,
    _no_snapshot_across_tests,  # noqa: F401 (autouse fixture, shared)
    _other_worker_commits,
)


def _is_postgresql(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")


def _submit(app: Flask, stale: refdata.Snapshot | None = None, **changes: str) -> Any:
    """POST the help form; with `stale`, the process holds that snapshot when the POST starts (the GET before it,
    for the CSRF token, would have refreshed it)."""
    client = app.test_client()
    token = csrf_token(client, FORM)
    if stale is not None:
        refdata._snapshot = stale
    return client.post(FORM, data={"csrf_token": token, **FORM_DATA, **changes})


def _ticket(app: Flask, response: Any) -> Ticket:
    assert response.status_code == 303, response.get_data(as_text=True)
    reference = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None
        db.session.expunge(ticket)
        return ticket


def _organisation_code(app: Flask, ticket: Ticket) -> str:
    with app.app_context():
        return db.session.get(Ticket, ticket.id).organisation.code  # type: ignore[union-attr]


def _number(ticket: Ticket) -> int:
    return int(ticket.reference.rsplit("-", 1)[1])


def test_a_submission_on_a_stale_snapshot_is_routed_by_the_new_rules_and_written_once(app):
    first = _ticket(app, _submit(app))
    assert _organisation_code(app, first) == "69081"  # Écully, partenaire for Toodego
    stale = refdata._snapshot
    assert stale is not None and PARTENAIRE in {r.name for r in stale.rules}
    rules = RoutingRule.__table__
    _other_worker_commits(app, sa.update(rules).where(rules.c.name == PARTENAIRE).values(is_active=False))

    second = _ticket(app, _submit(app, stale))

    assert _organisation_code(app, second) == "metropole"  # the rule is gone: the new snapshot routed it
    assert ticket_count(app) == 2  # the stale attempt wrote nothing
    assert _number(second) == _number(first) + 1  # nor took a number
    assert refdata._snapshot is not None and refdata._snapshot.version == stale.version + 1


def test_an_error_on_a_stale_snapshot_is_checked_before_it_is_shown(app):
    """A category added by another worker is unknown to this process's snapshot: the request is not refused with
    « Catégorie inconnue » but rerun on the new data, and accepted."""
    _ticket(app, _submit(app))
    stale = refdata._snapshot
    with app.app_context():
        toodego_id = db.session.scalar(sa.select(Service.id).where(Service.code == "toodego"))
    _other_worker_commits(app, sa.insert(Category.__table__).values(
        service_id=toodego_id, code="nouvelle-demarche", label="Nouvelle démarche", position=99,
        requires_commune=False))

    ticket = _ticket(app, _submit(app, stale, category="nouvelle-demarche"))

    with app.app_context():
        assert db.session.get(Ticket, ticket.id).category.code == "nouvelle-demarche"  # type: ignore[union-attr]


def test_a_real_error_is_still_refused_after_the_check(app):
    _ticket(app, _submit(app))
    stale = refdata._snapshot
    response = _submit(app, stale, category="pizza")  # same version: the check passes, the error stands
    assert response.status_code == 422
    assert "Catégorie inconnue pour ce service." in response.get_data(as_text=True)
    assert ticket_count(app) == 1


@pytest.mark.parametrize("moved", [False, True], ids=["same-version", "version-moved"])
@pytest.mark.parametrize("channel", ["form", "api"])
def test_a_submission_reads_the_version_only_where_it_must(app, channel, moved):
    """PostgreSQL: no read at all, the creation statement checks the version (and a stale one reads it once, then
    writes). SQLite: one read right before writing. The form and the API alike."""
    _ticket(app, _submit(app))  # a warm snapshot
    stale = refdata._snapshot
    if moved:
        services = Service.__table__
        _other_worker_commits(app, sa.update(services).where(services.c.code == "toodego").values(name="Toodego 2"))
    client = app.test_client()
    if channel == "form":
        data = {"csrf_token": csrf_token(client, FORM), **FORM_DATA}
        refdata._snapshot = stale
        response, statements = _count_statements(app, lambda: client.post(FORM, data=data))
        _ticket(app, response)
    else:
        refdata._snapshot = stale
        response, statements = _count_statements(
            app, lambda: client.post(API, json=BODY, headers={"Idempotency-Key": f"lecture-{moved}"}))
        assert response.status_code == 201, response.get_data(as_text=True)
    reads = [s for s in statements.about_version() if s.lstrip().upper().startswith("SELECT")]
    writes = [s for s in statements.seen if "INSERT INTO TICKETS" in s.upper()]
    if _is_postgresql(app):
        # The creation statement carries the check: tried once on the stale snapshot, once on the fresh one.
        assert len(reads) == (1 if moved else 0), reads
        assert len(writes) == (2 if moved else 1), writes
        assert all("reference_data_version" in w for w in writes)
    else:
        # The check before writing, and on a stale snapshot the rebuild's read.
        assert len(reads) == (2 if moved else 1), reads
        assert len(writes) == 1, writes
    with app.app_context():
        assert refdata.current().services["toodego"].name == ("Toodego 2" if moved else "Toodego")


def test_the_reference_has_six_digits_at_least_on_every_path(app):
    """The form's creation statement makes the reference in SQL (PostgreSQL), the API in Python: they agree,
    past 999,999 too."""
    first = _ticket(app, _submit(app))
    year = int(first.reference.split("-")[1])
    assert first.reference == f"SAU-{year}-{_number(first):06d}"
    with app.app_context():
        db.session.execute(sa.update(ReferenceCounter).where(ReferenceCounter.year == year)
                           .values(last_number=999_999))
        db.session.commit()
    assert _ticket(app, _submit(app)).reference == f"SAU-{year}-1000000"
    response = app.test_client().post(API, json=BODY)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["reference"] == f"SAU-{year}-1000001"
