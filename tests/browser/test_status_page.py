"""The public status page and the help form's maintenance banner in headless Chromium: content, no axe-core
violation, and the management pages of a Métropole agent (issue 6, points 2–3)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")


def _seed(app: Flask) -> None:
    """An ongoing partial outage, an unplanned outage last week, a maintenance under way and one upcoming."""
    from sau.auth.models import User
    from sau.extensions import db
    from sau.orgs.models import Service
    from sau.status import operations as ops
    from sau.status.models import Outage

    with app.app_context():
        now = app.extensions["sau_clock"].now()
        toodego = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        admin = db.session.scalar(sa.select(User).where(User.email == "adele.moreau@grandlyon.example"))
        db.session.add_all([
            Outage(service=toodego, started_at=datetime(2026, 3, 3, 14, tzinfo=PARIS),
                   ended_at=datetime(2026, 3, 3, 15, 30, tzinfo=PARIS), kind="total", is_planned=False,
                   description="Erreur 502", created_at=now),
            Outage(service=toodego, started_at=now - timedelta(minutes=25), ended_at=None, kind="partial",
                   is_planned=False, description="Lenteurs du paiement en ligne", created_at=now),
        ])
        ops.announce_maintenance(admin, now - timedelta(days=2), toodego, now - timedelta(minutes=30),
                                 now + timedelta(hours=1), "Paiement en ligne indisponible.")
        ops.announce_maintenance(admin, now, toodego, now + timedelta(days=3), now + timedelta(days=3, hours=4),
                                 "Connexion GrandLyon Connect impossible.")
        db.session.commit()


def test_status_pages_have_no_axe_violation(app: Flask, page: Page) -> None:
    _seed(app)
    response = page.goto("/statut")
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "État des services"
    assert_no_axe_violations(page)
    page.get_by_role("link", name="Toodego", exact=True).click()
    page.wait_for_url("**/statut/toodego")
    assert page.get_by_role("heading", level=1).inner_text() == "État du service Toodego"
    assert page.get_by_text("Maintenance en cours").first.is_visible()
    assert page.get_by_text("Connexion GrandLyon Connect impossible.").is_visible()
    days = page.locator("table.availability-days tbody tr")
    assert days.count() == 90
    assert "1 (1 h 30 min 00 s)" in page.locator("table.availability-days").inner_text()
    assert_no_axe_violations(page)
    screenshot(page, "status-toodego")
    # The footer link leads here from any page.
    page.goto("/")
    page.get_by_role("link", name="État des services").click()
    page.wait_for_url("**/statut")


def test_help_form_banner_has_no_axe_violation(app: Flask, page: Page) -> None:
    _seed(app)
    page.goto("/aide?service=toodego")
    banner = page.locator(".maintenance-banner")
    assert banner.is_visible() and "Maintenance en cours" in banner.inner_text()
    assert_no_axe_violations(page)


def test_agent_pages_have_no_axe_violation(app: Flask, page: Page) -> None:
    _seed(app)
    sign_in(page, "agent_metropole")
    for path, title in [("/statut/gestion", "Gestion de l'état des services"),
                        ("/statut/gestion/indisponibilites/nouvelle", "Enregistrer une indisponibilité"),
                        ("/statut/gestion/maintenances/nouvelle", "Annoncer une maintenance")]:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert page.get_by_role("heading", level=1).inner_text() == title
        assert_no_axe_violations(page)
    # An empty announcement: the errors are announced and axe stays clean.
    page.get_by_role("button", name="Annoncer").click()
    page.wait_for_load_state()
    assert page.locator("#resume-erreurs").is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "status-maintenance-form-errors")


