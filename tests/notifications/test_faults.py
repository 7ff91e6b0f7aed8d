"""Faults: SMTP down while requests pour in, a dispatcher killed in the middle of a batch."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from tests.notifications.conftest import (
    SmtpSink,
    dispatch,
    notifications,
    subprocess_env,
    wait_for,
)


def _post_requests(app, count):
    client = app.test_client()
    references = []
    for i in range(count):
        response = client.post("/api/v1/requests", json={
            "service": "toodego", "category": "teleservice-communal", "commune": "69081",
            "subject": f"Démarche bloquée n° {i}", "description": "Le bouton Valider ne répond pas.",
            "email": f"usager{i}@example.org"})
        assert response.status_code == 201, response.get_data(as_text=True)
        references.append(response.get_json()["reference"])
    return references


def _keys_of_received(sink):
    return [m["Message-ID"] for m in sink.messages()]


def test_smtp_down_then_back_delivers_everything_exactly_once(app, tmp_path, clock):
    directory = tmp_path / "mail"
    directory.mkdir()
    sink = SmtpSink(directory)
    sink.configure(app)  # configured, but the server is not running
    references = _post_requests(app, 100)  # every request succeeds for the user
    assert len(set(references)) == 100

    first = dispatch(app)
    emails = notifications(app, channel="email")
    assert first.sent == 0 and first.failed == len(emails) >= 200  # requester + the commune's agent, each
    assert {n.status for n in emails} == {"pending"} and {n.attempts for n in emails} == {1}
    assert all(n.last_error for n in emails)

    sink.start()
    try:
        assert dispatch(app).sent == 0  # not yet due: backoff
        clock.advance(timedelta(minutes=2))
        result = dispatch(app)
        assert result.sent == len(emails) and result.failed == 0
        received = _keys_of_received(sink)
        assert len(received) == len(emails)
        assert Counter(received).most_common(1)[0][1] == 1  # each exactly once
        expected = {f"<{n.idempotency_key}@grandlyon.example>" for n in emails}
        assert set(received) == expected
        assert {n.status for n in notifications(app, channel="email")} == {"sent"}
        to = {m["To"] for m in sink.messages()}
        assert {f"usager{i}@example.org" for i in range(100)} <= to
        clock.advance(timedelta(hours=1))
        assert dispatch(app).sent == 0
        assert len(sink.messages()) == len(emails)
    finally:
        sink.stop()


def test_dispatcher_killed_mid_batch_loses_nothing(app, tmp_path):
    directory = tmp_path / "mail"
    directory.mkdir()
    sink = SmtpSink(directory, delay=0.15)  # slow server: the dispatcher is caught in the middle of its batch
    sink.start()
    try:
        sink.configure(app)
        _post_requests(app, 15)
        emails = notifications(app, channel="email")
        env = subprocess_env(app, SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_SECURITY="none")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "sau"), "notify-dispatch"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: len(list(directory.glob("*.eml"))) >= 5)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        received_before = len(sink.messages())
        assert 5 <= received_before < len(emails)  # killed mid-batch

        result = dispatch(app)  # another dispatcher finishes the work
        assert {n.status for n in notifications(app, channel="email")} == {"sent"}
        received = _keys_of_received(sink)
        expected = {f"<{n.idempotency_key}@grandlyon.example>" for n in emails}
        assert set(received) == expected  # nothing lost
        duplicates = {key: count for key, count in Counter(received).items() if count > 1}
        # At most the message in flight when the process died is sent twice, with the same Message-ID.
        assert len(received) - len(expected) == sum(c - 1 for c in duplicates.values()) <= 1
        assert all(count == 2 for count in duplicates.values())
        assert result.sent == len(emails) - (received_before - len(duplicates))
    finally:
        sink.stop()
