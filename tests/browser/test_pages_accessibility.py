"""Accessibility of the public, usager and agent pages (axe-core: WCAG 2.0/2.1 A and AA plus best practices),
keyboard access through the skip link, and the app's strict Content-Security-Policy enforced without any
violation on the same pages (an ordinary context: no CSP bypass)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import AXE_TAGS, format_axe_violations, run_axe, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page

pytestmark = pytest.mark.browser

TOODEGO_PAGE = "https://www.toodego.com/demarches/stationnement"


class AxeSweep:
    """Visits pages and collects every axe violation, so that one run reports all of them."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.failures: list[str] = []
        self.checked: list[str] = []

    def check(self, path: str | None = None, *, status: int = 200, title: str | None = None) -> None:
        if path is not None:
            response = self.page.goto(path)
            assert response is not None and response.status == status, (path, response and response.status)
        if title is not None:
            assert self.page.get_by_role("heading", level=1).inner_text() == title, self.page.url
        violations = run_axe(self.page, tags=AXE_TAGS)
        self.checked.append(self.page.url)
        if violations:
            self.failures.append(format_axe_violations(violations, url=self.page.url))

    def assert_clean(self) -> None:
        assert not self.failures, "\n\n".join(self.failures)


def test_public_pages_have_no_axe_violation(page: Page) -> None:
    sweep = AxeSweep(page)
    sweep.check("/", title="Besoin d'aide avec un service numérique ?")
    sweep.check("/aide", title="Demander de l'aide")
    sweep.check("/aide?service=inconnu", status=404, title="Demander de l'aide")
    sweep.check("/aide?service=toodego&page=" + TOODEGO_PAGE, title="Demande d'aide — Toodego")
    sweep.check("/aide?service=toodego&q=mail", title="Demande d'aide — Toodego")
    sweep.check("/aide?service=laclasse", title="Demande d'aide — laclasse.com")
    sweep.check("/aide?service=geonet", status=422)
    assert "n'est pas couvert par le SAU" in page.get_by_role("heading", level=1).inner_text()
    sweep.check("/faq?service=laclasse", title="Questions fréquentes — laclasse.com")
    assert page.locator(".faq-list summary").count() >= 2
    sweep.check("/faq?service=toodego&q=zzzz")
    assert page.get_by_text("Aucune question ne correspond.").is_visible()
    sweep.check("/auth/dev-login", title="Connexion de démonstration")
    sweep.check("/page-qui-n-existe-pas", status=404, title="Page introuvable")
    sweep.check("/suivi/SAU-2026-999999", status=404, title="Page introuvable")
    sweep.assert_clean()


def test_help_form_with_validation_errors(page: Page) -> None:
    """An empty submission: every error is announced, linked from the summary, and axe stays clean."""
    page.goto("/aide?service=toodego")
    page.get_by_role("button", name="Envoyer ma demande").click()
    page.wait_for_load_state()
    assert page.title().startswith("Erreur — Demande d'aide — Toodego")
    summary = page.locator("#resume-erreurs")
    assert summary.get_attribute("role") == "alert"
    # sau.js moves focus to the summary so that it is read first.
    assert page.evaluate("document.activeElement && document.activeElement.id") == "resume-erreurs"
    links = summary.get_by_role("link")
    assert set(links.all_inner_texts()) >= {
        "Choisissez une catégorie.", "Indiquez l'objet de votre demande.", "Décrivez votre demande.",
    }
    for field_id, message in [("category", "Choisissez une catégorie."),
                              ("subject", "Indiquez l'objet de votre demande."),
                              ("description", "Décrivez votre demande.")]:
        control = page.locator(f"#{field_id}")
        assert control.get_attribute("aria-invalid") == "true"
        assert f"{field_id}-erreur" in (control.get_attribute("aria-describedby") or "").split()
        assert message in page.locator(f"#{field_id}-erreur").inner_text()
    # A summary link moves to its field.
    summary.get_by_role("link", name="Indiquez l'objet de votre demande.").click()
    assert page.url.endswith("#subject")
    screenshot(page, "help-form-errors")
    sweep = AxeSweep(page)
    sweep.check()
    sweep.assert_clean()


