"""The access log and the commune export pages of an admin in headless Chromium: reachable from the
administration's navigation, filters and form usable with the keyboard-free defaults, no axe-core violation,
and the export downloads a valid ZIP."""
from __future__ import annotations

import json
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def _sign_in_admin(page: Page) -> None:
    page.goto("/auth/dev-login")
    select = page.get_by_label("Compte de démonstration")
    label = next(o for o in select.locator("option").all_inner_texts() if o.startswith("Adèle Moreau ("))
    select.select_option(label=label)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(lambda url: "/auth/dev-login" not in url)


def test_access_log_and_export_pages(app: Any, login_as: Any, make_request: Any, page: Page, tmp_path: Any) -> None:
    references = [make_request(requester="usager_a", commune="69081", subject=f"Demande {i}") for i in range(3)]
    agent = login_as("agent_ecully")
    for reference in references:
        assert agent.get(f"/agent/tickets/{reference}").status_code == 200
    login_as("admin").get("/admin/habilitations?organisation=69081")

    _sign_in_admin(page)
    page.goto("/admin/")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Journal des accès").click()
    page.wait_for_url("**/admin/journal-acces")
    assert page.get_by_role("heading", level=1).inner_text() == "Journal des accès aux données personnelles"
    assert page.get_by_role("status").inner_text().startswith("4 entrées.")
    assert page.get_by_role("link", name=references[0]).is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "privacy-journal-acces")

    page.get_by_label("Action").select_option(label="Consultation d'un ticket")
    page.get_by_label("Commune").select_option(label="Écully")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**action=ticket.view**")
    assert page.get_by_role("status").inner_text().startswith("3 entrées.")
    assert_no_axe_violations(page)

    page.get_by_label("Période").fill("2026-13")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").get_by_text("Mois invalide.").is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "privacy-journal-acces-erreur")

    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Export d'une commune").click()
    page.wait_for_url("**/admin/export-commune")
    assert_no_axe_violations(page)
    screenshot(page, "privacy-export-commune")

    page.get_by_role("button", name="Télécharger l'export (ZIP)").click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").get_by_text("Choisissez la commune à exporter.").first.is_visible()
    assert_no_axe_violations(page)
    screenshot(page, "privacy-export-commune-erreur")

    page.get_by_label("Commune").select_option(label="Écully (69081)")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Télécharger l'export (ZIP)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("export-69081-") and download.suggested_filename.endswith(".zip")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with zipfile.ZipFile(target) as zf:
        assert zf.testzip() is None
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["counts"]["tickets"] == 3

    page.goto("/admin/journal-acces?action=commune.export")
    assert page.get_by_role("status").inner_text().startswith("1 entrée.")
