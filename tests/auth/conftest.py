"""Fixtures of the sign-in tests: the real OpenID Connect provider process and the app configured for it."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.oidc import HS256_CLIENT, RS256_CLIENT, SAU_BASE, OidcProviderProcess, ProviderBrowser


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProviderProcess]:
    provider = OidcProviderProcess()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def configure_oidc(app: Flask, usagers_issuer: str, agents_issuer: str | None = None, **overrides: Any) -> None:
    app.config.update(
        OIDC_ISSUER=usagers_issuer, OIDC_CLIENT_ID=HS256_CLIENT["client_id"],
        OIDC_CLIENT_SECRET=HS256_CLIENT["client_secret"], OIDC_ID_TOKEN_ALGS="HS256",
        OIDC_TOKEN_AUTH_METHOD="client_secret_basic",
        OIDC_AGENTS_ISSUER=agents_issuer, OIDC_AGENTS_CLIENT_ID=RS256_CLIENT["client_id"] if agents_issuer else None,
        OIDC_AGENTS_CLIENT_SECRET=RS256_CLIENT["client_secret"], OIDC_AGENTS_ID_TOKEN_ALGS="RS256",
        OIDC_AGENTS_TOKEN_AUTH_METHOD="client_secret_post",
    )
    app.config.update(overrides)
    app.extensions.pop("sau_oidc", None)  # discovery and JWKS caches belong to one configuration


@pytest.fixture()
def oidc_app(app: Flask, oidc_provider: OidcProviderProcess) -> Iterator[Flask]:
    configure_oidc(app, oidc_provider.issuer, oidc_provider.issuer)
    yield app
    app.extensions.pop("sau_oidc", None)


def start_login(client: FlaskClient, query: str = "") -> tuple[str, dict[str, str]]:
    """GET /auth/login: return the provider URL it redirects to and that URL's query parameters."""
    response = client.get("/auth/login" + query)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    url = response.headers["Location"]
    return url, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def local(url: str) -> str:
    assert url.startswith(SAU_BASE), url
    return url[len(SAU_BASE):]


def sign_in(client: FlaskClient, login: str, query: str = "", browser: ProviderBrowser | None = None) -> Any:
    """A whole sign-in through the provider's pages; returns the response to our callback."""
    url, _params = start_login(client, query)
    back = (browser or ProviderBrowser()).run(url, login=login)
    return client.get(local(back))
