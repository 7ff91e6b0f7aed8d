"""The per-process snapshot of the reference data (sau/refdata.py): a change made through the admin pages or the ORM
bumps `reference_data_version` and the next submission uses the new data, also in a process that still holds the
old snapshot (another worker's commit); a rolled-back change leaves no wrong snapshot; a request reads the version
once; the submission's validation errors come from the snapshot, in French."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from sau import refdata
from sau.extensions import db
from sau.orgs.models import CalendarClosure, Organisation, School, Service, Subscription
from sau.refdata import ReferenceDataVersion
from sau.routing.models import RoutingRule
from sau.tickets.models import Ticket
from tests.conftest import csrf_token, ticket_count

API = "/api/v1/requests"
FORM = "/aide?service=toodego"
PARTENAIRE = "Toodego — démarche communale, commune Partenaire"
ECULLY = {"kind": "commune", "code": "69081", "name": "Écully"}
METROPOLE = {"kind": "metropole", "code": "metropole", "name": "Métropole de Lyon"}
TOMORROW = date(2026, 3, 11)  # the day after the frozen date (tests/conftest.py): a Wednesday, a business day

BODY: dict[str, Any] = {
    "service": "toodego",
    "category": "teleservice-communal",
    "commune": "69081",
    "subject": "Ma démarche est bloquée",
    "description": "Le bouton « Valider » ne répond pas à la dernière étape.",
    "email": "demandeur@example.org",
}


# The help form's fields for BODY's request (without the CSRF token).
FORM_DATA = {"service": "toodego", "category": BODY["category"], "commune": BODY["commune"],
             "subject": BODY["subject"], "description": BODY["description"], "email": BODY["email"]}


@pytest.fixture(autouse=True)
def _no_snapshot_across_tests() -> Iterator[None]:
    # The per-test database reset restores the version row to the same number each time: a snapshot left by an
    # earlier test could carry that number with other data. Production versions only grow.
    refdata._snapshot = None
    yield
    refdata._snapshot = None


def _version(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(ReferenceDataVersion.version).where(ReferenceDataVersion.id == 1)))


def _api(app: Flask, **changes: Any) -> Any:
    return app.test_client().post(API, json=BODY | changes)


def _routed_to(app: Flask, **changes: Any) -> dict[str, Any]:
    response = _api(app, **changes)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["routed_to"]


def _form_routed_to(app: Flask) -> str:
    """Submit the help form (Toodego, communal téléservice, Écully); the code of the organisation it was routed to."""
    client = app.test_client()
    response = client.post(FORM, data={"csrf_token": csrf_token(client, FORM), **FORM_DATA})
    assert response.status_code == 303, response.get_data(as_text=True)
    reference = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None
        return ticket.organisation.code


def _rule_names(snap: refdata.Snapshot) -> set[str]:
    return {r.name for r in snap.rules}


def _admin_post(login_as: Any, url: str, data: dict[str, Any], page: str = "/admin/routage") -> Any:
    admin = login_as("admin")
    return admin.post(url, data={"csrf_token": csrf_token(admin, page), **data})


def _other_worker_commits(app: Flask, *statements: Any) -> None:
    """Commit `statements` and a version bump on a connection of a separate engine, as another worker process
    would: nothing in this process is told (no ORM flush here, no `refdata._bump`)."""
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.begin() as conn:
            for stmt in statements:
                result = conn.execute(stmt)
                if isinstance(stmt, sa.Insert):
                    assert result.inserted_primary_key is not None
                else:
                    assert result.rowcount == 1
            version = ReferenceDataVersion.__table__.c.version
            assert conn.execute(sa.update(ReferenceDataVersion.__table__).values(version=version + 1)).rowcount == 1
    finally:
        engine.dispose()


# --- a change is seen by the next submission ------------------------------------------------------------------


def _deactivate_partenaire_rule(app: Flask, login_as: Any) -> None:
    with app.app_context():
        rule_id = db.session.scalar(sa.select(RoutingRule.id).where(RoutingRule.name == PARTENAIRE))
    assert _admin_post(login_as, f"/admin/routage/{rule_id}/desactiver", {}).status_code == 303


def _end_ecully_subscription(app: Flask, login_as: Any, service: str = "toodego") -> None:
    """End Écully's adhésion to `service` yesterday, through the admin page: no offer on the frozen date any more."""
    with app.app_context():
        sub_id = db.session.scalar(
            sa.select(Subscription.id).join(Organisation, Subscription.organisation_id == Organisation.id)
            .join(Service, Subscription.service_id == Service.id)
            .where(Organisation.code == "69081", Service.code == service))
    response = _admin_post(login_as, f"/admin/adhesions/{sub_id}/terminer", {"end-ends_on": "2026-03-09"})
    assert response.status_code == 303, response.get_data(as_text=True)


ADMIN_CHANGES = {
    "deactivate-routing-rule": _deactivate_partenaire_rule,
    "end-subscription": _end_ecully_subscription,
}


