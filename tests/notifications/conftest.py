"""Real servers for the notification tests: an SMTP server (aiosmtpd) and webhook receivers, each its own
process, started and stopped by the tests (to simulate outages)."""
from __future__ import annotations

import email
import email.policy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A helper process that prints "ready"; `start()` / `stop()` may be called repeatedly."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, *self.args], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"server did not start: {line!r}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


class SmtpSink(ServerProcess):
    def __init__(self, directory: Path, delay: float = 0.0) -> None:
        self.port = free_port()
        self.directory = directory
        super().__init__([str(HERE / "smtp_sink.py"), str(self.port), str(directory), str(delay)])

    def messages(self) -> list[EmailMessage]:
        files = sorted(self.directory.glob("*.eml"))
        return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]  # type: ignore[misc]

    def configure(self, app: Flask) -> None:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=self.port, SMTP_SECURITY="none", SMTP_TIMEOUT=5)


class WebhookReceiver(ServerProcess):
    def __init__(self, directory: Path, secret: str, mode: str = "ok") -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"http://127.0.0.1:{self.port}/sau/webhook"
        super().__init__([str(HERE / "webhook_receiver.py"), str(self.port), str(directory), secret, mode])

    def calls(self) -> list[dict[str, Any]]:
        import json

        return sorted((json.loads(f.read_text()) for f in self.directory.glob("*.json")), key=lambda c: c["n"])


@pytest.fixture()
def smtp(app: Flask, tmp_path: Path) -> Iterator[SmtpSink]:
    directory = tmp_path / "mail"
    directory.mkdir()
    sink = SmtpSink(directory)
    sink.start()
    sink.configure(app)
    yield sink
    sink.stop()


@pytest.fixture()
def receiver_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[WebhookReceiver] = []

    def _start(secret: str, mode: str = "ok") -> WebhookReceiver:
        directory = tmp_path / f"hooks{len(started)}"
        directory.mkdir()
        receiver = WebhookReceiver(directory, secret, mode)
        receiver.start()
        started.append(receiver)
        return receiver

    yield _start
    for receiver in started:
        receiver.stop()


def dispatch(app: Flask, limit: int | None = None) -> Any:
    from sau.clock import now_utc
    from sau.notify.dispatcher import dispatch_due

    with app.app_context():
        return dispatch_due(now_utc(), limit=limit)


def notifications(app: Flask, **where: Any) -> list[Any]:
    """The outbox as the dispatcher works it: new requests' fan-outs are expanded first (what `dispatch_due`
    does before delivering; tests/notifications/test_fanout.py checks that step on its own)."""
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.notify.operations import expand_fanouts

    with app.app_context():
        expand_fanouts()
        stmt = sa.select(Notification).order_by(Notification.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(Notification, name) == value)
        rows = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return rows


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def subprocess_env(app: Flask, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"SAU_ENV": "test", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], **extra})
    return env
