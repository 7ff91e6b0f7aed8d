"""« Mes données » in headless Chromium: the page, its forms and their errors have no axe-core violation, and the
correction works with the keyboard-reachable form (issue 8, point 1; RGAA, convention art. 8)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_mes_donnees_has_no_axe_violation_and_shows_french_errors(app: Flask, page: Page, make_request) -> None:
    reference = make_request(requester="usager_a", subject="Mot de passe oublié")
    sign_in(page, "usager_a")
    page.get_by_role("link", name="Mes données").first.click()
    page.wait_for_url("**/mes-donnees")
    assert page.get_by_role("heading", level=1).inner_text() == "Mes données"
    assert page.get_by_role("link", name=reference).is_visible()
    assert page.get_by_role("link", name="Télécharger mes données (JSON)").is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "mes-donnees")

    page.get_by_role("textbox", name="Adresse e-mail (obligatoire)").fill("pas-une-adresse")
    page.get_by_role("button", name="Enregistrer mes coordonnées").click()
    assert page.get_by_text("Adresse e-mail invalide (exemple : prenom.nom@exemple.fr).").first.is_visible()
    assert_no_axe_violations(page)

    page.get_by_role("button", name="Supprimer définitivement mon compte").click()
    assert page.get_by_text("Cochez cette case pour confirmer.").first.is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "mes-donnees-erreurs")

    page.get_by_role("textbox", name="Adresse e-mail (obligatoire)").fill("camille.martin@example.net")
    page.get_by_role("button", name="Enregistrer mes coordonnées").click()
    page.wait_for_url("**/mes-donnees")
    assert page.get_by_text("Vos coordonnées ont été corrigées (adresse e-mail).").is_visible()


def test_agent_masking_form_has_no_axe_violation(app: Flask, page: Page, make_request) -> None:
    reference = make_request(requester="usager_a", description="Mon téléphone : 06 11 22 33 44.")
    sign_in(page, "agent_ecully")
    page.goto(f"/agent/tickets/{reference}")
    page.get_by_text("Masquer une donnée personnelle").click()
    page.get_by_label("Texte à masquer (copiez-le exactement)").fill("06 11 22 33 44")
    assert_no_axe_violations(page)
    page.get_by_role("button", name="Masquer", exact=True).click()
    page.wait_for_url(f"**/agent/tickets/{reference}*")
    assert page.get_by_text("Texte masqué (14 caractère(s)).").is_visible()
    assert "06 11 22 33 44" not in page.content()
    assert_no_axe_violations(page)
    screenshot(page, "agent-masquage")
