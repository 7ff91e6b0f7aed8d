"""Fixtures: the app on SQLite or a throwaway PostgreSQL (SAU_TEST_DB), schema built by the migrations,
demo reference data reloaded before each test, a frozen clock, clients signed in as each demo role."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

PARIS = ZoneInfo("Europe/Paris")
# A Tuesday in term time, 10:00 in Paris: business hours.
FROZEN_AT = datetime(2026, 3, 10, 10, 0, tzinfo=PARIS)

DEMO_EMAILS = {
    "usager_a": "camille.martin@example.org",
    "usager_b": "louis.bernard@example.org",
    "agent_metropole": "alice.dupont@grandlyon.example",
    "agent_ecully": "etienne.roux@ville-ecully.example",
    "agent_tassin": "tania.petit@tassinlademilune.example",
    "referent_ecully": "remi.leroy@ville-ecully.example",
    "manager_metropole": "manon.girard@grandlyon.example",
    "admin": "adele.moreau@grandlyon.example",
    "school_admin": "sophie.durand@ecole-ecully.example",
}


def db_kind() -> str:
    kind = os.environ.get("SAU_TEST_DB", "sqlite")
    if kind not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"SAU_TEST_DB must be sqlite or postgresql, not {kind!r}")
    return kind


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if db_kind() == "postgresql":
        from tests.support.pgcluster import PostgresCluster

        cluster = PostgresCluster()
        url = cluster.start()
        try:
            yield url
        finally:
            cluster.stop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'sau-test.sqlite3'}"


@pytest.fixture(scope="session")
def _app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from sau import create_app

    app = create_app(
        "test",
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "ATTACHMENTS_DIR": str(tmp_path_factory.mktemp("attachments")),
        },
    )
    with app.app_context():
        upgrade()  # the schema comes from the migrations, as in production
    yield app
    with app.app_context():
        from sau.extensions import db

        db.engine.dispose()


_SNAPSHOTS: dict[int, dict[str, list[dict[str, Any]]]] = {}


def reset_database(app: Flask) -> None:
    """Empty every table and restore the demo reference data.

    The demo data is loaded through the real loader once per session, then restored from a snapshot of its rows
    (a bulk insert per table), which is what makes a fresh database per test affordable.
    """
    from sau.extensions import db
    from sau.orgs.loader import DEMO_FILE, load_file

    with app.app_context():
        tables = list(db.metadata.sorted_tables)
        is_pg = db.engine.dialect.name == "postgresql"
        if is_pg:
            # TRUNCATE (not DELETE) leaves empty tables whose rows come back in insertion order, as in a new database.
            names = ", ".join(f'"{t.name}"' for t in tables)
            db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                db.session.execute(table.delete())
        snapshot = _SNAPSHOTS.get(id(app))
        if snapshot is None:
            db.session.commit()
            load_file(DEMO_FILE, FROZEN_AT)
            db.session.commit()
            _SNAPSHOTS[id(app)] = {t.name: [dict(r._mapping) for r in db.session.execute(t.select())] for t in tables}
        else:
            for table in tables:
                rows = snapshot[table.name]
                if rows:
                    db.session.execute(table.insert(), rows)
                if is_pg and rows and "id" in table.c:
                    db.session.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                               f"{max(r['id'] for r in rows)})"))
            db.session.commit()
        db.session.remove()
    from sau import refdata

    # The restored version row carries the same number as in the previous test, whose data may have differed:
    # a new database for the snapshot too (in production the number only ever grows).
    refdata._snapshot = None


@pytest.fixture()
def app(_app: Flask) -> Iterator[Flask]:
    from sau.clock import FrozenClock

    reset_database(_app)
    clock = FrozenClock(FROZEN_AT)
    _app.extensions["sau_clock"] = clock
    saved = dict(_app.config)
    yield _app
    _app.config.clear()
    _app.config.update(saved)
    with _app.app_context():
        from sau.extensions import db

        db.session.remove()


@pytest.fixture()
def clock(app: Flask) -> Any:
    return app.extensions["sau_clock"]


@pytest.fixture()
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def user_id(app: Flask, role: str) -> int:
    from sau.auth.models import User
    from sau.extensions import db

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))
        assert user is not None, role
        return user.id


def login(client: FlaskClient, app: Flask, role: str) -> FlaskClient:
    """Sign `client` in as the demo account of `role` (as Flask-Login would after a real sign-in)."""
    uid = user_id(app, role)
    with client.session_transaction() as sess:
        sess["_user_id"] = str(uid)
        sess["_fresh"] = True
    return client


@pytest.fixture()
def login_as(app: Flask) -> Any:
    def _login(role: str) -> FlaskClient:
        return login(app.test_client(), app, role)

    return _login


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, page: str = "/aide?service=toodego") -> str:
    html = client.get(page).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {page}"
    return match.group(1) or match.group(2)


def ticket_count(app: Flask) -> int:
    """How many tickets the database holds (to prove a refused request created nothing)."""
    from sau.extensions import db
    from sau.tickets.models import Ticket

    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) or 0)


@pytest.fixture()
def make_request(app: Flask) -> Any:
    """Create a help request through the operations layer; returns its reference."""

    def _make(service: str = "toodego", category: str | None = "teleservice-communal", commune: str | None = "69081",
              school: str | None = None, requester: str | None = None, email: str | None = "demandeur@example.org",
              subject: str = "Ma démarche est bloquée", description: str = "Je ne peux pas valider ma démarche.") -> str:
        from sau.auth.models import User
        from sau.clock import now_utc
        from sau.extensions import db
        from sau.help import intake
        from sau.tickets import operations as ops

        with app.app_context():
            svc = intake.require_sau_service(service)
            now = now_utc()
            cat, com, sch = intake.resolve_fields(svc, category, commune, school, now.date())
            user = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[requester])) if requester else None
            created = ops.create_request(
                ops.NewRequest(service=svc, subject=subject, description=description, category=cat, commune=com,
                               school=sch, email=None if user else email), user, now)
            db.session.commit()
            return created.ticket.reference

    return _make


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright, one per test session (Playwright's sync API allows a
    single running instance per thread, so every browser test shares it)."""
    from tests.support.browser import axe_script_path, chromium_path, launch_browser
    from tests.support.env import skip_or_fail

    if not os.access(chromium_path(), os.X_OK):
        skip_or_fail(f"Chromium not found at {chromium_path()} (bash scripts/ensure-system-deps.sh)")
    if not axe_script_path().is_file():
        skip_or_fail(f"{axe_script_path()} not found (npm ci)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the Python package playwright is not installed")
    with sync_playwright() as pw:
        b = launch_browser(pw)
        try:
            yield b
        finally:
            b.close()
