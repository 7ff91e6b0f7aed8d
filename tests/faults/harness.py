"""Real processes for the fault tests: a throwaway PostgreSQL, gunicorn app nodes, `sau scheduler`-equivalent
processes on a shared simulated clock, and a threaded HTTP load generator that records every attempt.

Everything runs as the production stack does (SAU_ENV=production, gunicorn sync workers, its own scheduler
process); only the clock of the simulated-time scenarios is replaced, through `clocked_app.py`.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import psycopg

from tests.support.pgcluster import PostgresCluster, _children, _free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REQUEST_BODY: dict[str, Any] = {
    "service": "toodego", "category": "teleservice-communal", "commune": "69081",
    "description": "Le bouton « Valider » ne répond pas (test de panne).",
}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        time.sleep(interval)


class Stack:
    """One PostgreSQL cluster with the schema and demo data, and the environment every process shares."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cluster = PostgresCluster(settings={"max_connections": "120"})
        self.url = self.cluster.start()
        self.clock_file = tmp / "clock.txt"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SAU_", "DATABASE_", "SMTP_", "PG"))},
            "SAU_ENV": "production", "DATABASE_URL": self.url, "PYTHONPATH": str(ROOT),
            "SECRET_KEY": "fault-tests-secret-key-0123456789abcdef", "SAU_INSTANCE_DIR": str(tmp / "instance"),
            "ATTACHMENTS_DIR": str(tmp / "attachments"), "PUBLIC_URL": "http://127.0.0.1",
            # Production refuses to start without OpenID Connect; no sign-in happens in these tests.
            "OIDC_ISSUER": "http://127.0.0.1:9/oidc", "OIDC_CLIENT_ID": "sau", "OIDC_CLIENT_SECRET": "fault-tests",
            "RATELIMIT_HELP_FORM": "1000000 per minute", "LOG_LEVEL": "WARNING", "SCHEDULER_ENABLED": "0",
            "SLA_SWEEP_SECONDS": "1", "NOTIFY_DISPATCH_SECONDS": "1", "NOTIFY_BACKOFF_SECONDS": "1",
            "SAU_FAULTS_CLOCK_FILE": str(self.clock_file),
        }
        self.sau("db", "upgrade")
        self.sau("load-demo")

    def sau(self, *args: str) -> str:
        proc = subprocess.run([str(VENV_BIN / "sau"), *args], check=False, cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"sau {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def python(self, code: str, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run([sys.executable, "-c", code, *args], check=False, cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"helper failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def create_token(self) -> str:
        """An API token of Écully's GRU allowed to create requests (its secret)."""
        code = """
import sqlalchemy as sa
from sau import create_app
from sau.auth.models import User
from sau.auth.tokens import create_token
from sau.clock import now_utc
from sau.extensions import db
from sau.orgs.models import Organisation
app = create_app()
with app.app_context():
    admin = db.session.scalar(sa.select(User).where(User.email == "adele.moreau@grandlyon.example"))
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
    print(create_token(admin, org, "GRU (tests de panne)", ["requests:write", "tickets:read"], now_utc()).secret)
    db.session.commit()
"""
        return self.python(code).strip().splitlines()[-1]

    def set_clock(self, at: datetime) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(at.isoformat())
        os.replace(tmp, self.clock_file)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.cluster.dsn, connect_timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self.cluster.stop()


class Node:
    """A gunicorn app node (sync workers) against the stack's database."""

    def __init__(self, stack: Stack, *, workers: int = 2, app: str = "sau:create_app()",
                 extra_env: dict[str, str] | None = None, name: str = "node") -> None:
        self.port = _free_port()
        self.log = stack.tmp / f"{name}-{self.port}.log"
        self._log_fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{self.port}", "--timeout", "60",
             "--graceful-timeout", "5", app],
            cwd=ROOT, env={**stack.env, **(extra_env or {})}, stdout=self._log_fh, stderr=subprocess.STDOUT)
        wait_until(self._ready, 90, f"gunicorn on port {self.port} to answer (log: {self.log})", 0.3)
        wait_until(lambda: len(self.workers()) == workers, 60, "gunicorn workers to start")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/api/v1/services")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def workers(self) -> list[int]:
        return sorted(_children(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_fh.close()


class Scheduler:
    """`sau scheduler` on the simulated clock (tests/faults/scheduler_process.py)."""

    def __init__(self, stack: Stack, name: str = "scheduler", extra_env: dict[str, str] | None = None) -> None:
        self.log = stack.tmp / f"{name}-{time.time_ns()}.log"
        self._log_fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.scheduler_process"], cwd=ROOT,
                                     env={**stack.env, **(extra_env or {})}, stdout=self._log_fh,
                                     stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log_fh.close()
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log_fh.closed:
            self._log_fh.close()


@dataclass
class Submission:
    """One help request as a client sees it: every attempt (same Idempotency-Key) until a 201."""

    key: str
    subject: str
    attempts: list[str] = field(default_factory=list)  # "201", "503", "reset:RemoteDisconnected", ...
    references: list[str] = field(default_factory=list)  # from every 201
    retry_after_missing: int = 0
    replayed: bool = False  # the 201 was a replay: an earlier attempt had committed but its answer was lost

    @property
    def accepted(self) -> bool:
        return bool(self.references)


class Load:
    """`threads` clients posting help requests to /api/v1/requests with a token and an Idempotency-Key each,
    retrying the same key after a 503, a 409 (same key in progress) or a dropped connection."""

    RETRYABLE: ClassVar[frozenset[str]] = frozenset({"503", "409"})

    def __init__(self, ports: list[int], token: str, threads: int = 6, prefix: str = "panne",
                 retry_pause: float = 0.3, give_up_after: float = 90.0) -> None:
        self.ports, self.token, self.prefix = ports, token, prefix
        self.retry_pause, self.give_up_after = retry_pause, give_up_after
        self.submissions: list[Submission] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 180) -> None:
        """Stop submitting new requests; the ones under way finish (retries included)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
            assert not t.is_alive(), "a client thread is stuck"

    def accepted(self) -> int:
        with self._lock:
            return sum(1 for s in self.submissions if s.accepted)

    def _post(self, port: int, submission: Submission) -> tuple[str, dict[str, Any] | None, dict[str, str]]:
        body = json.dumps({**REQUEST_BODY, "subject": submission.subject}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", "/api/v1/requests", body=body, headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": submission.key})
            response = conn.getresponse()
            raw = response.read()
            data = json.loads(raw) if raw and response.getheader("Content-Type", "").startswith("application/json") \
                else None
            return str(response.status), data, {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as exc:
            return f"reset:{type(exc).__name__}", None, {}
        finally:
            conn.close()

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            submission = Submission(key=str(uuid.uuid4()), subject=f"{self.prefix} {index}-{n} {uuid.uuid4().hex[:8]}")
            with self._lock:
                self.submissions.append(submission)
            started = time.monotonic()
            attempt = 0
            while True:
                port = self.ports[(index + n + attempt) % len(self.ports)]
                attempt += 1
                status, data, headers = self._post(port, submission)
                submission.attempts.append(status)
                if status == "201":
                    submission.references.append(data["reference"] if data else "?")
                    submission.replayed = headers.get("idempotent-replayed") == "true"
                    break
                if status == "503" and "retry-after" not in headers:
                    submission.retry_after_missing += 1
                if not (status in self.RETRYABLE or status.startswith("reset:")):
                    break  # a 4xx/500: recorded, not retried (the test fails on it)
                if time.monotonic() - started > self.give_up_after:
                    break
                time.sleep(self.retry_pause)

    def report(self) -> dict[str, Any]:
        attempts = Counter(a for s in self.submissions for a in s.attempts)
        return {
            "requests": len(self.submissions),
            "attempts": sum(attempts.values()),
            "accepted": sum(1 for s in self.submissions if s.accepted),
            "by_status": dict(sorted(attempts.items())),
            "retried": sum(1 for s in self.submissions if len(s.attempts) > 1),
            # accepted on a retry by replay: the first attempt had committed, its answer was lost in the fault
            "replayed": sum(1 for s in self.submissions if s.replayed),
        }


class FormLoad(Load):
    """Anonymous people on the public help form: each attempt opens the form (session cookie, CSRF token), then
    posts it; a 303 to the thanks page is an acceptance, reported as "201" with the reference of its address so
    that `check_no_loss_no_duplicate` applies. There is no Idempotency-Key here: a retry after a 503 or a dropped
    connection is the same person sending again, so a duplicate would show a request answered 503 that had
    committed."""

    def _post(self, port: int, submission: Submission) -> tuple[str, dict[str, Any] | None, dict[str, str]]:
        import re
        import urllib.parse

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/aide?service=toodego")
            page = conn.getresponse()
            html = page.read().decode()
            if page.status != 200:
                return str(page.status), None, {k.lower(): v for k, v in page.getheaders()}
            token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
            cookie = (page.getheader("Set-Cookie") or "").split(";", 1)[0]
            assert token is not None and cookie, "no CSRF token or session cookie on the form"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body = urllib.parse.urlencode({**REQUEST_BODY, "subject": submission.subject, "email": "panne@example.org",
                                           "csrf_token": token.group(1)})
            conn.request("POST", "/aide?service=toodego", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                "Referer": f"http://127.0.0.1:{port}/aide"})
            response = conn.getresponse()
            response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if response.status == 303 and "/aide/merci/" in headers.get("location", ""):
                return "201", {"reference": headers["location"].rstrip("/").rsplit("/", 1)[-1]}, headers
            return str(response.status), None, headers
        except (OSError, http.client.HTTPException) as exc:
            return f"reset:{type(exc).__name__}", None, {}
        finally:
            conn.close()


def check_no_loss_no_duplicate(stack: Stack, load: Load) -> dict[str, Any]:
    """Every submission accepted exactly once: its 201 reference(s) are one ticket with its subject, and no subject
    has two tickets. Returns the figures for the report; raises AssertionError with the details otherwise."""
    rows = stack.query("SELECT reference, subject FROM tickets WHERE subject LIKE %s", (load.prefix + " %",))
    by_subject: dict[str, list[str]] = {}
    for reference, subject in rows:
        by_subject.setdefault(subject, []).append(reference)
    subjects = {s.subject: s for s in load.submissions}
    not_accepted = [s for s in load.submissions if not s.accepted]
    bad_status = [(s.subject, s.attempts) for s in load.submissions
                  if any(a not in ("201", "503", "409") and not a.startswith("reset:") for a in s.attempts)]
    lost = [(s.subject, s.references) for s in load.submissions if s.accepted
            and set(s.references) - set(by_subject.get(s.subject, []))]
    inconsistent = [(s.subject, s.references) for s in load.submissions if len(set(s.references)) > 1]
    duplicates = {subject: refs for subject, refs in by_subject.items() if len(refs) > 1}
    strangers = [subject for subject in by_subject if subject not in subjects]
    missing_retry_after = sum(s.retry_after_missing for s in load.submissions)
    report = load.report()
    assert not bad_status, f"unexpected answers (500 or 4xx): {bad_status[:5]} — {report}"
    assert not missing_retry_after, f"{missing_retry_after} answers 503 without Retry-After"
    assert not not_accepted, (f"{len(not_accepted)} requests never accepted, e.g. "
                              f"{[(s.subject, s.attempts) for s in not_accepted[:3]]} — {report}")
    assert not lost, f"LOST: {len(lost)} requests answered 201 are not in the database: {lost[:5]}"
    assert not inconsistent, f"retries of one key answered different tickets: {inconsistent[:5]}"
    assert not duplicates, f"DUPLICATES: {len(duplicates)} requests have several tickets: {list(duplicates.items())[:5]}"
    assert not strangers, f"tickets that no client sent: {strangers[:5]}"
    assert len(rows) == len(load.submissions)
    return {**report, "tickets": len(rows), "lost": 0, "duplicates": 0}


def record_result(name: str, figures: dict[str, Any]) -> None:
    """Append the figures of a run to var/faults/results.jsonl (for bench/RESULTS.md)."""
    out = ROOT / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    line = {"test": name, "at": datetime.now().astimezone().isoformat(timespec="seconds"), **figures}
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"\n{name}: {json.dumps(figures, ensure_ascii=False)}")
