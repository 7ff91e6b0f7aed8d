"""OpenID Connect relying party (Authlib for the OAuth 2 exchange, joserfc for the tokens).

Written for GrandLyon Connect (Authentic 2) and FranceConnect-style providers (DESIGN.md, "Authentication"):
- discovery at `<issuer>/.well-known/openid-configuration`; the discovered `issuer` must be *exactly* the
  configured one (it ends with a slash at GrandLyon Connect) and every ID token's `iss` exactly that: never
  normalised;
- authorization code flow with `state`, `nonce` and PKCE S256, all three kept in the session and used once;
- ID tokens signed HS256 with the client secret (Authentic 2's default) or RS256/ES256 through the JWKS
  (refetched once when an unknown `kid` shows up: key rotation); only the algorithms configured for the
  provider are accepted, never `none`;
- userinfo as JSON or as a signed JWT (`application/jwt`);
- `sub` may be pairwise: users are keyed by (issuer, sub) by the caller, never by e-mail.

Every failure raises `OidcError` with a French message for the error page; nothing is signed in then.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, current_app, session
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

import config as sau_config

FLOW_KEY = "oidc_flow"
FLOW_MAX_AGE_SECONDS = 600
DISCOVERY_TTL_SECONDS = 3600
PROVIDER_PREFIXES = {"usagers": "OIDC_", "agents": "OIDC_AGENTS_"}


class OidcError(Exception):
    """A refused sign-in. `message` is French and safe to show; `status` is 400 or 401."""

    def __init__(self, message: str, status: int = 401, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    issuer: str
    client_id: str
    client_secret: str
    id_token_algs: tuple[str, ...]
    token_auth_method: str
    scopes: str


@dataclass
class _ProviderState:
    metadata: dict[str, Any]
    fetched_at: float
    jwks: KeySet | None = None
    jwks_fetched_at: float = 0.0


@dataclass
class SignIn:
    """The outcome of a successful callback."""

    provider: Provider
    claims: dict[str, Any]
    id_token: str
    next: str | None
    sid: str | None = None
    raw_userinfo: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])


def providers(app: Flask | None = None) -> dict[str, Provider]:
    """The configured providers by name (`usagers` from OIDC_*, `agents` from OIDC_AGENTS_*)."""
    cfg = (app or current_app).config
    found: dict[str, Provider] = {}
    for name, prefix in PROVIDER_PREFIXES.items():
        issuer, client_id = cfg.get(f"{prefix}ISSUER"), cfg.get(f"{prefix}CLIENT_ID")
        if not (issuer and client_id):
            continue
        algs = tuple(a.strip() for a in str(cfg.get(f"{prefix}ID_TOKEN_ALGS") or "").split(",") if a.strip())
        found[name] = Provider(
            name=name,
            label=str(cfg.get(f"{prefix}LABEL") or name),
            issuer=str(issuer),
            client_id=str(client_id),
            client_secret=str(cfg.get(f"{prefix}CLIENT_SECRET") or ""),
            id_token_algs=tuple(a for a in algs if a in sau_config.OIDC_ALLOWED_ALGS),
            token_auth_method=str(cfg.get(f"{prefix}TOKEN_AUTH_METHOD") or "client_secret_basic"),
            scopes=str(cfg.get("OIDC_SCOPES") or "openid profile email"),
        )
    return found


def provider_by_issuer(issuer: str) -> Provider | None:
    return next((p for p in providers().values() if p.issuer == issuer), None)


def _states() -> dict[str, _ProviderState]:
    return current_app.extensions.setdefault("sau_oidc", {})  # type: ignore[no-any-return]


def _http_get(url: str) -> requests.Response:
    try:
        response = requests.get(url, timeout=current_app.config["OIDC_HTTP_TIMEOUT"])
    except requests.RequestException as exc:
        raise OidcError("Le fournisseur d'identité est injoignable : merci de réessayer dans un instant.", 503,
                        str(exc)) from None
    if response.status_code != 200:
        raise OidcError("Le fournisseur d'identité a répondu par une erreur : merci de réessayer plus tard.", 503,
                        f"GET {url} -> {response.status_code}")
    return response


def metadata(provider: Provider, *, refresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document (cached). Raises OidcError if it cannot be fetched or its issuer
    is not exactly the configured one."""
    state = _states().get(provider.name)
    if state is not None and not refresh and time.time() - state.fetched_at < DISCOVERY_TTL_SECONDS:
        return state.metadata
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        document = _http_get(url).json()
    except ValueError:
        raise OidcError("Le fournisseur d'identité a renvoyé une configuration illisible.", 503) from None
    if not isinstance(document, dict) or document.get("issuer") != provider.issuer:
        raise OidcError("La configuration du fournisseur d'identité ne correspond pas à l'émetteur attendu.", 503,
                        f"discovered issuer {document.get('issuer')!r} != {provider.issuer!r}")
    _states()[provider.name] = _ProviderState(metadata=document, fetched_at=time.time())
    return document


