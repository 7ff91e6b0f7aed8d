"""The channel code on plain values: backoff schedule, webhook signatures, message building, templates."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifications import EmailMessageSpec, build_email, message_id_for, next_attempt_delay, render, sign, verify
from notifications.render import TEMPLATES_DIR, known_kinds


@pytest.mark.parametrize("attempts, seconds", [(1, 60), (2, 120), (3, 240), (8, 7680), (9, 15360), (12, 21600)])
def test_backoff_doubles_up_to_the_cap(attempts, seconds):
    assert next_attempt_delay(attempts, base_seconds=60, max_seconds=21600) == timedelta(seconds=seconds)


def test_backoff_refuses_zero_attempts():
    with pytest.raises(ValueError):
        next_attempt_delay(0)


def test_signature_verification():
    body = b'{"id":"abc"}'
    signature = sign("s3cret", 1_700_000_000, body)
    assert verify("s3cret", "1700000000", body, signature, now=1_700_000_100)
    assert not verify("autre", "1700000000", body, signature, now=1_700_000_100)
    assert not verify("s3cret", "1700000000", body + b" ", signature, now=1_700_000_100)
    assert not verify("s3cret", "1700000001", body, signature, now=1_700_000_100)  # timestamp is signed
    assert not verify("s3cret", "1700000000", body, signature, now=1_700_001_000)  # too old: replay refused


def test_every_kind_renders_in_french_with_the_links():
    context = {"reference": "SAU-2026-000001", "subject": "Objet <b>", "organisation_name": "Écully",
               "service_name": "Toodego", "commune_name": "Écully", "status_label": "Clos", "priority_label": "Bloquant",
               "level": 1, "recipient_name": "Camille", "ticket_url": "http://sau.test/suivi/SAU-2026-000001",
               "preferences_url": "http://sau.test/notifications/preferences", "message": "Réponse", "deadline": "—"}
    kinds = known_kinds()
    assert len(kinds) >= 13
    for kind in kinds:
        rendered = render(kind, context)
        assert rendered.subject.startswith("[SAU-2026-000001] ")
        assert "Bonjour Camille" in rendered.text and context["preferences_url"] in rendered.text
        assert context["ticket_url"] in rendered.html
        if "{{ subject }}" in (TEMPLATES_DIR / f"{kind}.html").read_text():
            assert "Objet &lt;b&gt;" in rendered.html and "Objet <b>" not in rendered.html  # escaped


def test_built_message_is_multipart_with_threading_headers():
    spec = EmailMessageSpec(sender="SAU <sau@grandlyon.example>", to="a@example.org", subject="Sujet é",
                            text="Texte", html="<p>HTML</p>", message_id=message_id_for("k1", "grandlyon.example"),
                            sent_at=datetime(2026, 3, 10, 9, tzinfo=UTC), thread_id="<ticket.x@grandlyon.example>")
    msg = build_email(spec)
    assert msg["Message-ID"] == "<k1@grandlyon.example>"
    assert msg["In-Reply-To"] == msg["References"] == "<ticket.x@grandlyon.example>"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
