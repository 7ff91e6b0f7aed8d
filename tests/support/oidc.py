"""Start and stop the real OpenID Connect provider (`oidc-provider` from npm, tests/support/oidc_provider/)
and drive its own pages over HTTP like a browser would (login form, consent, logout confirmation)."""
from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER = Path(__file__).resolve().parent / "oidc_provider" / "server.mjs"
SAU_BASE = "http://sau.test"  # the test config's PUBLIC_URL: what the clients are registered with

HS256_CLIENT = {"client_id": "sau-usagers-hs256", "client_secret": "hs256-client-secret-0123456789-abcdefghijklmnop"}
RS256_CLIENT = {"client_id": "sau-agents-rs256", "client_secret": "rs256-client-secret-0123456789-abcdefghijklmnop"}

ACCOUNTS = {
    "camille": {"given_name": "Camille", "family_name": "Martin", "email": "camille.oidc@example.org",
                "certified": True},
    "louis": {"given_name": "Louis", "family_name": "Bernard", "email": "louis.oidc@example.org",
              "email_verified": False},
}


def _client(meta: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        **meta,
        "redirect_uris": [f"{SAU_BASE}/auth/callback"],
        "post_logout_redirect_uris": [f"{SAU_BASE}/auth/logged-out"],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        # A back-channel URI that nothing serves: only there so that ID tokens carry `sid`.
        "backchannel_logout_uri": "http://127.0.0.1:9/backchannel-logout",
        "backchannel_logout_session_required": True,
        **extra,
    }


CLIENTS = [
    # Authentic 2's default: HS256 with the client secret, client_secret_basic, public sub.
    _client(HS256_CLIENT, id_token_signed_response_alg="HS256", token_endpoint_auth_method="client_secret_basic"),
    # FranceConnect-v2-like: RS256 through the JWKS, pairwise sub, signed userinfo, client_secret_post.
    _client(RS256_CLIENT, id_token_signed_response_alg="RS256", token_endpoint_auth_method="client_secret_post",
            subject_type="pairwise", userinfo_signed_response_alg="RS256"),
]


class OidcProviderProcess:
    """The provider as a child process on 127.0.0.1 (free port). `issuer` ends with a slash."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.issuer = ""
        self._dir = tempfile.TemporaryDirectory(prefix="sau-oidc-")
        self.stderr_lines: list[str] = []

    def start(self, timeout: float = 60.0) -> str:
        node = shutil.which("node") or "/usr/bin/node"
        if not (ROOT / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("node_modules/oidc-provider is missing: run `npm ci` (make system-deps does it)")
        config = Path(self._dir.name) / "config.json"
        config.write_text(json.dumps({"clients": CLIENTS, "accounts": ACCOUNTS}))
        self.process = subprocess.Popen([node, str(SERVER), str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout],  # type: ignore[union-attr]
                         daemon=True).start()
        threading.Thread(target=lambda: [self.stderr_lines.append(line) for line in self.process.stderr],  # type: ignore[union-attr]
                         daemon=True).start()
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"oidc-provider did not start: {''.join(self.stderr_lines)}") from None
        self.issuer = json.loads(first)["issuer"]
        return self.issuer

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr) if self.process else ():
            if stream:
                stream.close()
        self._dir.cleanup()


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "id": a.get("id", ""), "inputs": {}}
            self.forms.append(self._current)
        elif tag == "input" and a.get("name"):
            target = self._current if self._current is not None else (self.forms[-1] if self.forms else None)
            if target is not None:
                target["inputs"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class ProviderBrowser:
    """A requests session that goes through the provider's pages until it is sent back to SAU."""

    def __init__(self) -> None:
        self.http = requests.Session()
        self.pages: list[str] = []

    def run(self, url: str, login: str | None = None) -> str:
        """Follow redirects and submit the provider's forms; return the first URL that points back to SAU."""
        method, data = "GET", None
        for _ in range(20):
            if url.startswith(SAU_BASE):
                return url
            response = self.http.request(method, url, data=data, allow_redirects=False, timeout=10)
            if response.is_redirect:
                url, method, data = urljoin(url, response.headers["Location"]), "GET", None
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            self.pages.append(response.text)
            found = forms(response.text)
            assert found, f"no form on the provider's page: {response.text[:500]}"
            form = found[0]
            data = dict(form["inputs"])
            if "login" in data:  # the provider's sign-in page
                assert login is not None, "the provider asks to sign in"
                data.update(login=login, password="any password")
            if form["id"] == "op.logoutForm":  # the end-session confirmation: "Yes, sign me out"
                data["logout"] = "yes"
            url, method = urljoin(url, form["action"]), "POST"
        raise AssertionError("too many steps at the provider")
