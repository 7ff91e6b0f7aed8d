"""SMTP transport security against a real aiosmtpd process: STARTTLS with AUTH, implicit TLS (SMTPS), a wrong
password (retried, then dead-lettered, nothing lost) and a server certificate from an unknown CA (refused).

A throwaway CA and a server certificate for 127.0.0.1 / localhost are generated per test session; the app
trusts that CA through SMTP_CA_FILE and always verifies the certificate and the host name."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.notifications.conftest import HERE, SmtpSink, dispatch, free_port, notifications

USER, PASSWORD = "sau-relay", "correct horse battery staple"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path, cn: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                     name: str) -> tuple[Path, Path]:
    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trusted CA and its server certificate; a rogue CA (not trusted) and its own server certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ca_file, ca_key, ca_cert = make_ca(directory, "sau-test-ca")
    cert, key = make_server_cert(directory, ca_key, ca_cert, "server")
    _, rogue_key, rogue_cert = make_ca(directory, "rogue-ca")
    rogue_cert_path, rogue_key_path = make_server_cert(directory, rogue_key, rogue_cert, "rogue")
    return {"ca": ca_file, "cert": cert, "key": key, "rogue_cert": rogue_cert_path, "rogue_key": rogue_key_path}


class SecureSmtpSink(SmtpSink):
    def __init__(self, directory: Path, mode: str, cert: Path, key: Path) -> None:
        self.mode = mode
        self.port = free_port()
        self.directory = directory
        self.args = [str(HERE / "smtp_tls_sink.py"), str(self.port), str(directory), mode, str(cert), str(key),
                     USER, PASSWORD]
        self.proc = None

    def configure(self, app: Any, ca_file: Path | None = None, password: str = PASSWORD) -> None:  # type: ignore[override]
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=self.port, SMTP_SECURITY=self.mode, SMTP_TIMEOUT=5,
                          SMTP_USERNAME=USER, SMTP_PASSWORD=password, SMTP_CA_FILE=str(ca_file) if ca_file else None)


@pytest.fixture()
def secure_smtp(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Any]:
    started: list[SecureSmtpSink] = []

    def _start(mode: str, *, rogue: bool = False) -> SecureSmtpSink:
        directory = tmp_path / f"mail-{len(started)}"
        directory.mkdir()
        cert, key = (pki["rogue_cert"], pki["rogue_key"]) if rogue else (pki["cert"], pki["key"])
        sink = SecureSmtpSink(directory, mode, cert, key)
        sink.start()
        started.append(sink)
        return sink

    yield _start
    for sink in started:
        sink.stop()


def _emails(app: Any) -> list[Any]:
    return notifications(app, channel="email")


def test_starttls_with_authentication_delivers(app, secure_smtp, pki, make_request):
    sink = secure_smtp("starttls")
    sink.configure(app, pki["ca"])
    reference = make_request(email="parent@example.org")
    expected = len(_emails(app))
    assert expected >= 2

    result = dispatch(app)

    assert (result.sent, result.failed, result.dead) == (expected, 0, 0)
    mails = sink.messages()
    assert len(mails) == expected
    to_requester = [m for m in mails if m["X-Envelope-To"] == "parent@example.org"]
    assert len(to_requester) == 1 and to_requester[0]["Subject"] == f"[{reference}] Votre demande a bien été reçue"
    assert {n.status for n in _emails(app)} == {"sent"}


def test_starttls_wrong_password_is_retried_then_dead_lettered(app, secure_smtp, pki, make_request, clock):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 3
    sink = secure_smtp("starttls")
    sink.configure(app, pki["ca"], password="not the password")
    make_request(email="parent@example.org")
    expected = len(_emails(app))

    first = dispatch(app)
    assert (first.sent, first.failed, first.dead) == (0, expected, 0)
    pending = _emails(app)
    assert {n.status for n in pending} == {"pending"} and {n.attempts for n in pending} == {1}
    assert all(n.next_attempt_at > clock.now() for n in pending)
    for _ in range(2):
        clock.advance(timedelta(hours=1))
        dispatch(app)

    dead = _emails(app)
    assert len(dead) == expected  # nothing lost: every row is still there, dead-lettered
    assert {n.status for n in dead} == {"dead"} and {n.attempts for n in dead} == {3}
    assert all("SMTPAuthenticationError" in n.last_error and "535" in n.last_error for n in dead), dead[0].last_error
    assert sink.messages() == []

    # Fixed password, admin retry (the same operation as the dead-letter screen): every one is delivered.
    from sau.extensions import db
    from sau.notify import operations as ops
    from tests.notifications.test_email import _user

    sink.configure(app, pki["ca"])
    with app.app_context():
        admin = _user("admin")
        for n in dead:
            ops.retry(admin, n.id, clock.now())
        db.session.commit()
    assert dispatch(app).sent == expected
    assert len(sink.messages()) == expected


def test_implicit_tls_delivers(app, secure_smtp, pki, make_request):
    sink = secure_smtp("tls")
    sink.configure(app, pki["ca"])
    make_request(email="parent@example.org")
    expected = len(_emails(app))

    result = dispatch(app)

    assert (result.sent, result.failed) == (expected, 0)
    assert sorted(m["X-Envelope-To"] for m in sink.messages()) == sorted(n.email for n in _emails(app))


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_certificate_from_an_untrusted_ca_is_refused(app, secure_smtp, pki, make_request, mode):
    sink = secure_smtp(mode, rogue=True)
    sink.configure(app, pki["ca"])  # trusts only the test CA, not the rogue one
    make_request(email="parent@example.org")
    expected = len(_emails(app))

    result = dispatch(app)

    assert (result.sent, result.failed) == (0, expected)
    assert sink.messages() == []
    rows = _emails(app)
    assert {n.status for n in rows} == {"pending"}
    assert all("CERTIFICATE_VERIFY_FAILED" in n.last_error for n in rows), rows[0].last_error


def test_system_cas_do_not_trust_the_test_ca(app, secure_smtp, make_request):
    sink = secure_smtp("tls")
    sink.configure(app, None)  # no SMTP_CA_FILE: the system CAs, which do not know the throwaway CA
    make_request(email="parent@example.org")

    assert dispatch(app).sent == 0
    assert sink.messages() == []
    assert all("CERTIFICATE_VERIFY_FAILED" in n.last_error for n in _emails(app))