def _jwks(provider: Provider, *, refresh: bool = False) -> KeySet:
    meta = metadata(provider)
    state = _states()[provider.name]
    if state.jwks is None or refresh:
        uri = meta.get("jwks_uri")
        if not uri:
            raise OidcError("Le fournisseur d'identité ne publie pas ses clés de signature.", 503)
        try:
            state.jwks = KeySet.import_key_set(_http_get(uri).json())
        except (ValueError, JoseError) as exc:
            raise OidcError("Les clés de signature du fournisseur d'identité sont illisibles.", 503, str(exc)) from None
        state.jwks_fetched_at = time.time()
    return state.jwks


def _client(provider: Provider, **kwargs: Any) -> OAuth2Session:
    return OAuth2Session(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scopes,
        token_endpoint_auth_method=provider.token_auth_method,
        code_challenge_method="S256",
        **kwargs,
    )


def begin(provider: Provider, redirect_uri: str, next_url: str | None) -> str:
    """Start the authorization code flow: remember state, nonce and PKCE verifier in the session (one
    flow at a time) and return the provider's authorization URL."""
    meta = metadata(provider)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    session[FLOW_KEY] = {
        "provider": provider.name, "state": state, "nonce": nonce, "verifier": verifier,
        "redirect_uri": redirect_uri, "next": next_url, "started_at": int(time.time()),
    }
    client = _client(provider, redirect_uri=redirect_uri)
    url, _state = client.create_authorization_url(
        meta["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier,
    )
    return str(url)


def complete(args: dict[str, str]) -> SignIn:
    """Finish the flow from the callback's query parameters. Raises OidcError (nothing signed in)."""
    flow = session.pop(FLOW_KEY, None)  # single use, whatever happens next
    if "error" in args:
        description = args.get("error_description") or args["error"]
        raise OidcError(f"Le fournisseur d'identité a refusé la connexion ({description}).", 401)
    if not isinstance(flow, dict):
        raise OidcError("Aucune connexion n'est en cours dans ce navigateur (lien déjà utilisé ou expiré) : "
                        "recommencez la connexion.", 400)
    state = args.get("state") or ""
    if not hmac.compare_digest(state.encode(), str(flow["state"]).encode()):
        raise OidcError("La réponse du fournisseur d'identité ne correspond pas à la connexion en cours "
                        "(paramètre state invalide) : recommencez la connexion.", 400)
    if time.time() - int(flow["started_at"]) > FLOW_MAX_AGE_SECONDS:
        raise OidcError("La connexion a pris trop de temps : recommencez.", 400)
    provider = providers().get(str(flow["provider"]))
    if provider is None:
        raise OidcError("Fournisseur d'identité inconnu.", 400)
    meta = metadata(provider)
    # RFC 9207: when the provider names itself in the response, it must be the one we sent the user to.
    if "iss" in args and args["iss"] != provider.issuer:
        raise OidcError("La réponse provient d'un autre fournisseur d'identité que celui attendu.", 400)
    code = args.get("code")
    if not code:
        raise OidcError("La réponse du fournisseur d'identité ne contient pas de code d'autorisation.", 400)

    client = _client(provider, redirect_uri=flow["redirect_uri"])
    try:
        token = client.fetch_token(
            meta["token_endpoint"], grant_type="authorization_code", code=code, code_verifier=flow["verifier"],
            timeout=current_app.config["OIDC_HTTP_TIMEOUT"],
        )
    except requests.RequestException as exc:
        raise OidcError("Le fournisseur d'identité est injoignable : merci de réessayer dans un instant.", 503,
                        str(exc)) from None
    except (AuthlibBaseError, ValueError, KeyError) as exc:  # the provider refused the code (or answered junk)
        raise OidcError("Le code d'autorisation a été refusé par le fournisseur d'identité (déjà utilisé ou "
                        "expiré) : recommencez la connexion.", 401, repr(exc)) from None
    id_token = token.get("id_token")
    if not id_token:
        raise OidcError("Le fournisseur d'identité n'a pas renvoyé de jeton d'identité.", 401)
    claims = validate_id_token(provider, str(id_token), nonce=str(flow["nonce"]))
    userinfo: dict[str, Any] = {}
    if meta.get("userinfo_endpoint") and token.get("access_token"):
        userinfo = fetch_userinfo(provider, str(token["access_token"]), subject=str(claims["sub"]))
    merged = {**claims, **userinfo}
    return SignIn(provider=provider, claims=merged, id_token=str(id_token), next=flow.get("next"),
                  sid=claims.get("sid"), raw_userinfo=userinfo)


def _verify_signature(provider: Provider, token: str, what: str) -> dict[str, Any]:
    """Check the algorithm against the provider's list and the signature; return the payload."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeEncodeError):
        raise OidcError(f"Le {what} reçu est illisible.", 401) from None
    alg = compact.headers().get("alg")
    if not alg or str(alg).lower() == "none":
        raise OidcError(f"Le {what} n'est pas signé (alg « none ») : refusé.", 401)
    if alg not in provider.id_token_algs:
        raise OidcError(f"Le {what} est signé avec un algorithme non autorisé pour ce fournisseur ({alg}).", 401)
    kid = compact.headers().get("kid")
    if alg.startswith("HS"):
        if not provider.client_secret:
            raise OidcError(f"Le {what} est signé avec un secret que ce client ne possède pas.", 401)
        keys: Any = OctKey.import_key(provider.client_secret.encode("utf-8"))
    else:
        keys = _jwks(provider)
        if kid and not any(k.kid == kid for k in keys.keys):
            keys = _jwks(provider, refresh=True)  # key rotation: refetch once
            if not any(k.kid == kid for k in keys.keys):
                raise OidcError(f"Le {what} est signé avec une clé inconnue du fournisseur.", 401)
        if not kid:
            family = {"RS": RSAKey, "PS": RSAKey, "ES": ECKey}[alg[:2]]
            candidates = [k for k in keys.keys if isinstance(k, family)]
            if len(candidates) != 1:
                raise OidcError(f"Le {what} ne désigne pas sa clé de signature.", 401)
            keys = candidates[0]
    try:
        decoded = jwt.decode(token, keys, algorithms=[alg])
    except JoseError as exc:
        raise OidcError(f"La signature du {what} est invalide.", 401, repr(exc)) from None
    return dict(decoded.claims)


def validate_id_token(provider: Provider, token: str, *, nonce: str) -> dict[str, Any]:
    """Validate an ID token (signature, iss, aud, azp, exp, iat, nonce); return its claims.
    Raises OidcError."""
    claims = _verify_signature(provider, token, "jeton d'identité")
    leeway = current_app.config["OIDC_LEEWAY_SECONDS"]
    # Real time, not the application's (possibly frozen) clock: the provider signs with its own clock.
    now = time.time()
    if claims.get("iss") != metadata(provider)["issuer"]:
        raise OidcError("Le jeton d'identité provient d'un autre émetteur que le fournisseur attendu.", 401)
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if provider.client_id not in audiences:
        raise OidcError("Le jeton d'identité n'est pas destiné à ce service (audience).", 401)
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
        raise OidcError("Le jeton d'identité a été délivré à un autre client (azp).", 401)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
        raise OidcError("Le jeton d'identité n'a pas de dates de validité.", 401)
    if exp + leeway < now:
        raise OidcError("Le jeton d'identité a expiré : recommencez la connexion.", 401)
    if iat - leeway > now:
        raise OidcError("Le jeton d'identité est daté du futur : vérifiez l'horloge du serveur.", 401)
    received_nonce = claims.get("nonce")
    if not isinstance(received_nonce, str) or not hmac.compare_digest(received_nonce.encode(), nonce.encode()):
        raise OidcError("Le jeton d'identité ne correspond pas à la connexion en cours (nonce invalide).", 401)
    if not claims.get("sub") or not isinstance(claims["sub"], str):
        raise OidcError("Le jeton d'identité ne désigne pas d'utilisateur (sub).", 401)
    return claims


def fetch_userinfo(provider: Provider, access_token: str, *, subject: str) -> dict[str, Any]:
    """Userinfo as JSON or as a signed JWT; its `sub` must be the ID token's. Raises OidcError."""
    url = metadata(provider)["userinfo_endpoint"]
    try:
        response = requests.get(url, headers={"Authorization": f"Bearer {access_token}"},
                                timeout=current_app.config["OIDC_HTTP_TIMEOUT"])
    except requests.RequestException as exc:
        raise OidcError("Le fournisseur d'identité est injoignable : merci de réessayer dans un instant.", 503,
                        str(exc)) from None
    if response.status_code != 200:
        raise OidcError("Le fournisseur d'identité a refusé de communiquer votre profil.", 401,
                        f"userinfo -> {response.status_code}")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/jwt":
        claims = _verify_signature(provider, response.text.strip(), "profil signé")
        if "iss" in claims and claims["iss"] != metadata(provider)["issuer"]:
            raise OidcError("Le profil signé provient d'un autre émetteur.", 401)
        if "aud" in claims:
            aud = claims["aud"]
            if provider.client_id not in ([aud] if isinstance(aud, str) else list(aud)):
                raise OidcError("Le profil signé n'est pas destiné à ce service.", 401)
    else:
        try:
            claims = response.json()
        except ValueError:
            raise OidcError("Le profil renvoyé par le fournisseur d'identité est illisible.", 401) from None
        if not isinstance(claims, dict):
            raise OidcError("Le profil renvoyé par le fournisseur d'identité est illisible.", 401)
    if claims.get("sub") != subject:
        raise OidcError("Le profil renvoyé ne correspond pas à l'utilisateur connecté.", 401)
    return claims


def logout_url(provider: Provider, id_token: str | None, post_logout_redirect_uri: str, state: str) -> str | None:
    """The provider's end-session URL (RP-initiated logout), or None if it has none."""
    try:
        endpoint = metadata(provider).get("end_session_endpoint")
    except OidcError:
        return None
    if not endpoint:
        return None
    params = {"post_logout_redirect_uri": post_logout_redirect_uri, "state": state, "client_id": provider.client_id}
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


def certified(claims: dict[str, Any]) -> bool:
    """The "identité certifiée FranceConnect" mark: some attribute came certified (`<claim>_verified: true`,
    `email_verified` aside, which only says the address was checked)."""
    return any(key.endswith("_verified") and key != "email_verified" and value is True for key, value in claims.items())
