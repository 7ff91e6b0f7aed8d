"""Helpers for browser tests: Playwright (Python) driving Debian's Chromium.

    from playwright.sync_api import sync_playwright
    from tests.support.browser import LiveServer, launch_browser, new_axe_context, assert_no_axe_violations

    with LiveServer(wsgi_app) as server, sync_playwright() as pw:
        browser = launch_browser(pw)
        page = new_axe_context(browser).new_page()
        page.goto(server.url + "/")
        assert_no_axe_violations(page)
        screenshot(page, "home")

Notes / gotchas
* Never run ``playwright install``: browsers cannot be downloaded here.  We use
  Debian's ``/usr/bin/chromium`` (``scripts/ensure-system-deps.sh`` installs it;
  override with env ``SAU_CHROMIUM``).
* Chromium runs as root here, hence ``--no-sandbox``; the network is closed, hence
  the flags that stop its background connections (``CHROMIUM_ARGS``).
* axe-core is injected from ``node_modules/axe-core/axe.min.js`` (``npm ci``) with
  ``page.add_script_tag``, which adds an *inline* ``<script>``.  The app sends a
  strict Content-Security-Policy without ``'unsafe-inline'``, which blocks that
  script, so accessibility checks must run in a context created with
  ``bypass_csp=True`` -- use :func:`new_axe_context`.  Such a context does not
  enforce the app's CSP: test the CSP itself in an ordinary context.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from werkzeug.serving import BaseWSGIServer, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

__all__ = [
    "AXE_TAGS",
    "CHROMIUM_ARGS",
    "REPO_ROOT",
    "AxeUnavailableError",
    "LiveServer",
    "assert_no_axe_violations",
    "axe_script_path",
    "chromium_path",
    "format_axe_violations",
    "launch_browser",
    "new_axe_context",
    "run_axe",
    "screenshot",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "var" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


class AxeUnavailableError(RuntimeError):
    """axe-core could not be loaded into the page."""


def chromium_path() -> str:
    return os.environ.get("SAU_CHROMIUM", "/usr/bin/chromium")


def axe_script_path() -> Path:
    return REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"


def launch_browser(playwright: Playwright, **kwargs: Any) -> Browser:
    """Launch headless Debian Chromium through Playwright (extra kwargs go to ``chromium.launch``)."""
    exe = chromium_path()
    if not os.access(exe, os.X_OK):
        raise FileNotFoundError(f"{exe} not found: run `bash scripts/ensure-system-deps.sh` (Debian `chromium`)")
    args = [*CHROMIUM_ARGS, *kwargs.pop("args", [])]
    kwargs.setdefault("headless", True)
    return playwright.chromium.launch(executable_path=exe, args=args, **kwargs)


def new_axe_context(browser: Browser, **kwargs: Any) -> BrowserContext:
    """A browser context in which axe-core can be injected despite the app's strict CSP."""
    kwargs.setdefault("bypass_csp", True)
    return browser.new_context(**kwargs)


def _inject_axe(page: Page) -> None:
    if page.evaluate("typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        return
    path = axe_script_path()
    if not path.is_file():
        raise AxeUnavailableError(f"{path} missing: run `npm ci` (or `bash scripts/ensure-system-deps.sh`)")
    try:
        page.add_script_tag(path=str(path))
    except Exception as exc:  # Playwright raises its own Error when the script is refused
        raise AxeUnavailableError(
            f"could not inject axe-core ({exc}); the page's Content-Security-Policy probably blocked the "
            "inline script: use a context from new_axe_context() (bypass_csp=True)"
        ) from exc
    if not page.evaluate("typeof window.axe === 'object'"):
        raise AxeUnavailableError(
            "axe-core did not load; the page's Content-Security-Policy probably blocked the inline script: "
            "use a context from new_axe_context() (bypass_csp=True)"
        )


def run_axe(
    page: Page,
    *,
    tags: Sequence[str] = AXE_TAGS,
    disabled_rules: Iterable[str] = (),
    context: str | None = None,
) -> list[dict[str, Any]]:
    """Run axe-core on the current page and return its violations (axe's own dicts).

    *context*: optional CSS selector to check only part of the page (default: whole document).
    """
    _inject_axe(page)
    options: dict[str, Any] = {
        "runOnly": {"type": "tag", "values": list(tags)},
        "resultTypes": ["violations"],
        "rules": {rule: {"enabled": False} for rule in disabled_rules},
    }
    violations: list[dict[str, Any]] = page.evaluate(
        """async ([selector, options]) => {
            const ctx = selector === null ? document : selector;
            const results = await window.axe.run(ctx, options);
            return results.violations;
        }""",
        [context, options],
    )
    return violations


def format_axe_violations(violations: Sequence[dict[str, Any]], *, url: str = "") -> str:
    """Readable summary: one block per rule with impact, help text, link and target selectors."""
    lines = [f"{len(violations)} accessibility violation(s){' on ' + url if url else ''}:"]
    for v in violations:
        lines.append(f"- {v.get('id')} [{v.get('impact') or 'n/a'}] {v.get('help')}")
        if v.get("helpUrl"):
            lines.append(f"    {v['helpUrl']}")
        for node in v.get("nodes", [])[:10]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(f"    target: {target}")
            summary = (node.get("failureSummary") or "").strip().replace("\n", " / ")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(v.get("nodes", [])) > 10:
            lines.append(f"    ... and {len(v['nodes']) - 10} more node(s)")
    return "\n".join(lines)


def assert_no_axe_violations(page: Page, **kwargs: Any) -> None:
    """Fail with a readable summary if axe-core finds violations (kwargs go to :func:`run_axe`)."""
    violations = run_axe(page, **kwargs)
    if violations:
        raise AssertionError(format_axe_violations(violations, url=page.url))


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG screenshot under var/screenshots/<name>.png and return its path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "screenshot"
    if not safe.endswith(".png"):
        safe += ".png"
    path = SCREENSHOT_DIR / safe
    page.screenshot(path=str(path), full_page=full_page)
    return path


class LiveServer:
    """Serve a WSGI app on 127.0.0.1 (free port by default) from a background thread (werkzeug, threaded)."""

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("LiveServer not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        if self._server is None:
            self._server = make_server(self.host, self._requested_port, self.app, threaded=True)
            self.port = int(self._server.server_address[1])
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                name=f"LiveServer:{self.port}", daemon=True,
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