@pytest.mark.parametrize("change", list(ADMIN_CHANGES), ids=list(ADMIN_CHANGES))
def test_an_admin_change_bumps_the_version_and_the_next_submissions_use_it(app, login_as, change):
    assert _routed_to(app) == ECULLY  # the process now holds a snapshot with the old data
    assert _form_routed_to(app) == "69081"
    held = refdata._snapshot
    assert held is not None and held.version == _version(app) and PARTENAIRE in _rule_names(held)
    before = _version(app)

    ADMIN_CHANGES[change](app, login_as)

    assert _version(app) > before
    # No rule applies any more (rule off, or Écully has no Toodego offer that day): the Métropole's triage queue.
    assert _routed_to(app) == METROPOLE
    assert _form_routed_to(app) == "metropole"


def test_renaming_a_service_through_the_orm_is_seen_by_the_next_submission(app):
    response = _api(app)
    assert response.status_code == 201 and response.get_json()["service"]["name"] == "Toodego"
    before = _version(app)
    with app.app_context():
        db.session.scalar(sa.select(Service).where(Service.code == "toodego")).name = "Toodego (nouveau nom)"
        db.session.commit()
    assert _version(app) > before
    response = _api(app)
    assert response.status_code == 201
    assert response.get_json()["service"] == {"code": "toodego", "name": "Toodego (nouveau nom)"}


def test_a_closure_day_added_by_an_admin_is_in_the_snapshots_calendar(app, login_as):
    with app.app_context():
        assert refdata.current().calendar.is_business_day(TOMORROW)
    before = _version(app)
    response = _admin_post(login_as, "/admin/calendrier/jours", {"day": "11/03/2026", "label": "Pont"},
                           page="/admin/calendrier")
    assert response.status_code == 303
    assert _version(app) > before
    with app.app_context():
        snap = refdata.current()
        assert snap.version == _version(app)
        assert not snap.calendar.is_business_day(TOMORROW)


def test_a_closure_day_added_through_the_orm_bumps_the_version(app):
    before = _version(app)
    with app.app_context():
        db.session.add(CalendarClosure(day=TOMORROW, label="Fermeture exceptionnelle"))
        db.session.commit()
    assert _version(app) == before + 1  # one flush, one bump
    with app.app_context():
        assert not refdata.current().calendar.is_business_day(TOMORROW)


def test_another_workers_change_is_seen_by_a_process_holding_the_old_snapshot(app):
    assert _routed_to(app) == ECULLY
    stale = refdata._snapshot
    assert stale is not None and PARTENAIRE in _rule_names(stale)
    rules = RoutingRule.__table__
    _other_worker_commits(app, sa.update(rules).where(rules.c.name == PARTENAIRE).values(is_active=False))
    refdata._snapshot = stale  # this process was told nothing: it still holds the old snapshot

    # The first request after the commit reads the version, sees it moved and rebuilds.
    assert _routed_to(app) == METROPOLE
    assert refdata._snapshot is not stale
    with app.app_context():
        snap = refdata.current()
        assert snap is not stale and snap.version == stale.version + 1
        assert PARTENAIRE not in _rule_names(snap)


def test_another_workers_rename_is_seen_by_current_outside_a_request(app):
    with app.app_context():
        stale = refdata.current()
        assert stale.services["toodego"].name == "Toodego"
    services = Service.__table__
    _other_worker_commits(app, sa.update(services).where(services.c.code == "toodego").values(name="Toodego 2"))
    refdata._snapshot = stale
    with app.app_context():
        snap = refdata.current()
        assert snap is not stale and snap.version == stale.version + 1
        assert snap.services["toodego"].name == "Toodego 2"


# --- a rolled-back change -------------------------------------------------------------------------------------


def test_a_rolled_back_change_leaves_the_committed_data(app):
    with app.app_context():
        committed = refdata.current()
        rule = db.session.scalar(sa.select(RoutingRule).where(RoutingRule.name == PARTENAIRE))
        rule.is_active = False
        db.session.flush()
        inside = refdata.current()  # the transaction sees its own change…
        assert PARTENAIRE not in _rule_names(inside)
        db.session.rollback()
        after = refdata.current()  # …and once it is rolled back, the committed data again
        assert after.version == committed.version
        assert PARTENAIRE in _rule_names(after)
    assert _routed_to(app) == ECULLY


def test_a_rolled_back_change_is_not_seen_under_another_workers_version_number(app):
    """A snapshot built inside a transaction that bumped the version and then rolled back must not be taken for
    the data of the next committed version (another worker's commit reaches the same number)."""
    with app.app_context():
        committed = refdata.current()
        rule = db.session.scalar(sa.select(RoutingRule).where(RoutingRule.name == PARTENAIRE))
        rule.is_active = False
        db.session.flush()  # version committed + 1, in this transaction only
        assert PARTENAIRE not in _rule_names(refdata.current())
        db.session.rollback()
    services = Service.__table__
    _other_worker_commits(app, sa.update(services).where(services.c.code == "toodego").values(name="Toodego 2"))
    assert _version(app) == committed.version + 1
    with app.app_context():
        snap = refdata.current()
        assert snap.services["toodego"].name == "Toodego 2"  # the other worker's committed change
        assert PARTENAIRE in _rule_names(snap)  # not the rolled-back one
    assert _routed_to(app) == ECULLY


