"""Signed-in sessions: a new one at each sign-in (no fixation), an idle and an absolute timeout, and a
server-side record so that the provider's front-channel logout (issuer + `sid`) ends it.

The cookie (HttpOnly, SameSite=Lax, Secure in production: see config.py) carries the Flask-Login user id,
the sign-in and last-activity instants and a random key whose SHA-256 names the `LoginSession` row.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, flash, request, session
from flask_login import login_user, logout_user

from sau.auth.models import LoginSession, User
from sau.clock import now_utc
from sau.extensions import db

AUTH_AT = "auth_at"
SEEN_AT = "seen_at"
SESSION_KEY = "login_key"
KEEP_ON_NEW_SESSION = ("tracked_tickets",)
# Activity is written back to the cookie at most this often (not on every request).
SEEN_GRANULARITY_SECONDS = 60


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def start_session(user: User, *, issuer: str, sid: str | None = None, extra: dict[str, Any] | None = None) -> None:
    """Open a brand-new session for `user` (clearing the previous one, keeping the anonymous tracked requests)
    and record it server side. The caller commits."""
    kept = {k: session[k] for k in KEEP_ON_NEW_SESSION if k in session}
    session.clear()
    session.update(kept)
    session.permanent = True
    now = now_utc()
    key = secrets.token_urlsafe(32)
    db.session.add(LoginSession(key_hash=_hash(key), user_id=user.id, issuer=issuer, sid=sid, created_at=now))
    session[SESSION_KEY] = key
    session[AUTH_AT] = int(now.timestamp())
    session[SEEN_AT] = int(now.timestamp())
    session.update(extra or {})
    login_user(user)
    user.last_seen_at = now


def end_session() -> None:
    """Sign out here: mark the server-side record ended and clear the cookie's content. The caller commits."""
    key = session.get(SESSION_KEY)
    if key:
        row = db.session.scalar(sa.select(LoginSession).where(LoginSession.key_hash == _hash(str(key))))
        if row is not None and row.ended_at is None:
            row.ended_at = now_utc()
    logout_user()
    kept = {k: session[k] for k in KEEP_ON_NEW_SESSION if k in session}
    session.clear()
    session.update(kept)


def end_sessions_by_sid(issuer: str, sid: str, now: datetime) -> int:
    """Front-channel logout: end every session opened through `issuer` with `sid`. Returns how many."""
    rows = db.session.scalars(sa.select(LoginSession).where(
        LoginSession.issuer == issuer, LoginSession.sid == sid, LoginSession.ended_at.is_(None)))
    count = 0
    for row in rows:
        row.ended_at = now
        count += 1
    return count


def _expire(message: str) -> None:
    end_session()
    db.session.commit()
    if not request.path.startswith("/api/"):
        flash(message, "info")


def enforce_session_limits() -> None:
    """before_request: end the session if it is idle, too old, or ended server side (front-channel logout)."""
    if request.endpoint == "static" or "_user_id" not in session:
        return
    now = int(now_utc().timestamp())
    auth_at = session.get(AUTH_AT)
    seen_at = session.get(SEEN_AT)
    if not isinstance(auth_at, int) or not isinstance(seen_at, int):
        # A session opened without start_session (tests' helper): its clock starts now.
        session[AUTH_AT] = session[SEEN_AT] = now
        return
    absolute = current_app.config["PERMANENT_SESSION_LIFETIME"]
    absolute_seconds = absolute.total_seconds() if isinstance(absolute, timedelta) else float(absolute)
    idle_seconds = int(current_app.config["SESSION_IDLE_MINUTES"]) * 60
    if now - auth_at >= absolute_seconds:
        _expire("Votre session a atteint sa durée maximale : merci de vous reconnecter.")
        return
    if now - seen_at >= idle_seconds:
        _expire("Votre session a expiré après une période d'inactivité : merci de vous reconnecter.")
        return
    key = session.get(SESSION_KEY)
    if key:
        # The account is read with its session row: Flask-Login's user loader (sau/web.py, `db.session.get`) then
        # finds it in the identity map instead of running a second query.
        found = db.session.execute(
            sa.select(LoginSession.ended_at, User)
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.key_hash == _hash(str(key)))
        ).first()
        if found is None or found.ended_at is not None:
            _expire("Vous avez été déconnecté par votre fournisseur d'identité.")
            return
    if now - seen_at >= SEEN_GRANULARITY_SECONDS:
        session[SEEN_AT] = now


def init_app(app: Flask) -> None:
    app.before_request(enforce_session_limits)
