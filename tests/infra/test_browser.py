"""Self-tests of tests/support/browser.py: Debian Chromium via Playwright, LiveServer, axe-core.

Uses a tiny WSGI app of its own (not the project app) that sends a strict CSP, like the app will.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import (
    AxeUnavailableError,
    LiveServer,
    assert_no_axe_violations,
    axe_script_path,
    new_axe_context,
    run_axe,
    screenshot,
)
from tests.support.env import skip_or_fail

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

CSP = "default-src 'self'"

_HEAD = """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header><p class="brand">SAU · Métropole de Lyon</p></header>
<main>
<h1>{title}</h1>
"""
_FOOT = "</main>\n</body>\n</html>\n"

PAGES = {
    "/good": _HEAD.format(title="Page d'essai accessible")
    + "<p>Déclarer un incident, suivre un ticket : « ça marche » — 0123456789.</p>\n"
    + '<p><img src="/logo.svg" alt="Logo du service" width="64" height="64"></p>\n' + _FOOT,
    "/bad": _HEAD.format(title="Page d'essai fautive") + '<p><img src="/logo.svg" width="64" height="64"></p>\n'
    + _FOOT,
    "/inline-script": _HEAD.format(title="Script en ligne")
    + "<script>window.inlineRan = true;</script>\n" + _FOOT,
}
STYLE = """
body { font-family: "DejaVu Sans", sans-serif; margin: 0; color: #1a1a1a; background: #fff; }
header { background: #004b87; color: #fff; padding: 0.75rem 1.5rem; }
.brand { margin: 0; font-weight: bold; }
main { padding: 1.5rem; max-width: 40rem; }
h1 { color: #004b87; }
"""
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<circle cx="32" cy="32" r="30" fill="#e2001a"/></svg>'
)


def tiny_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path in PAGES:
        body, ctype = PAGES[path], "text/html; charset=utf-8"
    elif path == "/style.css":
        body, ctype = STYLE, "text/css; charset=utf-8"
    elif path == "/logo.svg":
        body, ctype = LOGO, "image/svg+xml"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Security-Policy", CSP)])
        return [b"not found"]
    data = body.encode()
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(data))),
                              ("Content-Security-Policy", CSP)])
    return [data]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer(tiny_app) as live:
        yield live


@pytest.fixture()
def need_axe() -> None:
    if not axe_script_path().is_file():
        skip_or_fail(f"{axe_script_path()} not found (npm ci)")


def test_live_server_serves_with_csp_and_stops() -> None:
    live = LiveServer(tiny_app)
    url = live.start()
    assert url.startswith("http://127.0.0.1:") and live.port > 0
    with urllib.request.urlopen(url + "/good", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Security-Policy"] == CSP
        assert b"<h1>" in resp.read()
    live.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/good", timeout=5).close()


def test_page_renders_and_screenshot(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 800, "height": 450})
    try:
        page = context.new_page()
        page.goto(server.url + "/good")
        assert page.title() == "Page d'essai accessible"
        # The stylesheet from 'self' is allowed by the CSP and applied.
        assert page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor") == "rgb(0, 75, 135)"
        path = screenshot(page, "infra-good-page")
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 2000
    finally:
        context.close()


def test_csp_is_enforced_and_axe_needs_bypass(browser: Browser, server: LiveServer, need_axe: None) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + "/inline-script")
        assert page.evaluate("window.inlineRan === true") is False, "CSP should block inline scripts"
        with pytest.raises(AxeUnavailableError, match="bypass_csp"):
            run_axe(page)
    finally:
        context.close()


def test_axe_finds_no_violation_on_good_page(browser: Browser, server: LiveServer, need_axe: None) -> None:
    context = new_axe_context(browser)
    try:
        page = context.new_page()
        page.goto(server.url + "/good")
        assert run_axe(page) == []
        assert_no_axe_violations(page)
    finally:
        context.close()


def test_axe_detects_missing_alt(browser: Browser, server: LiveServer, need_axe: None) -> None:
    context = new_axe_context(browser)
    try:
        page = context.new_page()
        page.goto(server.url + "/bad")
        violations: list[dict[str, Any]] = run_axe(page)
        assert [v["id"] for v in violations] == ["image-alt"]
        with pytest.raises(AssertionError) as excinfo:
            assert_no_axe_violations(page)
        message = str(excinfo.value)
        assert "1 accessibility violation(s) on " + server.url + "/bad" in message
        assert "image-alt [critical]" in message
        assert "target: img" in message
        # A rule can be switched off explicitly.
        assert_no_axe_violations(page, disabled_rules=["image-alt"])
    finally:
        context.close()