# --- one version read per request -----------------------------------------------------------------------------


class _Statements:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def about_version(self) -> list[str]:
        return [s for s in self.seen if "reference_data_version" in s]


def _count_statements(app: Flask, call: Any) -> tuple[Any, _Statements]:
    """Statements run by `call`: those of the app's engine, and on PostgreSQL those sent on a raw connection of the
    autocommit engine (sau.autocommit: the version read and the reference counter)."""
    from sau import autocommit

    with app.app_context():
        engine = db.engine
    statements = _Statements()
    original = autocommit.fetch_row

    def recording(sql: str, params: Any = (), **kwargs: Any) -> Any:
        statements(None, None, sql, params, None, False)
        return original(sql, params, **kwargs)

    sa.event.listen(engine, "before_cursor_execute", statements)
    autocommit.fetch_row = recording  # type: ignore[assignment]
    try:
        response = call()
    finally:
        autocommit.fetch_row = original  # type: ignore[assignment]
        sa.event.remove(engine, "before_cursor_execute", statements)
    return response, statements


def _form_post(app: Flask) -> Any:
    client = app.test_client()
    return client, {"csrf_token": csrf_token(client, FORM), **FORM_DATA}


# --- validation errors from the snapshot ----------------------------------------------------------------------


def _new_school_in_villeurbanne(app: Flask) -> None:
    # Villeurbanne does not subscribe to laclasse.com: its schools are not offered.
    with app.app_context():
        villeurbanne = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69266"))
        db.session.add(School(uai="0691234X", name="École des Tests", commune=villeurbanne))
        db.session.commit()


INVALID = [
    # (id, body changes, field, field message, part of the message)
    ("unknown-service", {"service": "minecraft"}, "service", "Service inconnu.", "Service inconnu : « minecraft »."),
    ("geonet", {"service": "geonet", "category": None, "commune": None}, "service",
     "Ce service n'a pas d'assistance SAU.", "Le service Geonet ne dispose pas du SAU."),
    ("unknown-category", {"category": "pizza"}, "category", "Catégorie inconnue pour ce service.", None),
    ("unknown-commune", {"commune": "75056"}, "commune",
     "Commune inconnue (code INSEE attendu, par exemple 69081 pour Écully).", None),
    ("school-not-in-a-subscribed-commune", {"service": "laclasse", "category": "connexion", "commune": None,
                                            "school": "0691234X"}, "school", "Établissement inconnu pour ce service.",
     None),
]


@pytest.mark.parametrize(("changes", "field", "field_message", "message"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_api_validation_errors_come_from_the_snapshot_in_french(app, changes, field, field_message, message):
    _new_school_in_villeurbanne(app)
    payload = {k: v for k, v in (BODY | changes).items() if v is not None}
    response = app.test_client().post(API, json=payload)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][field] == field_message
    if message is not None:
        assert message in error["message"]
    assert ticket_count(app) == 0
    with app.app_context():
        assert "0691234X" in refdata.current().schools  # the school is known: only its commune's offer is missing


def test_a_school_is_offered_while_its_commune_subscribes(app, login_as):
    laclasse = {"service": "laclasse", "category": "connexion", "school": "0690900A"}
    payload = {k: v for k, v in (BODY | laclasse).items() if k != "commune"}
    response = app.test_client().post(API, json=payload)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["school"]["uai"] == "0690900A"
    _end_ecully_subscription(app, login_as, "laclasse")
    response = app.test_client().post(API, json=payload)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["school"] == "Établissement inconnu pour ce service."


def test_a_service_losing_its_sau_is_refused_at_once(app):
    assert _api(app).status_code == 201
    with app.app_context():
        service = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        service.has_sau = False
        service.no_sau_reason = "Assistance suspendue."
        db.session.commit()
    response = _api(app)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["fields"]["service"] == "Ce service n'a pas d'assistance SAU."
    assert error["message"] == "Le service Toodego ne dispose pas du SAU. Assistance suspendue."


FORM_INVALID = [
    ("unknown-category", {"category": "pizza"}, "category", "Catégorie inconnue pour ce service."),
    ("unknown-commune", {"commune": "75056"}, "commune",
     "Commune inconnue (code INSEE attendu, par exemple 69081 pour Écully)."),
]


@pytest.mark.parametrize(("changes", "field", "message"), [c[1:] for c in FORM_INVALID],
                         ids=[c[0] for c in FORM_INVALID])
def test_form_validation_errors_come_from_the_snapshot_in_french(app, changes, field, message):
    import html
    import re

    client, data = _form_post(app)
    response = client.post(FORM, data=data | changes)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    shown = re.search(rf'<p class="error-message" id="{field}-erreur">(.*?)</p>', page, re.DOTALL)
    assert shown is not None and html.unescape(shown.group(1)).strip() == message
    assert ticket_count(app) == 0