def test_usager_and_agent_pages_have_no_axe_violation(
    new_context: Callable[..., BrowserContext], make_request: Any,
) -> None:
    reference = make_request(requester="usager_a", subject="Ma démarche de stationnement est bloquée")
    usager = new_context().new_page()
    sign_in(usager, "usager_a")
    sweep = AxeSweep(usager)
    sweep.check("/mes-demandes", title="Mes demandes")
    assert usager.get_by_role("link", name=reference).is_visible()
    sweep.check(f"/suivi/{reference}", title=f"Demande {reference}")

    agent = new_context().new_page()
    sign_in(agent, "agent_ecully")
    agent_sweep = AxeSweep(agent)
    agent_sweep.check("/agent/", title="File des tickets")
    assert agent.get_by_role("link", name=reference).is_visible()
    agent_sweep.check("/agent/?statut=tous&tri=ancien&priorite=aucune")
    agent_sweep.check(f"/agent/tickets/{reference}", title=f"{reference} — Ma démarche de stationnement est bloquée")
    # Every collapsed action open, so that axe checks all the forms of the page.
    agent.locator("details.action:not([open]) > summary").evaluate_all("els => els.forEach(e => e.click())")
    assert agent.locator("details.action:not([open])").count() == 0
    agent_sweep.check()
    agent_sweep.check("/agent/?statut=clos")  # an empty queue
    assert agent.get_by_text("Aucun ticket ne correspond à ces critères.").is_visible()
    sweep.failures += agent_sweep.failures
    sweep.assert_clean()


def test_skip_link_is_the_first_tab_stop_and_moves_focus_to_main(page: Page) -> None:
    for path in ("/", "/aide?service=toodego"):
        page.goto(path)
        skip = page.get_by_role("link", name="Aller au contenu")
        assert not skip.is_visible() or skip.bounding_box()["x"] < 0  # type: ignore[index]
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.outerHTML")
        assert 'class="skip-link"' in focused, focused
        box = skip.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0, "the skip link must show when focused"
        page.keyboard.press("Enter")
        page.wait_for_url("**#contenu")
        assert page.evaluate("document.activeElement.id") == "contenu"
        assert page.evaluate("document.activeElement.tagName") == "MAIN"
        # The next Tab goes into the content, not back to the header.
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('contenu').contains(document.activeElement)")


def test_csp_is_enforced_without_violation(new_context: Callable[..., BrowserContext], make_request: Any) -> None:
    """In an ordinary context the app's CSP applies: its own scripts run, nothing is refused."""
    reference = make_request(requester="usager_a")
    context = new_context(axe=False)
    page = context.new_page()
    messages: list[str] = []
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            messages.append(f"{page.url}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))

    response = page.goto("/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    # The embed script (served by us) adds its link; the help form's live suggestions fetch JSON.
    page.goto("/demo/service/toodego")
    page.get_by_role("link", name="Besoin d'aide ?").click()
    page.wait_for_url("**/aide?**")
    page.get_by_label("Objet de votre demande").press_sequentially("justificatif", delay=10)
    page.locator("#faq-suggestions").get_by_text("Questions fréquentes liées à votre demande").wait_for()
    page.get_by_role("button", name="Envoyer ma demande").click()  # refused: focus moves to the summary
    page.wait_for_load_state()
    assert page.evaluate("document.activeElement.id") == "resume-erreurs"
    for path in ("/faq?service=toodego", "/aide", "/page-qui-n-existe-pas"):
        page.goto(path)
    sign_in(page, "usager_a")
    for path in ("/mes-demandes", f"/suivi/{reference}"):
        page.goto(path)
    sign_in(page, "agent_ecully")
    for path in ("/agent/", f"/agent/tickets/{reference}"):
        page.goto(path)
    page.wait_for_timeout(200)  # console messages are delivered asynchronously
    assert messages == [], "\n".join(messages)
    assert errors == [], "\n".join(errors)

    # Control: the listener does see a refused inline script.
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.inlineRan = true;'; document.head.appendChild(s); }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.inlineRan === true") is False
    assert any("Content Security Policy" in m for m in messages), "the CSP listener caught nothing"
