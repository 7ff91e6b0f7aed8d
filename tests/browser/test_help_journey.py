"""Issue 2, "Must show" (browser): a usager opens the help link from a service page, sees FAQ suggestions
and submits; an agent of the competent commune takes the ticket, sets a priority and resolves it; the usager
sees the resolution. axe-core reports no violation on any page visited. Also the anonymous path (e-mail and
tracking link) and the core path without JavaScript."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import assert_no_axe_violations, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = pytest.mark.browser

REFERENCE_RE = re.compile(r"SAU-2026-\d{6}")  # the frozen clock is in 2026
SUBJECT = "Pas reçu le mail de confirmation"
DESCRIPTION = "J'ai déposé ma demande de carte de stationnement résident hier et je n'ai reçu aucun e-mail."
REPLY = "Bonjour, nous avons relancé l'envoi de l'e-mail de confirmation depuis la plateforme."
RESOLUTION = "Le courriel était bloqué par votre messagerie : il a été renvoyé, pensez à vérifier les indésirables."


def check(page: Page, shot: str | None = None) -> None:
    """axe-core on the current page (no violation allowed), then an optional screenshot."""
    assert_no_axe_violations(page)
    if shot:
        screenshot(page, shot)


def fill_help_form(page: Page, *, email: str | None = None) -> None:
    page.get_by_label("Catégorie").select_option(label="Une démarche de ma commune")
    page.get_by_label("Commune concernée").select_option(label="Écully")
    page.get_by_label("Objet de votre demande").fill(SUBJECT)
    page.get_by_label("Décrivez votre demande").fill(DESCRIPTION)
    if email is not None:
        page.get_by_label("Votre adresse e-mail").fill(email)


def submit_help_form(page: Page) -> str:
    """Submit, check the confirmation page and return the reference shown."""
    page.get_by_role("button", name="Envoyer ma demande").click()
    page.wait_for_url(re.compile(r"/aide/merci/SAU-"))
    assert page.get_by_role("heading", level=1).inner_text() == "Votre demande est enregistrée"
    reference = page.locator(".reference").inner_text()
    assert REFERENCE_RE.fullmatch(reference), reference
    assert page.url.endswith("/aide/merci/" + reference)
    # A communal téléservice of Écully (Toodego partenaire) is handled by the commune.
    assert "Elle a été transmise à : Écully" in page.locator(".alert-success").inner_text()
    return reference


def flash_text(page: Page) -> str:
    return " ".join(page.locator(".flashes .alert").all_inner_texts())


def agent_works_ticket(agent: Page, reference: str, *, axe: bool = True) -> None:
    """As the signed-in agent of Écully: find the ticket in the queue, take it, set "Majeur", reply, resolve."""
    agent.get_by_role("link", name="File des tickets").click()
    agent.wait_for_url("**/agent/")
    row = agent.locator("tbody tr").filter(has=agent.get_by_role("link", name=reference))
    assert row.count() == 1, f"{reference} not in the queue"
    assert SUBJECT in row.inner_text() and "Nouveau" in row.inner_text() and "Écully" in row.inner_text()
    if axe:
        check(agent, "agent-queue")
    row.get_by_role("link", name=reference).click()
    agent.wait_for_url(f"**/agent/tickets/{reference}")
    assert agent.get_by_role("heading", level=1).inner_text() == f"{reference} — {SUBJECT}"
    assert DESCRIPTION in agent.locator(".ticket-main").inner_text()
    if axe:
        check(agent)

    agent.get_by_role("button", name="Prendre en charge").click()
    agent.wait_for_load_state()
    assert "Vous avez pris le ticket en charge." in flash_text(agent)
    summary = agent.locator("dl.summary")
    assert "En cours" in summary.inner_text() and "Étienne Roux" in summary.inner_text()
    assert agent.get_by_role("button", name="Prendre en charge").count() == 0

    # Priority after diagnosis: the convention's definitions are shown next to each choice.
    priority_box = agent.locator("details.action", has_text="Priorité après diagnostic")
    if priority_box.get_attribute("open") is None:
        priority_box.locator("summary").click()
    majeur = agent.get_by_role("radio", name="Majeur")
    assert majeur.get_attribute("aria-describedby") == "def-majeur"
    assert "possibilité de contournement" in agent.locator("#def-majeur").inner_text()
    assert "Indisponibilité totale" in agent.locator("#def-bloquant").inner_text()
    if axe:
        check(agent, "agent-ticket")
    majeur.check()
    agent.get_by_label("Diagnostic (facultatif)").fill("Courriel bloqué par la messagerie de l'usager.")
    agent.get_by_role("button", name="Enregistrer la priorité").click()
    agent.wait_for_load_state()
    assert "Priorité enregistrée." in flash_text(agent)
    assert "Majeur" in agent.locator("dl.summary").inner_text()

    agent.get_by_label("Message", exact=True).fill(REPLY)
    assert not agent.get_by_label("Note interne (invisible pour le demandeur)").is_checked()
    agent.get_by_role("button", name="Enregistrer le message").click()
    agent.wait_for_load_state()
    assert "Message enregistré." in flash_text(agent)
    assert REPLY in agent.locator("ol.timeline").inner_text()

    agent.locator("details.action", has_text="Résoudre").locator("summary").click()
    if axe:
        check(agent)
    agent.get_by_label("Note de résolution (visible par le demandeur)").fill(RESOLUTION)
    agent.get_by_role("button", name="Résoudre le ticket").click()
    agent.wait_for_load_state()
    assert "Ticket résolu." in flash_text(agent)
    assert "Résolu" in agent.locator("dl.summary").inner_text()
    assert agent.get_by_role("button", name="Clore le ticket").is_visible()
    if axe:
        check(agent)


def test_signed_in_usager_asks_for_help_and_agent_resolves(new_context: Callable[..., BrowserContext]) -> None:
    usager = new_context().new_page()
    sign_in(usager, "usager_a", check_axe=True)
    check(usager)  # the home page after sign-in

    # The service page: the embedded script adds the "Besoin d'aide ?" link carrying the page URL.
    usager.goto("/demo/service/toodego")
    service_page_url = usager.url
    help_link = usager.get_by_role("link", name="Besoin d'aide ?")
    help_link.wait_for()
    check(usager)
    help_link.click()
    usager.wait_for_url("**/aide?**")
    query = parse_qs(urlsplit(usager.url).query)
    assert query == {"service": ["toodego"], "page": [service_page_url]}
    assert usager.get_by_role("heading", level=1).inner_text() == "Demande d'aide — Toodego"
    assert service_page_url in usager.locator(".url").inner_text()
    assert usager.get_by_label("Votre adresse e-mail").input_value() == "camille.martin@example.org"
    check(usager)

    # Live FAQ suggestions while typing the subject (sau.js fetches /aide/faq.json).
    # Before typing, the service's frequent questions are listed; typing narrows them to what matches.
    suggestions = usager.locator("#faq-suggestions")
    assert "Comment joindre une pièce justificative à ma démarche ?" in suggestions.inner_text()
    usager.get_by_label("Objet de votre demande").press_sequentially("mail de confirmation", delay=10)
    suggestions.get_by_text("Questions fréquentes liées à votre demande").wait_for()
    assert suggestions.locator("summary").all_inner_texts() == [
        "Je n'ai pas reçu l'e-mail de confirmation de ma démarche"
    ]
    suggestion = suggestions.locator("summary")
    suggestion.click()  # <summary>: opens the answer
    assert suggestions.get_by_text("no-reply@toodego.com").is_visible()
    check(usager, "help-form")

    # The server-side search (the "Rechercher" button) gives the same answer without JavaScript.
    usager.get_by_label("Rechercher dans les questions fréquentes").fill("confirmation")
    usager.get_by_role("button", name="Rechercher").click()
    usager.wait_for_url("**q=confirmation**")
    query = parse_qs(urlsplit(usager.url).query)
    assert query["page"] == [service_page_url]  # the page URL survives the search
    assert "Je n'ai pas reçu l'e-mail de confirmation de ma démarche" in suggestions.inner_text()
    assert "Comment joindre une pièce justificative" not in suggestions.inner_text()
    check(usager)

    fill_help_form(usager)
    reference = submit_help_form(usager)
    check(usager, "confirmation")

    # The agent of Écully, in another browser context.
    agent = new_context().new_page()
    sign_in(agent, "agent_ecully")
    agent_works_ticket(agent, reference)

    # Back to the usager: "Mes demandes" shows the request resolved, the tracking page the resolution.
    usager.get_by_role("link", name="Mes demandes").click()
    usager.wait_for_url("**/mes-demandes")
    usager.reload()
    row = usager.locator("tbody tr").filter(has=usager.get_by_role("link", name=reference))
    assert row.count() == 1
    assert "Résolu" in row.locator(".badge").inner_text()
    check(usager)
    row.get_by_role("link", name=reference).click()
    usager.wait_for_url(f"**/suivi/{reference}")
    assert "Résolu" in usager.locator("dl.summary").inner_text()
    resolution = usager.get_by_role("region", name="Résolution")
    assert RESOLUTION in resolution.inner_text()
    timeline = usager.locator("ol.timeline").inner_text()
    assert REPLY in timeline and "Étienne Roux" in timeline
    assert "Courriel bloqué par la messagerie" not in usager.content()  # the diagnosis stays internal
    assert usager.get_by_role("button", name="Rouvrir ma demande").is_visible()
    check(usager, "usager-tracking")


def test_anonymous_usager_submits_with_email_and_follows_tracking_link(
    new_context: Callable[..., BrowserContext],
) -> None:
    usager = new_context().new_page()
    usager.goto("/demo/service/toodego")
    usager.get_by_role("link", name="Besoin d'aide ?").click()
    usager.wait_for_url("**/aide?**")
    assert usager.get_by_label("Votre adresse e-mail").input_value() == ""
    # Without an e-mail the anonymous request is refused with a clear message on the field.
    fill_help_form(usager)
    usager.get_by_role("button", name="Envoyer ma demande").click()
    usager.wait_for_load_state()
    assert "Indiquez votre adresse e-mail pour être tenu informé." in usager.locator("#email-erreur").inner_text()
    assert usager.get_by_label("Votre adresse e-mail").get_attribute("aria-invalid") == "true"
    check(usager)

    usager.get_by_label("Votre adresse e-mail").fill("claire.usagere@example.org")
    reference = submit_help_form(usager)
    tracking = usager.get_by_role("link", name="Suivre ma demande")
    assert f"/suivi/{reference}?jeton=" in (tracking.get_attribute("href") or "")
    check(usager, "confirmation-anonymous")
    tracking.click()
    usager.wait_for_url(f"**/suivi/{reference}")  # the token is exchanged for the session, then dropped
    assert usager.get_by_role("heading", level=1).inner_text() == f"Demande {reference}"
    assert "Nouveau" in usager.locator("dl.summary").inner_text()
    assert DESCRIPTION in usager.locator(".message").first.inner_text()
    check(usager)

    # The usager adds a detail from the tracking page.
    usager.get_by_label("Votre réponse").fill("J'ai vérifié mes courriers indésirables, rien.")
    usager.get_by_role("button", name="Envoyer", exact=True).click()
    usager.wait_for_load_state()
    assert "Votre réponse a été envoyée." in flash_text(usager)
    assert "J'ai vérifié mes courriers indésirables, rien." in usager.locator("ol.timeline").inner_text()

    # Another browser without the link sees nothing.
    stranger = new_context().new_page()
    response = stranger.goto(f"/suivi/{reference}")
    assert response is not None and response.status == 404


def test_core_path_works_without_javascript(new_context: Callable[..., BrowserContext]) -> None:
    usager = new_context(java_script_enabled=False).new_page()
    # Without JavaScript the service page offers the plain link /aide?service=toodego (in <noscript>).
    usager.goto("/demo/service/toodego")
    link = usager.get_by_role("link", name="Besoin d'aide ?")
    assert link.count() == 1 and link.get_attribute("href") == "/aide?service=toodego"
    link.click()
    usager.wait_for_url("**/aide?service=toodego")
    assert usager.get_by_label("Objet de votre demande").is_visible()
    usager.get_by_label("Rechercher dans les questions fréquentes").fill("mail")
    usager.get_by_role("button", name="Rechercher").click()
    usager.wait_for_url("**q=mail**")
    assert "Je n'ai pas reçu l'e-mail de confirmation" in usager.locator("#faq-suggestions").inner_text()
    fill_help_form(usager, email="sans.javascript@example.org")
    reference = submit_help_form(usager)
    usager.get_by_role("link", name="Suivre ma demande").click()
    usager.wait_for_url(f"**/suivi/{reference}")

    agent = new_context(java_script_enabled=False).new_page()
    sign_in(agent, "agent_ecully")
    # <details> open without JavaScript too; the checks of axe need JavaScript, hence axe=False.
    agent_works_ticket(agent, reference, axe=False)

    usager.reload()
    assert "Résolu" in usager.locator("dl.summary").inner_text()
    assert RESOLUTION in usager.get_by_role("region", name="Résolution").inner_text()
