"""A tiny local provider that serves ID tokens crafted by the test, ONLY for the refusal cases whose token
content a real provider would never produce (wrong issuer, alg none, tampered signature…). Every positive
flow uses the real oidc-provider process."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeProvider:
    def __init__(self) -> None:
        self.id_token = ""
        self.jwks: dict[str, Any] = {"keys": []}
        self.userinfo: dict[str, Any] | str = {}
        self.jwks_fetches = 0
        self.token_requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: str, content_type: str = "application/json") -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    base = owner.issuer
                    self._send(json.dumps({
                        "issuer": base, "authorization_endpoint": base + "idp/oidc/authorize/",
                        "token_endpoint": base + "idp/oidc/token/", "userinfo_endpoint": base + "idp/oidc/user_info/",
                        "jwks_uri": base + "idp/oidc/certs/", "end_session_endpoint": base + "idp/oidc/logout/",
                    }))
                elif self.path == "/idp/oidc/certs/":
                    owner.jwks_fetches += 1
                    self._send(json.dumps(owner.jwks))
                elif self.path == "/idp/oidc/user_info/":
                    if isinstance(owner.userinfo, str):
                        self._send(owner.userinfo, "application/jwt")
                    else:
                        self._send(json.dumps(owner.userinfo))
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.token_requests.append(self.rfile.read(length).decode())
                self._send(json.dumps({"access_token": "access-token", "token_type": "Bearer",
                                       "expires_in": 60, "id_token": owner.id_token}))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
