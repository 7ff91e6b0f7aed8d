"""The SLA reports of a Métropole manager in headless Chromium: the dashboard reachable from the navigation, filters
usable, charts drawn, breaches, priority changes, a ticket's explanation and the annual report (printed to PDF and
as a print-media screenshot), no axe-core violation anywhere.

A year of tickets (12 communes, about 150 tickets, real operations: priority set, resolved on time or late, some
left open) is created first, so that the screenshots show a meaningful dashboard; the screenshot of the dashboard is
the one in the README (docs/screenshots/rapports-sla.png).
"""
from __future__ import annotations

import random
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")
ROOT = Path(__file__).resolve().parents[2]
# commune → share of late resolutions (Écully and Vénissieux below the 95 % commitment)
MAIN_TABLE = "Conformité SLA par commune, la moins conforme en premier, avec la tendance sur 12 mois"
COMMUNES = {"69081": 0.15, "69259": 0.12, "69244": 0.04, "69123": 0.03, "69266": 0.02, "69029": 0.0,
            "69034": 0.0, "69091": 0.05, "69290": 0.0, "69283": 0.08, "69199": 0.0, "69204": 0.0}


def _year_of_tickets(app, clock, make_request) -> None:
    import sqlalchemy as sa

    from sau.auth import policy
    from sau.auth.models import User
    from sau.extensions import db
    from sau.tickets import operations as ops
    from tests.conftest import DEMO_EMAILS
    from tests.reports.test_compliance_sql import _agent_for

    rng = random.Random(11)
    back_to = clock.now()
    for months_ago in range(11, -1, -1):
        index = 2026 * 12 + 2 - months_ago  # March 2026 and the 11 months before
        year, month = divmod(index, 12)
        for day in (2, 9, 16, 23) if months_ago else (2, 5):
            clock.set(datetime(year, month + 1, day, 9, 30, tzinfo=PARIS) + timedelta(days=day % 3))
            for commune, late_share in COMMUNES.items():
                if rng.random() < 0.5:
                    continue
                ref = make_request(commune=commune)
                with app.app_context():
                    ticket = ops.get_ticket(ref)
                    agent = _agent_for(commune)
                    if not policy.can_work(agent, ticket):  # the commune's tickets go to the Métropole's queue
                        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_metropole"]))
                    now = clock.now()
                    priority = rng.choice(["bloquant", "majeur", "majeur"])
                    ops.set_priority(ticket, agent, priority, now)
                    if rng.random() < 0.3:
                        ops.set_priority(ticket, agent, "bloquant" if priority == "majeur" else "majeur",
                                         now + timedelta(minutes=30), justification="Nouveau diagnostic")
                    late = rng.random() < late_share
                    if months_ago or rng.random() < 0.5:
                        ops.resolve(ticket, agent, "Corrigé", now + timedelta(days=6 if late else 0, hours=2))
                    db.session.commit()
    clock.set(back_to)


def test_dashboard_is_accessible(page: Page) -> None:
    sign_in(page, "manager_metropole")
    page.get_by_role("link", name="Rapports", exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text() == "Respect des délais de résolution par commune"
    table = page.get_by_role("table", name=MAIN_TABLE)
    assert table.get_by_role("row").count() == 59  # header + 58 communes
    assert_no_axe_violations(page)
    page.get_by_label("Période", exact=True).fill("2026-T1")
    page.get_by_label("Priorité").select_option("bloquant")
    page.get_by_role("button", name="Afficher").click()
    assert "period=2026-T1" in page.url
    assert_no_axe_violations(page)
    page.get_by_label("Période", exact=True).fill("2026-13")
    page.get_by_role("button", name="Afficher").click()
    assert "Mois invalide." in page.get_by_role("alert").inner_text()
    assert_no_axe_violations(page)


def test_reports_with_a_year_of_tickets(page: Page, app, clock, make_request, tmp_path) -> None:
    """One year of data for every report page (created once: real operations are slow)."""
    _year_of_tickets(app, clock, make_request)
    sign_in(page, "manager_metropole")

    # the dashboard: charts with their table alternatives, the screenshot of the README
    page.goto("/rapports/sla?period=2025")
    table = page.get_by_role("table", name=MAIN_TABLE)
    assert "non conforme" in table.inner_text()
    assert page.get_by_role("img", name="Conformité par commune, la moins conforme en premier").is_visible()
    assert page.get_by_role("img", name="Tendance sur 12 mois, Écully").is_visible()
    assert_no_axe_violations(page)
    path = ROOT / "var" / "screenshots" / "rapports-sla.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1900})
    target = ROOT / "docs" / "screenshots" / "rapports-sla.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    page.get_by_text("Voir les données du graphique").click()  # the table alternative of the trend chart
    assert page.get_by_role("table", name="Conformité mois par mois, toutes communes").is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "reports-sla-full")

    # breaches, then a ticket's explanation
    page.get_by_role("link", name="Délais dépassés").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == "Délais de résolution dépassés"
    assert_no_axe_violations(page)
    screenshot(page, "reports-breaches")
    page.get_by_role("table").get_by_role("link").first.click()
    assert page.get_by_role("heading", name="Délai de résolution (SLA)").is_visible()
    page.get_by_text("Détail des périodes comptées et exclues").click()
    assert_no_axe_violations(page)
    screenshot(page, "reports-ticket")

    # priority changes
    page.goto("/rapports/sla/changements-priorite?period=2025")
    assert "Nouveau diagnostic" in page.get_by_role("table").inner_text()
    assert_no_axe_violations(page)

    # the annual report, on screen then printed
    page.goto("/rapports/annuel?annee=2025")
    assert page.get_by_role("heading", level=2, name="Écully (INSEE 69081) — 2025").is_visible()
    assert_no_axe_violations(page)
    page.emulate_media(media="print")
    assert not page.get_by_role("navigation", name="Rapports").is_visible()  # hidden on paper
    screenshot(page, "reports-annual-print", full_page=False)
    pdf = tmp_path / "rapport-annuel.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert pages >= 58  # a page (at least) per commune
    shutil.copyfile(pdf, ROOT / "var" / "screenshots" / "reports-annual.pdf")
