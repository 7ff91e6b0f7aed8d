"""`Idempotency-Key` on the API's POSTs: a retried call (same key, same client, same request) never acts twice —
e.g. a Connecté commune's GRU that retries a creation after a timeout never creates a second ticket (issue 5,
point 4: "nothing already accepted is ever lost").

How (one record per client and key):
1. The record (request fingerprint, client, no response yet) is inserted into the view's own session before the
   view runs, never committed on its own: it commits or rolls back with the view's work. A concurrent call with
   the same key waits on the unique constraint (PostgreSQL) or on the writer lock (SQLite), then finds the record.
2. Before committing, the view names what it acted on (`set_resource("request", reference, 201)`); the name is
   written on the record in that same transaction.
3. After the view, the response is stored in a follow-up transaction (`_store_response`), then replayed as is —
   unless the view stored it itself with its work (`set_response` right before its commit: one transaction).
4. A record that committed without a stored response (the process died between the two commits) is answered from
   its resource — the current representation of the ticket — and the view is never run again.
Same key with a different request → 422. Errors are not stored: a 4xx/5xx answer rolls back the view's
transaction, record included, so a retry with the same key — even with a corrected body — is validated afresh.

On PostgreSQL a view marked `@in_statement` (the creation of a help request) skips steps 1–3: nothing is reserved
before it runs; it writes the record, its resource and its answer in the very statement that creates the ticket
(`claim()`, sau.tickets.operations.create_request's `record_with`). A key already held makes that statement fail
as a whole, and the call is answered from the record; so is any other error when the key turns out to be held.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from sau.clock import now_utc
from sau.extensions import db, on_postgresql

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Location", "Content-Type", "ETag")

# kind → function(reference, status) building the answer from the resource a committed call acted on.
Rebuilder = Callable[[str, int], Response]
REBUILDERS: dict[str, Rebuilder] = {}


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH))
    client: Mapped[str] = mapped_column(sa.String(100))
    method: Mapped[str] = mapped_column(sa.String(10))
    path: Mapped[str] = mapped_column(sa.String(500))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    # What the call acted on, written in the view's transaction (see set_resource).
    resource_kind: Mapped[str | None] = mapped_column(sa.String(20))
    resource_ref: Mapped[str | None] = mapped_column(sa.String(40))
    resource_status: Mapped[int | None]
    # The answer, stored in a follow-up transaction; None until then.
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]

    __table_args__ = (sa.UniqueConstraint("client", "key", name="client_key"),)

    @property
    def has_response(self) -> bool:
        return self.response_status is not None


def rebuilder(kind: str) -> Callable[[Rebuilder], Rebuilder]:
    """Register how to answer, from its resource, a call of `kind` that committed but stored no response."""

    def register(fn: Rebuilder) -> Rebuilder:
        REBUILDERS[kind] = fn
        return fn

    return register


def set_resource(kind: str, reference: str, status: int = 200) -> None:
    """Name what the current call acts on; call it before the view commits, so that the name commits with the
    work. A no-op outside an idempotent call. `status` is the status of the answer rebuilt from it."""
    record: IdempotencyRecord | None = g.get("idempotency_record")
    if record is None:
        return
    if kind not in REBUILDERS:
        raise ValueError(f"no rebuilder for resource kind {kind!r}")
    record.resource_kind, record.resource_ref, record.resource_status = kind, reference, status


def _answer(response: Response) -> dict[str, Any]:
    """The record's columns that keep `response` for the retries."""
    return {"response_status": response.status_code, "response_body": response.get_data(as_text=True),
            "response_headers": {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}}


def set_response(response: Response) -> None:
    """Store the final answer of the current call on its record, to commit with the view's work (call it right
    before that commit, after `set_resource`): the follow-up transaction of step 3 is then skipped. A no-op
    outside an idempotent call."""
    record: IdempotencyRecord | None = g.get("idempotency_record")
    if record is None:
        return
    for column, value in _answer(response).items():
        setattr(record, column, value)
    g.idempotency_answer = response


