"""`Idempotency-Key` on the API's POSTs (issue 5: "a retried call never creates a second ticket"; "nothing already
accepted is ever lost"): the key is reserved in the view's own transaction, so a process killed between the view's
commit and the storing of its answer leaves a record that a retry answers from the ticket it created — never by
running the view again. Errors are not stored: a retry with the same key is validated afresh."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

from sau.api.idempotency import IdempotencyRecord
from sau.extensions import db
from sau.tickets.models import Ticket
from tests.conftest import FROZEN_AT, ROOT, ticket_count

URL = "/api/v1/requests"
BODY: dict[str, Any] = {
    "service": "toodego",
    "category": "teleservice-communal",
    "commune": "69081",
    "subject": "Inscription cantine impossible",
    "description": "Le bouton « Valider » ne répond pas.",
    "email": "habitant@example.org",
}

# Runs the app in a child process and posts once; `_store_response` — called right after the view's commit, before
# the answer is stored — is replaced by a SIGKILL of the process: the crash window, for real.
CRASHING_CLIENT = """
import json, os, signal, sys
from sau import create_app
from sau.api import idempotency
from sau.clock import FrozenClock
from datetime import datetime

spec = json.loads(sys.argv[1])
app = create_app("test", spec["config"])
app.extensions["sau_clock"] = FrozenClock(datetime.fromisoformat(spec["now"]))

def crash(record_id, response):
    sys.stdout.write("committed %s\\n" % record_id)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if spec.get("mode") == "after_commit":
    # The answer commits with the work (set_response; on PostgreSQL the creation's one statement): die right
    # after that commit, before answering.
    import sqlalchemy as sa
    from sqlalchemy.orm import Session
    from sau import resilience

    sa.event.listen(Session, "after_commit", lambda session: crash("with-answer", None))
    resilience.note_commit = lambda: crash("with-answer", None)
else:
    # The two-transaction path (views that do not store their answer with their work).
    idempotency.set_response = lambda response: None
    idempotency._store_response = crash
