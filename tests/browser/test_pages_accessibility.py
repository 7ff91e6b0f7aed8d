"""Accessibility of the public and agent pages (axe-core, WCAG 2.1 A/AA + best practices), keyboard access
through the skip link, and the app's strict Content-Security-Policy enforced without violations."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import sign_in
from tests.support.browser import AXE_TAGS, format_axe_violations, run_axe

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page

pytestmark = pytest.mark.browser

PUBLIC_PAGES = [
    "/",
    "/aide",
    "/aide?service=toodego",
    "/aide?service=toodego&q=mail&page=https%3A%2F%2Fwww.toodego.com%2Fdemarche",
    "/aide?service=laclasse",
    "/aide?service=geonet",
    "/faq?service=laclasse",
    "/faq?service=toodego&q=mail",
    "/auth/dev-login",
    "/page-qui-n-existe-pas",
]


def axe_check(page: Page, path: str, failures: list[str], *, expected_status: int | None = None) -> None:
    response = page.goto(path)
    assert response is not None
    if expected_status is not None:
        assert response.status == expected_status, (path, response.status)
    violations = run_axe(page, tags=AXE_TAGS)
    if violations:
        failures.append(format_axe_violations(violations, url=page.url))


def test_public_pages_have_no_axe_violation(page: Page) -> None:
    failures: list[str] = []
    for path in PUBLIC_PAGES:
        axe_check(page, path, failures)
    assert not failures, "\n\n".join(failures)
