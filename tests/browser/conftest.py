"""Fixtures of the browser tests: the session app served by a LiveServer, headless Chromium, a fresh
context per test, sign-in through the real demo login page.

The app fixture (tests/conftest.py) gives a fresh file SQLite database with demo data and the frozen
clock; the LiveServer serves it from a thread, which a file database allows.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from tests.conftest import db_kind
from tests.support.browser import (
    LiveServer,
    assert_no_axe_violations,
    new_axe_context,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

# Playwright's default 30 s would only make a hanging test slow to fail: the server is local.
TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1280, "height": 900}

DEMO_NAMES = {
    "usager_a": "Camille Martin",
    "usager_b": "Louis Bernard",
    "agent_metropole": "Alice Dupont",
    "agent_ecully": "Étienne Roux",
    "referent_ecully": "Rémi Leroy",
    "manager_metropole": "Manon Girard",
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The LiveServer's threads share the test database, a SQLite file: the Makefile runs these tests on
    SQLite only. Skipped here, before any fixture, so that no PostgreSQL cluster is started for nothing."""
    if db_kind() != "sqlite":
        pytest.skip("browser tests run on SQLite only")


@pytest.fixture()
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The session app served over HTTP; links sent outside the app (the embed script) point to it."""
    with LiveServer(app) as server:
        app.config["PUBLIC_URL"] = server.url  # restored by the app fixture
        yield server


@pytest.fixture()
def base_url(live_server: LiveServer) -> str:
    return live_server.url


@pytest.fixture()
def new_context(browser: Browser, base_url: str) -> Iterator[Callable[..., BrowserContext]]:
    """Factory of browser contexts (separate cookie jars), closed at the end of the test.

    By default an axe context (CSP bypassed so that axe-core can be injected); ``axe=False`` gives an
    ordinary context in which the app's CSP is enforced."""
    contexts: list[BrowserContext] = []

    def _new(*, axe: bool = True, **kwargs: Any) -> BrowserContext:
        kwargs.setdefault("base_url", base_url)
        kwargs.setdefault("viewport", VIEWPORT)
        kwargs.setdefault("locale", "fr-FR")
        context = new_axe_context(browser, **kwargs) if axe else browser.new_context(**kwargs)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield _new
    for context in contexts:
        context.close()


@pytest.fixture()
def page(new_context: Callable[..., BrowserContext]) -> Page:
    """A page in a fresh axe context."""
    return new_context().new_page()


def sign_in(page: Page, role: str, *, check_axe: bool = False) -> None:
    """Sign in through the real demo login page by choosing the account of `role` in the select."""
    page.goto("/auth/dev-login")
    if check_axe:
        assert_no_axe_violations(page)
    select = page.get_by_label("Compte de démonstration")
    name = DEMO_NAMES[role]
    label = next(o for o in select.locator("option").all_inner_texts() if o.startswith(name + " ("))
    select.select_option(label=label)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(lambda url: "/auth/dev-login" not in url)
    assert page.get_by_text(f"Vous êtes connecté en tant que {name}.").is_visible()
