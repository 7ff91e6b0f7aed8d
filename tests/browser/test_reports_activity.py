"""The availability and workload reports of a Métropole manager, and the public open-data page, in headless
Chromium: reachable from the navigation, filters usable, no axe-core violation."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.browser.conftest import sign_in
from tests.conftest import DEMO_EMAILS
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")


def _demo_activity(app, clock, make_request) -> None:
    """A few tickets over February and March, some answered and resolved; two Toodego outages."""
    from sau.auth.models import User
    from sau.extensions import db
    from sau.orgs.models import Service
    from sau.status import operations as status_ops
    from sau.tickets import operations as ops

    refs = []
    for day, commune in ((2, "69081"), (9, "69244"), (16, "69081"), (23, "69244")):
        clock.set(datetime(2026, 2, day, 10, tzinfo=PARIS))
        refs.append((make_request(commune=commune), commune))
    clock.set(datetime(2026, 3, 2, 10, tzinfo=PARIS))
    refs.append((make_request(commune="69081"), "69081"))
    with app.app_context():
        agents = {c: db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[r]))
                  for c, r in (("69081", "agent_ecully"), ("69244", "agent_tassin"), ("m", "agent_metropole"))}
        for i, (ref, commune) in enumerate(refs[:4]):
            t = ops.get_ticket(ref)
            created = t.created_at
            ops.set_priority(t, agents[commune], ("bloquant", "majeur")[i % 2], created + timedelta(hours=1))
            ops.resolve(t, agents[commune], "Fait", created + timedelta(hours=5 + 20 * i))
        toodego = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        now = datetime(2026, 3, 10, 10, tzinfo=PARIS)
        status_ops.record_outage(agents["m"], now, toodego, datetime(2026, 2, 10, 9, tzinfo=PARIS),
                                 datetime(2026, 2, 10, 10, 30, tzinfo=PARIS), "total", False, "Panne", [refs[0][0]])
        status_ops.record_outage(agents["m"], now, toodego, datetime(2026, 3, 3, 14, tzinfo=PARIS),
                                 datetime(2026, 3, 3, 14, 20, tzinfo=PARIS), "partial", False, "Lenteurs", [])
        db.session.commit()
    clock.set(datetime(2026, 3, 10, 10, tzinfo=PARIS))


def test_availability_report_is_accessible(page: Page, app, clock, make_request) -> None:
    _demo_activity(app, clock, make_request)
    sign_in(page, "manager_metropole")
    page.get_by_role("link", name="Rapports", exact=True).click()
    page.get_by_role("link", name="Disponibilité des services").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Disponibilité des services par mois"
    assert page.get_by_role("img", name="Disponibilité mensuelle de Toodego").count() == 1
    assert_no_axe_violations(page)
    page.get_by_label("Année").fill("2026")
    page.get_by_label("Service").select_option("toodego")
    page.get_by_role("button", name="Afficher").click()
    assert "year=2026" in page.url
    assert page.get_by_text("Du 10/02/2026 09:00 au 10/02/2026 10:30").count() == 1
    assert_no_axe_violations(page)
    screenshot(page, "reports-availability")
    page.get_by_label("Année").fill("20x6")
    page.get_by_role("button", name="Afficher").click()
    assert "Année attendue au format AAAA" in page.get_by_role("alert").inner_text()
    assert_no_axe_violations(page)


def test_activity_report_is_accessible(page: Page, app, clock, make_request) -> None:
    _demo_activity(app, clock, make_request)
    sign_in(page, "manager_metropole")
    page.goto("/rapports/sla")
    page.get_by_role("link", name="Charge et délais").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Charge et délais de traitement"
    page.get_by_label("Période", exact=True).fill("2026-T1")
    page.get_by_role("button", name="Afficher").click()
    assert "period=2026-T1" in page.url
    assert page.get_by_role("table", name="Tickets créés par commune (lignes) et par mois (colonnes)").count() == 1
    assert page.get_by_role("img", name="Tickets créés par mois").count() == 1
    assert_no_axe_violations(page)
    screenshot(page, "reports-activity")
    with page.expect_download() as download:
        page.get_by_role("link", name="Délais (XLSX)").click()
    assert download.value.suggested_filename.endswith(".xlsx")
    page.get_by_label("Période", exact=True).fill("2026-13")
    page.get_by_role("button", name="Afficher").click()
    assert "Mois invalide." in page.get_by_role("alert").inner_text()
    assert_no_axe_violations(page)


def test_open_data_page_is_public_and_accessible(page: Page, app, clock, make_request) -> None:
    _demo_activity(app, clock, make_request)
    page.goto("/")
    page.get_by_role("link", name="Données ouvertes").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Données ouvertes du SAU"
    assert page.get_by_role("link", name="sau-tickets.csv").count() == 1
    assert_no_axe_violations(page)
    screenshot(page, "opendata")
