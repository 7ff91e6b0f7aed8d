"""E-mail over SMTP: plain, STARTTLS or implicit TLS, with optional authentication; multipart text + HTML
messages with a stable `Message-ID` and `In-Reply-To` / `References` so that a ticket's e-mails thread
together in the recipient's mail client."""
from __future__ import annotations

import hashlib
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

SECURITY_MODES = ("none", "starttls", "tls")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    security: str = "none"  # none | starttls | tls
    timeout: float = 10.0
    # A CA bundle (PEM) to verify the server's certificate against, instead of the system CAs. The certificate
    # and host name are always verified: there is deliberately no way to turn verification off.
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, not {self.security!r}")


@dataclass(frozen=True)
class EmailMessageSpec:
    sender: str
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    sent_at: datetime
    thread_id: str | None = None  # the ticket's thread: In-Reply-To and References
    headers: dict[str, str] = field(default_factory=dict)


def mail_domain(sender: str, fallback: str = "sau.invalid") -> str:
    """The domain part of the sender's address, for Message-IDs."""
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or fallback


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The stable Message-ID of one notification: derived from its idempotency key, so that a retry (even after
    a crash between sending and recording) carries the same id and clients can drop the duplicate."""
    return f"<{idempotency_key}@{domain}>"


def thread_id_for(thread_key: str, domain: str) -> str:
    """The id every e-mail about one ticket refers to (In-Reply-To, References), e.g. its reference."""
    digest = hashlib.sha256(thread_key.encode()).hexdigest()[:16]
    return f"<ticket.{digest}@{domain}>"


def build_email(spec: EmailMessageSpec) -> EmailMessage:
    """A multipart/alternative message (text first, HTML second) with the threading headers."""
    msg = EmailMessage()
    msg["From"] = spec.sender
    msg["To"] = spec.to
    msg["Subject"] = spec.subject
    msg["Date"] = format_datetime(spec.sent_at)
    msg["Message-ID"] = spec.message_id
    if spec.thread_id:
        msg["In-Reply-To"] = spec.thread_id
        msg["References"] = spec.thread_id
    # Transactional mail: ask autoresponders to stay quiet (RFC 3834).
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in spec.headers.items():
        msg[name] = value
    msg.set_content(spec.text, charset="utf-8")
    msg.add_alternative(spec.html, subtype="html", charset="utf-8")
    return msg


def ssl_context(settings: SmtpSettings) -> ssl.SSLContext:
    """A verifying client context (certificate chain and host name): SMTP_CA_FILE if set, else the system CAs."""
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def send_email(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send one message. Raises OSError / smtplib.SMTPException on any failure (the caller retries)."""
    context = ssl_context(settings)
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with smtp:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        refused = smtp.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