def in_statement(view: Any) -> Any:
    """Mark a view that writes its idempotency record itself, with its work (`claim()`; PostgreSQL only)."""
    view.__sau_claims_in_statement__ = True
    return view


@dataclass
class Claim:
    """The Idempotency-Key of an `@in_statement` call, to be written with its work."""

    key: str
    client: str
    fingerprint: str
    answer: Response | None = None
    placeholder: str = ""  # the reference in `answer`, until the statement gives the real one

    def record_with(self, build: Callable[[Any, str | None], Response]) -> Callable[[Any, str | None], dict[str, Any]]:
        """For create_request's `record_with`: the record's values, its answer built by `build(ticket, token)`
        from the ticket about to be written (its reference still a placeholder, which the statement replaces)."""

        def values(ticket: Any, token: str | None) -> dict[str, Any]:
            self.answer, self.placeholder = build(ticket, token), ticket.reference
            return {"key": self.key, "client": self.client, "method": request.method, "path": request.path[:500],
                    "request_hash": self.fingerprint, "resource_kind": "request",
                    "resource_status": self.answer.status_code, **_answer(self.answer), "created_at": now_utc()}

        return values

    def stored_answer(self, reference: str) -> Response:
        """The answer as the statement stored it: the placeholder replaced by the reference."""
        assert self.answer is not None and self.placeholder
        answer = self.answer
        answer.set_data(answer.get_data(as_text=True).replace(self.placeholder, reference))
        for header in KEPT_HEADERS:
            if header in answer.headers:
                answer.headers[header] = answer.headers[header].replace(self.placeholder, reference)
        return answer


def claim() -> Claim | None:
    """The current `@in_statement` call's key, if it has one (PostgreSQL)."""
    return g.get("idempotency_claim")


def client_identity() -> str:
    """Whose key it is: the API token, else the signed-in user, else the remote address (anonymous callers)."""
    token = g.get("api_token")
    if token is not None:
        return f"token:{token.id}"
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"anon:{request.remote_addr or '-'}"


def request_fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _error(status: int, code: str, message: str) -> Response:
    from sau.web import json_error

    return json_error(status, code, message)


def _in_progress() -> Response:
    response = _error(409, "idempotency_in_progress",
                      "Une requête avec cette clé d'idempotence est en cours de traitement : réessayez.")
    response.headers["Retry-After"] = "1"
    return response


def _replay(record: IdempotencyRecord) -> Response:
    response = current_app.response_class(record.response_body or "", status=record.response_status or 200)
    for name, value in (record.response_headers or {}).items():
        response.headers[name] = value
    return response


def _existing(client: str, key: str) -> IdempotencyRecord | None:
    return db.session.scalar(sa.select(IdempotencyRecord).where(IdempotencyRecord.client == client,
                                                                IdempotencyRecord.key == key))


def _answer_for(record: IdempotencyRecord, fingerprint: str) -> Response:
    """The answer to a call whose key is held by a committed record. Never runs the view."""
    if record.request_hash != fingerprint:
        return _error(422, "idempotency_key_reused",
                      "Cette clé d'idempotence a déjà servi pour une autre requête : utilisez une nouvelle clé.")
    if record.has_response:
        response = _replay(record)
    elif record.resource_kind is not None and record.resource_ref is not None:
        # The work committed but its answer was never stored (crash between the two commits, or the first call
        # is storing it right now): answer from what it created, as it stands now.
        response = REBUILDERS[record.resource_kind](record.resource_ref, record.resource_status or 200)
    else:
        return _in_progress()
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _store_response(record_id: int, response: Response) -> None:
    """Store the answer for the retries, in its own transaction (the view's work has already committed)."""
    record = db.session.get(IdempotencyRecord, record_id)
    if record is None:
        return
    for column, value in _answer(response).items():
        setattr(record, column, value)
    db.session.commit()


