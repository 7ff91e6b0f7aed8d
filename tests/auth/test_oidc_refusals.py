"""Each of these sign-ins is refused with a clear French message and opens no session. State and code cases
go through the real provider process; token-content cases use ID tokens crafted here and served by a tiny
local token endpoint (tests/auth/fake_provider.py)."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from tests.auth.conftest import configure_oidc, local, start_login
from tests.auth.fake_provider import FakeProvider
from tests.support.oidc import HS256_CLIENT, RS256_CLIENT, OidcProviderProcess, ProviderBrowser


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _identities(app: Flask) -> int:
    from sau.auth.models import Identity
    from sau.extensions import db

    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Identity)) or 0)


def assert_refused(app: Flask, client: FlaskClient, response: Any, status: int, words: str, before: int) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:800]
    assert "Connexion impossible" in html and words in html, html[:2000]
    assert client.get("/api/v1/me").status_code == 401
    with client.session_transaction() as sess:
        assert "_user_id" not in sess and "oidc_flow" not in sess
    assert _identities(app) == before


# --- through the real provider -------------------------------------------------------------------------

def test_state_mismatch(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    before = _identities(oidc_app)
    url, params = start_login(client)
    back = ProviderBrowser().run(url, login="camille")
    tampered = local(back).replace(params["state"], "etat-fabrique-par-un-attaquant")
    assert tampered != local(back)
    assert_refused(oidc_app, client, client.get(tampered), 400, "state invalide", before)
    # The flow is single use: the genuine response, now, is refused too.
    assert_refused(oidc_app, client, client.get(local(back)), 400, "Aucune connexion", before)


def test_callback_without_a_flow_in_progress(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    before = _identities(oidc_app)
    assert_refused(oidc_app, client, client.get("/auth/callback?code=abc&state=def"), 400, "Aucune connexion", before)


def test_replayed_code(oidc_app: Flask) -> None:
    first = oidc_app.test_client()
    url, _ = start_login(first)
    back = ProviderBrowser().run(url, login="camille")
    assert first.get(local(back)).status_code == 303
    code = parse_qs(urlsplit(back).query)["code"][0]
    before = _identities(oidc_app)

    # An attacker replays the code in a flow of their own (their own state): the provider refuses the code.
    attacker = oidc_app.test_client()
    _url, params = start_login(attacker)
    query = urlencode({"code": code, "state": params["state"], "iss": parse_qs(urlsplit(back).query)["iss"][0]})
    assert_refused(oidc_app, attacker, attacker.get(f"/auth/callback?{query}"), 401, "déjà utilisé", before)


def test_error_returned_by_the_provider(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    before = _identities(oidc_app)
    _url, params = start_login(client)
    response = client.get(f"/auth/callback?error=access_denied&state={params['state']}")
    assert_refused(oidc_app, client, response, 401, "refusé la connexion", before)


def test_response_from_another_provider_is_refused(oidc_app: Flask, oidc_provider: OidcProviderProcess) -> None:
    client = oidc_app.test_client()
    before = _identities(oidc_app)
    url, _params = start_login(client)
    back = ProviderBrowser().run(url, login="camille")
    mixed = local(back).replace("iss=", "iss=http%3A%2F%2Fevil.example%2F&x=")
    assert_refused(oidc_app, client, client.get(mixed), 400, "autre fournisseur", before)


# --- crafted ID tokens -----------------------------------------------------------------------------------

@pytest.fixture()
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider().start()
    yield provider
    provider.stop()


RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
RSA_KEY_2 = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig", "alg": "RS256"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
HS_KEY = OctKey.import_key(HS256_CLIENT["client_secret"].encode())


@pytest.fixture()
def fake_app(app: Flask, fake: FakeProvider) -> Iterator[Flask]:
    configure_oidc(app, fake.issuer, fake.issuer, OIDC_AGENTS_ID_TOKEN_ALGS="RS256,ES256")
    fake.jwks = {"keys": [RSA_KEY.as_dict(private=False), EC_KEY.as_dict(private=False)]}
    yield app
    app.extensions.pop("sau_oidc", None)


def _claims(fake: FakeProvider, params: dict[str, str], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": fake.issuer, "sub": "usager-42", "aud": params["client_id"], "exp": now + 300, "iat": now,
              "nonce": params["nonce"], "given_name": "Ada", "family_name": "Lovelace"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _run(client: FlaskClient, fake: FakeProvider, make_token: Any, query: str = "") -> Any:
    _url, params = start_login(client, query)
    fake.id_token = make_token(params)
    fake.userinfo = {"sub": json.loads(base64.urlsafe_b64decode(fake.id_token.split(".")[1] + "=="))["sub"]}
    return client.get(f"/auth/callback?code=code-1&state={params['state']}")


def _hs(fake: FakeProvider, **changes: Any) -> Any:
    return lambda params: jwt.encode({"alg": "HS256"}, _claims(fake, params, **changes), HS_KEY)


def _rs(fake: FakeProvider, key: RSAKey = RSA_KEY, **changes: Any) -> Any:
    return lambda params: jwt.encode({"alg": "RS256", "kid": key.kid}, _claims(fake, params, **changes), key)


def test_crafted_valid_tokens_are_accepted(fake_app: Flask, fake: FakeProvider) -> None:
    """The harness itself: a well-formed token is accepted (HS256, RS256 and ES256), so the refusals below
    are refusals of one defect each."""
    for query, make in (("", _hs(fake)), ("?fournisseur=agents", _rs(fake)),
                        ("?fournisseur=agents", lambda p: jwt.encode({"alg": "ES256", "kid": "ec-1"},
                                                                     _claims(fake, p), EC_KEY))):
        client = fake_app.test_client()
        assert _run(client, fake, make, query).status_code == 303
        assert client.get("/api/v1/me").get_json()["family_name"] == "Lovelace"
    assert "code_verifier=" in fake.token_requests[0]


def _tampered_payload(fake: FakeProvider) -> Any:
    """A genuine HS256 token whose payload is swapped (sub: admin), signature kept."""
    def make(params: dict[str, str]) -> str:
        header, _payload, signature = _hs(fake)(params).split(".")
        return ".".join([header, _b64(_claims(fake, params, sub="admin")), signature])

    return make


def _tampered_signature(fake: FakeProvider) -> Any:
    """A genuine RS256 token with its signature's last bytes changed."""
    def make(params: dict[str, str]) -> str:
        token = _rs(fake)(params)
        return token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")

    return make


