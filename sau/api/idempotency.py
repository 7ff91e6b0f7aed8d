"""`Idempotency-Key` on the API's POSTs: a retried call (same key, same client, same request) gets the stored
response instead of acting twice — e.g. a Connecté commune's GRU that retries a creation after a timeout
never creates a second ticket (issue 5, point 4).

The key is reserved in the same transaction as the view's own work, so the work and the key commit or roll back
together; a concurrent call with the same key waits on the unique constraint, then finds the key taken.
Same key with a different request → 422. Only successful answers are stored; a failed call (4xx, 5xx) rolls
back and may be retried with the same key.
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from sau.clock import now_utc
from sau.extensions import db

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Location", "Content-Type", "ETag")


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(MAX_KEY_LENGTH))
    client: Mapped[str] = mapped_column(sa.String(100))
    method: Mapped[str] = mapped_column(sa.String(10))
    path: Mapped[str] = mapped_column(sa.String(500))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]

    __table_args__ = (sa.UniqueConstraint("client", "key", name="client_key"),)


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


def _replay(record: IdempotencyRecord) -> Response:
    response = current_app.response_class(record.response_body or "", status=record.response_status or 200)
    for name, value in (record.response_headers or {}).items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _existing(client: str, key: str) -> IdempotencyRecord | None:
    return db.session.scalar(sa.select(IdempotencyRecord).where(IdempotencyRecord.client == client,
                                                                IdempotencyRecord.key == key))


def _answer_for(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        return _error(422, "idempotency_key_reused",
                      "Cette clé d'idempotence a déjà servi pour une autre requête : utilisez une nouvelle clé.")
    if record.response_status is None:
        response = _error(409, "idempotency_in_progress",
                          "Une requête avec cette clé d'idempotence est en cours de traitement : réessayez.")
        response.headers["Retry-After"] = "1"
        return response
    return _replay(record)


def _forget(client: str, key: str, fingerprint: str) -> None:
    db.session.execute(sa.delete(IdempotencyRecord).where(
        IdempotencyRecord.client == client, IdempotencyRecord.key == key,
        IdempotencyRecord.request_hash == fingerprint, IdempotencyRecord.response_status.is_(None)))
    db.session.commit()


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
        record = _existing(client, key)
        if record is not None:
            return _answer_for(record, fingerprint)
        record = IdempotencyRecord(key=key, client=client, method=request.method, path=request.path[:500],
                                   request_hash=fingerprint, created_at=now_utc())
        db.session.add(record)
        try:
            db.session.flush()  # reserve the key inside the view's transaction
        except IntegrityError:
            db.session.rollback()
            record = _existing(client, key)
            return _answer_for(record, fingerprint) if record is not None else view(*args, **kwargs)
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code >= 400:
            # Nothing was done (errors roll back): forget the key, so a corrected retry may use it again.
            db.session.rollback()
            _forget(client, key, fingerprint)
            return response
        # The view committed its work with the reservation; store the answer for the retries.
        record = _existing(client, key)
        if record is None:
            return response
        record.response_status = response.status_code
        record.response_body = response.get_data(as_text=True)
        record.response_headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
        db.session.commit()
        return response

    wrapper.__sau_idempotent__ = True  # type: ignore[attr-defined]
    return wrapper


def init_app(app: Flask, blueprint: str = "api") -> None:
    """Wrap every view of `blueprint` that accepts POST."""
    post_endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                      if rule.endpoint.startswith(blueprint + ".") and "POST" in (rule.methods or set())}
    for endpoint in post_endpoints:
        view = app.view_functions[endpoint]
        if not getattr(view, "__sau_idempotent__", False):
            app.view_functions[endpoint] = idempotent(view)
