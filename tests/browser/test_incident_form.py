"""The incident form of a commune's référent in headless Chromium: no axe-core violation on the form, on its
errors and on the incident page; the subscription and offer are shown; the incident goes to the Métropole."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_incident_form_is_accessible_and_reaches_the_metropole(page: Page) -> None:
    sign_in(page, "referent_ecully")
    page.get_by_role("link", name="Signaler un incident").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Signaler un incident sur un service mutualisé"
    assert page.get_by_role("cell", name="Partenaire").is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "incident-form")

    page.get_by_role("button", name="Envoyer l'incident à la Métropole").click()
    assert page.get_by_text("Choisissez le service concerné.").first.is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "incident-form-errors")

    page.get_by_label("Service concerné").select_option(label="Toodego")
    page.get_by_label("Objet de l'incident").fill("Les démarches ne s'affichent plus")
    page.get_by_label("Description de l'incident").fill("Depuis 9 h, aucune démarche de la commune ne s'affiche.")
    page.get_by_role("button", name="Envoyer l'incident à la Métropole").click()
    page.wait_for_url("**/incidents/SAU-*")
    assert "Métropole de Lyon — niveau 1" in page.locator("dl.summary").inner_text()
    assert "offre Partenaire" in page.locator("dl.summary").inner_text()
    assert_no_axe_violations(page)
    screenshot(page, "incident-page")

    page.goto("/incidents/alerte-securite")
    assert_no_axe_violations(page)
    page.goto("/incidents")
    assert_no_axe_violations(page)
