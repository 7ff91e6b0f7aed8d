"""The SLA compliance dashboard of a Métropole manager in headless Chromium: reachable from the navigation,
filters usable, no axe-core violation."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_dashboard_is_accessible(page: Page) -> None:
    sign_in(page, "manager_metropole")
    page.get_by_role("link", name="Conformité SLA").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Respect des délais de résolution par commune"
    assert page.get_by_role("row").count() == 59  # header + 58 communes
    assert_no_axe_violations(page)
    page.get_by_label("Période", exact=True).fill("2026-T1")
    page.get_by_label("Priorité").select_option("bloquant")
    page.get_by_role("button", name="Afficher").click()
    assert "period=2026-T1" in page.url
    assert_no_axe_violations(page)
    screenshot(page, "reports-sla")
    page.get_by_label("Période", exact=True).fill("2026-13")
    page.get_by_role("button", name="Afficher").click()
    assert "Mois invalide." in page.get_by_role("alert").inner_text()
    assert_no_axe_violations(page)
