"""A real SMTP server process with transport security and authentication, for the tests (aiosmtpd).

Usage: python smtp_tls_sink.py PORT DIR MODE CERT KEY USER PASSWORD
MODE is "starttls" (plain connection, STARTTLS required before anything else, then AUTH LOGIN/PLAIN) or "tls"
(implicit TLS, SMTPS: the listening socket is wrapped). Only USER / PASSWORD is accepted, and AUTH is required
before MAIL. Every message received is written to DIR as a .eml file (as smtp_sink.py). Prints "ready".
"""
from __future__ import annotations

import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from smtp_sink import Sink  # the same directory (run as a script)


class OneAccount:
    """An aiosmtpd authenticator accepting one user / password, refusing every other."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (mechanism in ("LOGIN", "PLAIN") and isinstance(auth_data, LoginPassword)
              and auth_data.login == self.user and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


def main() -> None:
    port, directory, mode, cert, key, user, password = sys.argv[1:8]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    common = {"authenticator": OneAccount(user, password), "auth_required": True}
    if mode == "starttls":
        controller = Controller(Sink(directory, 0.0), hostname="127.0.0.1", port=int(port), tls_context=context,
                                require_starttls=True, auth_require_tls=True, **common)
    elif mode == "tls":
        # Implicit TLS: the whole connection is encrypted, so AUTH needs no STARTTLS first.
        controller = Controller(Sink(directory, 0.0), hostname="127.0.0.1", port=int(port), ssl_context=context,
                                auth_require_tls=False, **common)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