response = app.test_client().post(spec["url"], json=spec["body"], headers=spec["headers"])
sys.stdout.write("survived %s\\n" % response.status_code)
sys.exit(3)
"""


def _crash_during(app: Any, url: str, body: dict[str, Any], headers: dict[str, str], mode: str = "") -> str:
    spec = {"mode": mode, "config": {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "ATTACHMENTS_DIR": app.config["ATTACHMENTS_DIR"]},
            "now": FROZEN_AT.isoformat(), "url": url, "body": body, "headers": headers}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", CRASHING_CLIENT, json.dumps(spec)], check=False, cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stdout, child.stderr)
    assert child.stdout.startswith("committed "), child.stdout
    return child.stdout


def _records(app: Any) -> list[IdempotencyRecord]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(IdempotencyRecord).order_by(IdempotencyRecord.id)))
        db.session.expunge_all()
        return rows


def _tickets_with_subject(app: Any, subject: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Ticket.reference).where(Ticket.subject == subject)))


def test_crash_after_committing_work_and_answer_then_retry_replays_the_answer(app: Any) -> None:
    headers = {"Idempotency-Key": "gru-crash-answer"}
    _crash_during(app, URL, BODY, headers, mode="after_commit")
    created = _tickets_with_subject(app, BODY["subject"])
    assert len(created) == 1
    [record] = _records(app)
    assert record.response_status == 201  # the answer committed with the ticket
    retry = app.test_client().post(URL, json=BODY, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["reference"] == created[0]
    assert "tracking_url" in retry.get_json()  # the original answer, as it was
    assert _tickets_with_subject(app, BODY["subject"]) == created


def test_crash_after_commit_then_retry_answers_from_the_created_ticket(app: Any) -> None:
    headers = {"Idempotency-Key": "gru-crash-1"}
    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        # PostgreSQL writes the answer in the creation's own statement: no window between the work and its answer.
        # A record without its answer (written by an earlier version of the app) is answered the same way.
        assert app.test_client().post(URL, json=BODY, headers=headers).status_code == 201
        with app.app_context():
            db.session.execute(sa.update(IdempotencyRecord).values(response_status=None, response_body=None,
                                                                   response_headers=None))
            db.session.commit()
    else:
        _crash_during(app, URL, BODY, headers)
    # The child died after committing: the ticket and the key are there, the answer is not.
    created = _tickets_with_subject(app, BODY["subject"])
    assert len(created) == 1
    [record] = _records(app)
    assert record.response_status is None
    assert (record.resource_kind, record.resource_ref, record.resource_status) == ("request", created[0], 201)

    client = app.test_client()
    retry = client.post(URL, json=BODY, headers=headers)
    assert retry.status_code == 201, retry.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    data = retry.get_json()
    assert data["reference"] == created[0]
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == created[0]))
        assert (data["status"], data["version"]) == (ticket.status, ticket.version)  # the ticket as it stands now
    assert data["routed_to"]["code"] == "69081"
    assert retry.headers["Location"].endswith(f"/api/v1/requests/{created[0]}")
    assert "tracking_url" not in data  # only the token's hash is kept; the receipt e-mail carries the link
    # Same shape as an original answer (bar the one-time tracking link).
    original = client.post(URL, json={**BODY, "subject": "Autre demande"}, headers={"Idempotency-Key": "other"})
    assert original.status_code == 201
    assert set(original.get_json()) - {"tracking_url"} == set(data)
    # Again: still one ticket, still the same answer.
    again = client.post(URL, json=BODY, headers=headers)
    assert again.status_code == 201 and again.get_json()["reference"] == created[0]
    assert _tickets_with_subject(app, BODY["subject"]) == created
    # Another request under the crashed key is still refused.
    reused = client.post(URL, json={**BODY, "subject": "Autre"}, headers=headers)
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_crash_after_an_agent_action_then_retry_does_not_act_twice(app: Any, clock: Any, make_request: Any) -> None:
    from sau.auth.models import User
    from sau.auth.tokens import create_token
    from sau.orgs.models import Organisation
    from tests.conftest import DEMO_EMAILS

    reference = make_request()
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
        secret = create_token(admin, org, "GRU Écully", ["requests:write", "tickets:read", "tickets:write"],
                              clock.now()).secret
        db.session.commit()
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "gru-comment-crash"}
    url = f"/api/v1/tickets/{reference}/comments"
    comment = {"body": "Transmis à l'usager par la GRU."}
    _crash_during(app, url, comment, headers)

    retry = app.test_client().post(url, json=comment, headers=headers)
    assert retry.status_code == 201, retry.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["reference"] == reference
    bodies = [c["body"] for c in retry.get_json()["comments"]]
    assert bodies.count(comment["body"]) == 1


def test_concurrent_identical_posts_create_one_ticket(app: Any, monkeypatch: Any) -> None:
    """The second call arrives while the first holds the key uncommitted: it waits on the key, then answers from
    what the first committed."""
    from sau.tickets import operations as ops

    real_create = ops.create_request
    first_inside = threading.Event()

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        created = real_create(*args, **kwargs)
        if not first_inside.is_set():
            first_inside.set()
            time.sleep(0.5)  # the key is reserved and the ticket written, nothing committed yet
        return created

    monkeypatch.setattr(ops, "create_request", slow_create)
    headers = {"Idempotency-Key": "gru-concurrent"}
    answers: dict[str, Any] = {}

    def post(name: str) -> None:
        response = app.test_client().post(URL, json=BODY, headers=headers)
        answers[name] = (response.status_code, response.get_json(), response.headers.get("Idempotent-Replayed"))

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert first_inside.wait(30)
    second = threading.Thread(target=post, args=("second",))
    second.start()
    first.join(60)
    second.join(60)
    assert answers["first"][0] == 201 and answers["first"][2] is None
    assert answers["second"][0] == 201, answers["second"]
    assert answers["second"][2] == "true"
    assert answers["second"][1]["reference"] == answers["first"][1]["reference"]
    assert len(_tickets_with_subject(app, BODY["subject"])) == 1
    assert len(_records(app)) == 1


def test_a_failed_call_stores_nothing_and_a_corrected_retry_with_the_same_key_is_accepted(app: Any) -> None:
    client = app.test_client()
    headers = {"Idempotency-Key": "gru-fix-me"}
    before = ticket_count(app)
    failed = client.post(URL, json={**BODY, "commune": "99999"}, headers=headers)
    assert failed.status_code == 422 and "Idempotent-Replayed" not in failed.headers
    assert _records(app) == [] and ticket_count(app) == before
    # The rule: 4xx answers are not stored, so the same key may carry the corrected request.
    fixed = client.post(URL, json=BODY, headers=headers)
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    replay = client.post(URL, json=BODY, headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == fixed.get_json()
    assert ticket_count(app) == before + 1
    [record] = _records(app)
    assert record.response_status == 201 and record.resource_ref == fixed.get_json()["reference"]


def test_a_conflicting_agent_action_leaves_the_key_free(app: Any, login_as: Any, make_request: Any) -> None:
    """A 409 (stale version) rolls back the view's transaction, key included: the retry with the right version
    acts once."""
    reference = make_request()
    agent = login_as("admin")
    url = f"/api/v1/tickets/{reference}/priority"
    headers = {"Idempotency-Key": "prio-1"}
    stale = agent.post(url, json={"priority": "majeur", "version": 99}, headers=headers)
    assert stale.status_code == 409
    assert _records(app) == []
    version = agent.get(f"/api/v1/requests/{reference}").get_json()["version"]
    ok = agent.post(url, json={"priority": "majeur", "version": version}, headers=headers)
    assert ok.status_code == 200 and ok.get_json()["priority"] == "majeur"
    again = agent.post(url, json={"priority": "majeur", "version": version}, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["version"] == ok.get_json()["version"]


def test_a_retry_replays_the_original_answer_exactly(app: Any) -> None:
    """On PostgreSQL the answer is written by the creation's own statement, the reference put in place of a
    placeholder (sau.api.idempotency, `Claim`): the replay is the original answer, tracking link included; a
    subject that looks like a placeholder is left as it is."""
    client = app.test_client()
    headers = {"Idempotency-Key": "gru-replay-exact"}
    body = {**BODY, "description": "Référence vue à l'écran : SAU-REFERENCE-0c1f6e2a9b7d4e58."}
    first = client.post(URL, json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    reference = first.get_json()["reference"]
    assert first.get_json()["description"] == body["description"]
    assert re.fullmatch(r"SAU-\d{4}-\d{6,}", reference)
    assert not re.search(r"SAU-[0-9a-f]{24}", first.get_data(as_text=True))  # no placeholder left
    assert first.headers["Location"].endswith(f"/api/v1/requests/{reference}")
    assert f"/suivi/{reference}" in first.get_json()["tracking_url"]
    again = client.post(URL, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data(as_text=True) == first.get_data(as_text=True)
    assert again.headers["Location"] == first.headers["Location"]
    [record] = _records(app)
    assert (record.resource_kind, record.resource_ref, record.response_status) == ("request", reference, 201)
    assert _tickets_with_subject(app, BODY["subject"]) == [reference]
