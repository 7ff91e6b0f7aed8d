"""Sign-in through a real OpenID Connect provider process (the `oidc-provider` package), over HTTP through
its own pages: the HS256 client (GrandLyon Connect's default) and the RS256 client (pairwise sub, signed
userinfo); then sign-out through the provider (RP-initiated)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from flask import Flask

from tests.auth.conftest import local, sign_in, start_login
from tests.conftest import csrf_token
from tests.support.oidc import HS256_CLIENT, RS256_CLIENT, OidcProviderProcess, ProviderBrowser


def _me(client):
    response = client.get("/api/v1/me")
    return response.status_code, response.get_json()


def test_authorization_request_has_pkce_state_nonce_and_minimal_scopes(oidc_app: Flask,
                                                                       oidc_provider: OidcProviderProcess) -> None:
    url, params = start_login(oidc_app.test_client())
    assert url.startswith(oidc_provider.issuer + "idp/oidc/authorize/")
    assert params["client_id"] == HS256_CLIENT["client_id"]
    assert params["response_type"] == "code"
    assert params["scope"] == "openid profile email"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32 and params["state"] != params["nonce"]
    assert params["redirect_uri"] == "http://sau.test/auth/callback"


def test_sign_in_hs256_through_the_provider_pages(oidc_app: Flask, oidc_provider: OidcProviderProcess) -> None:
    client = oidc_app.test_client()
    assert client.get("/api/v1/me").status_code == 401
    browser = ProviderBrowser()
    response = sign_in(client, "camille", browser=browser)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert any('name="login"' in page for page in browser.pages)  # the provider's own sign-in page was used
    status, me = _me(client)
    assert status == 200
    assert me["identities"] == [{"issuer": oidc_provider.issuer, "sub": "camille"}]  # public sub, exact issuer
    assert (me["given_name"], me["family_name"], me["email"]) == ("Camille", "Martin", "camille.oidc@example.org")
    assert me["identity_certified"] is True
    assert me["memberships"] == []

    # Same person again: the same account (keyed by issuer + sub), fields refreshed, no duplicate.
    with oidc_app.app_context():
        from sau.auth.models import Identity
        from sau.extensions import db

        count = db.session.scalar(sa.select(sa.func.count()).select_from(Identity).where(
            Identity.issuer == oidc_provider.issuer))
    again = oidc_app.test_client()
    assert sign_in(again, "camille").status_code == 303
    assert _me(again)[1]["id"] == me["id"]
    with oidc_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Identity).where(
            Identity.issuer == oidc_provider.issuer)) == count


def test_sign_in_rs256_pairwise_signed_userinfo(oidc_app: Flask, oidc_provider: OidcProviderProcess) -> None:
    client = oidc_app.test_client()
    url, params = start_login(client, "?fournisseur=agents")
    assert params["client_id"] == RS256_CLIENT["client_id"]
    back = ProviderBrowser().run(url, login="louis")
    assert client.get(local(back)).status_code == 303
    status, me = _me(client)
    assert status == 200
    [identity] = me["identities"]
    assert identity["issuer"] == oidc_provider.issuer
    assert identity["sub"] != "louis" and len(identity["sub"]) == 64  # pairwise: not the account id
    assert (me["given_name"], me["family_name"], me["email"]) == ("Louis", "Bernard", "louis.oidc@example.org")
    assert me["identity_certified"] is False
    with oidc_app.app_context():
        from sau.auth.models import User
        from sau.extensions import db

        user = db.session.get(User, me["id"])
        assert user.is_email_verified is False


def test_same_email_from_another_subject_is_another_account(oidc_app: Flask) -> None:
    """Never matched by e-mail: a demo account has camille's e-mail? It does not matter; a new (issuer, sub)
    is a new account even with an e-mail already known."""
    with oidc_app.app_context():
        from sau.auth.models import User
        from sau.extensions import db

        existing = db.session.scalar(sa.select(User).where(User.email == "camille.martin@example.org"))
        assert existing is not None
        existing.email = "camille.oidc@example.org"
        db.session.commit()
        existing_id = existing.id
    client = oidc_app.test_client()
    assert sign_in(client, "camille").status_code == 303
    assert _me(client)[1]["id"] != existing_id


def test_sign_out_through_the_provider(oidc_app: Flask, oidc_provider: OidcProviderProcess) -> None:
    client = oidc_app.test_client()
    browser = ProviderBrowser()
    assert sign_in(client, "camille", browser=browser).status_code == 303
    assert _me(client)[0] == 200

    # GET shows a confirmation form and signs no one out.
    page = client.get("/auth/logout")
    assert page.status_code == 200 and "Se déconnecter" in page.get_data(as_text=True)
    assert _me(client)[0] == 200
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/auth/logout")})
    assert response.status_code == 303
    end_session = response.headers["Location"]
    assert end_session.startswith(oidc_provider.issuer + "idp/oidc/logout/")
    params = {k: v[0] for k, v in parse_qs(urlsplit(end_session).query).items()}
    assert params["post_logout_redirect_uri"] == "http://sau.test/auth/logged-out"
    assert params["id_token_hint"].count(".") == 2 and params["state"]
    assert _me(client)[0] == 401  # our session ended at once

    back = browser.run(end_session)  # the provider's confirmation page, then back to us with the state
    assert parse_qs(urlsplit(back).query)["state"] == [params["state"]]
    landing = client.get(local(back), follow_redirects=True)
    assert "ici et auprès de votre fournisseur" in landing.get_data(as_text=True)
    assert _me(client)[0] == 401

    # The provider's session is over too: signing in again shows its login page.
    url, _ = start_login(client)
    again = ProviderBrowser()
    again.http.cookies = browser.http.cookies
    again.run(url, login="camille")
    assert any('name="login"' in page for page in again.pages)


def test_front_channel_logout_ends_the_matching_session(oidc_app: Flask, oidc_provider: OidcProviderProcess) -> None:
    client = oidc_app.test_client()
    assert sign_in(client, "camille").status_code == 303
    with client.session_transaction() as sess:
        id_token = sess["oidc"]["id_token"]
    import base64
    import json

    payload = id_token.split(".")[1]
    sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    other = oidc_app.test_client()
    assert sign_in(other, "louis").status_code == 303

    assert oidc_app.test_client().get(f"/auth/frontchannel-logout?iss=http://evil.example/&sid={sid}").status_code == 400
    assert _me(client)[0] == 200
    # Without a trailing slash the issuer is another one: refused, nothing ended.
    no_slash = oidc_provider.issuer.rstrip("/")
    assert oidc_app.test_client().get(f"/auth/frontchannel-logout?iss={no_slash}&sid={sid}").status_code == 400
    assert _me(client)[0] == 200

    # The provider's frame carries no cookie of ours (SameSite): the session ends server side.
    frame = oidc_app.test_client().get(f"/auth/frontchannel-logout?iss={oidc_provider.issuer}&sid={sid}")
    assert frame.status_code == 200
    assert f"frame-ancestors {oidc_provider.issuer.rstrip('/')}" in frame.headers["Content-Security-Policy"]
    assert _me(client)[0] == 401
    assert _me(other)[0] == 200