def _is_committed(record_id: int) -> bool:
    """Whether the reservation committed with the view's work (called once the session holds nothing pending)."""
    return db.session.scalar(sa.select(IdempotencyRecord.id).where(IdempotencyRecord.id == record_id)) is not None


def idempotent(view: Any) -> Any:
    """Decorate a view: honour `Idempotency-Key` on POST (other methods pass through)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None:
            return view(*args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _error(400, "bad_idempotency_key",
                          f"En-tête {HEADER} invalide (1 à {MAX_KEY_LENGTH} caractères imprimables).")
        client, fingerprint = client_identity(), request_fingerprint()
        if getattr(view, "__sau_claims_in_statement__", False) and on_postgresql():
            return _in_statement(view, Claim(key, client, fingerprint), args, kwargs)
        existing = _existing(client, key)
        if existing is not None:
            return _answer_for(existing, fingerprint)
        record = IdempotencyRecord(key=key, client=client, method=request.method, path=request.path[:500],
                                   request_hash=fingerprint, created_at=now_utc())
        db.session.add(record)
        try:
            # Reserve the key inside the view's transaction (not committed here). A concurrent call holding the
            # same key makes this wait until that call commits (then IntegrityError) or rolls back (then go on).
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            existing = _existing(client, key)
            return _answer_for(existing, fingerprint) if existing is not None else _in_progress()
        record_id = record.id
        g.idempotency_record = record
        try:
            response = current_app.make_response(view(*args, **kwargs))
        finally:
            g.pop("idempotency_record", None)
        stored_with_work = g.pop("idempotency_answer", None) is response
        if stored_with_work and response.status_code < 400:
            from sau import resilience

            if resilience.committed_in_view() and not (db.session.new or db.session.dirty or db.session.deleted):
                return response  # the answer committed with the work (set_response)
        if response.status_code >= 400:
            db.session.rollback()  # errors are not stored: the reservation goes with whatever the view left
        try:
            if not _is_committed(record_id):
                return response
            _store_response(record_id, response)
        except Exception as exc:
            from sau import resilience

            # The view's work committed and the database went away before its answer was stored: the answer
            # stands (a retry with the same key is answered from the resource, step 4 above).
            if response.status_code >= 400 or not resilience.committed_in_view() \
                    or not resilience.is_database_unavailable(exc):
                raise
            current_app.logger.warning("idempotent answer not stored (database unavailable): %s", exc)
            try:
                db.session.rollback()
            except Exception:  # the connection is gone; the pool discards it
                current_app.logger.debug("rollback failed on a lost connection", exc_info=True)
        return response

    wrapper.__sau_idempotent__ = True  # type: ignore[attr-defined]
    return wrapper


def _in_statement(view: Any, call: Claim, args: Any, kwargs: Any) -> Response:
    """An `@in_statement` view on PostgreSQL: it writes its record with its work; a key already held is answered
    from its record, whether the view's statement met it or the view failed otherwise."""
    from sau import resilience

    g.idempotency_claim = call
    try:
        response = current_app.make_response(view(*args, **kwargs))
    except Exception as exc:
        if resilience.is_database_unavailable(exc) or resilience.committed_in_view():
            raise
        db.session.rollback()
        existing = _existing(call.client, call.key)
        if existing is None:
            raise
        return _answer_for(existing, call.fingerprint)  # the key is held (a concurrent or earlier call)
    finally:
        g.pop("idempotency_claim", None)
    if response.status_code >= 400 and not resilience.committed_in_view():
        db.session.rollback()
        existing = _existing(call.client, call.key)
        if existing is not None:
            return _answer_for(existing, call.fingerprint)
    return response


def init_app(app: Flask, blueprint: str = "api") -> None:
    """Wrap every view of `blueprint` that accepts POST."""
    post_endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                      if rule.endpoint.startswith(blueprint + ".") and "POST" in (rule.methods or set())}
    for endpoint in post_endpoints:
        view = app.view_functions[endpoint]
        if not getattr(view, "__sau_idempotent__", False):
            app.view_functions[endpoint] = idempotent(view)