CASES = {
    "nonce mismatch": (lambda f: _hs(f, nonce="un-autre-nonce"), "", "nonce invalide"),
    "wrong issuer (no trailing slash)": (lambda f: _hs(f, iss=f.issuer.rstrip("/")), "", "autre émetteur"),
    "wrong issuer": (lambda f: _hs(f, iss="https://moncompte.example/"), "", "autre émetteur"),
    "wrong audience": (lambda f: _hs(f, aud="un-autre-client"), "", "audience"),
    "azp of another client": (lambda f: _hs(f, aud=[HS256_CLIENT["client_id"], "x"], azp="x"), "", "azp"),
    "expired": (lambda f: _hs(f, exp=int(time.time()) - 3600, iat=int(time.time()) - 4000), "", "expiré"),
    "issued in the future": (lambda f: _hs(f, iat=int(time.time()) + 3600), "", "futur"),
    "no nonce": (lambda f: _hs(f, nonce=None), "", "nonce invalide"),
    "alg none": (lambda f: lambda p: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(f, p))}.", "",
                 "alg « none »"),
    "RS256 where only HS256 is allowed": (lambda f: _rs(f), "", "algorithme non autorisé"),
    "HS256 with the client secret where only RS256/ES256 are allowed":
        (lambda f: lambda p: jwt.encode({"alg": "HS256"}, _claims(f, p),
                                        OctKey.import_key(RS256_CLIENT["client_secret"].encode())),
         "?fournisseur=agents", "algorithme non autorisé"),
    "HS512 not in the list": (lambda f: lambda p: jwt.encode({"alg": "HS512"}, _claims(f, p), HS_KEY, algorithms=["HS512"]), "",
                              "algorithme non autorisé"),
    "tampered payload": (lambda f: _tampered_payload(f), "", "signature"),
    "signed with another secret": (lambda f: lambda p: jwt.encode(
        {"alg": "HS256"}, _claims(f, p), OctKey.import_key(b"not-the-client-secret-0123456789abcdef")), "",
        "signature"),
    "tampered RS256 signature": (lambda f: _tampered_signature(f), "?fournisseur=agents", "signature"),
    "RS256 with a key the provider never published": (
        lambda f: _rs(f, RSAKey.generate_key(2048, parameters={"kid": "rsa-unknown"})), "?fournisseur=agents",
        "clé inconnue"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_token_is_refused(fake_app: Flask, fake: FakeProvider, case: str) -> None:
    make, query, words = CASES[case]
    client = fake_app.test_client()
    before = _identities(fake_app)
    assert_refused(fake_app, client, _run(client, fake, make(fake), query), 401, words, before)


def test_userinfo_of_another_subject_is_refused(fake_app: Flask, fake: FakeProvider) -> None:
    client = fake_app.test_client()
    before = _identities(fake_app)
    _url, params = start_login(client)
    fake.id_token = _hs(fake)(params)
    fake.userinfo = {"sub": "quelqu-un-d-autre", "given_name": "Mallory"}
    response = client.get(f"/auth/callback?code=c&state={params['state']}")
    assert_refused(fake_app, client, response, 401, "ne correspond pas", before)


def test_signed_userinfo_with_a_bad_signature_is_refused(fake_app: Flask, fake: FakeProvider) -> None:
    client = fake_app.test_client()
    before = _identities(fake_app)
    _url, params = start_login(client, "?fournisseur=agents")
    fake.id_token = _rs(fake)(params)
    forged = jwt.encode({"alg": "RS256", "kid": "rsa-1"}, {"sub": "usager-42", "iss": fake.issuer},
                        RSAKey.generate_key(2048))
    fake.userinfo = forged
    response = client.get(f"/auth/callback?code=c&state={params['state']}")
    assert_refused(fake_app, client, response, 401, "signature", before)


def test_key_rotation_refetches_the_jwks_once(fake_app: Flask, fake: FakeProvider) -> None:
    client = fake_app.test_client()
    assert _run(client, fake, _rs(fake), "?fournisseur=agents").status_code == 303
    assert fake.jwks_fetches == 1
    # The provider rotates its keys: a token signed with the new key makes us refetch the JWKS, once.
    fake.jwks = {"keys": [RSA_KEY.as_dict(private=False), RSA_KEY_2.as_dict(private=False)]}
    client = fake_app.test_client()
    assert _run(client, fake, _rs(fake, RSA_KEY_2), "?fournisseur=agents").status_code == 303
    assert fake.jwks_fetches == 2
    assert client.get("/api/v1/me").status_code == 200
    # Known keys come from the cache.
    assert _run(fake_app.test_client(), fake, _rs(fake, RSA_KEY_2), "?fournisseur=agents").status_code == 303
    assert fake.jwks_fetches == 2
