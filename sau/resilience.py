"""The database is unreachable or restarting: answer 503 with a retry hint, never a 500 — and never a 503 for
work that committed.

* `is_database_unavailable(exc)`: the errors of a lost, refused or restarting PostgreSQL (SQLAlchemy's
  OperationalError / InterfaceError / pool timeout / invalidated connection, psycopg's own OperationalError /
  InterfaceError), also when wrapped (e.g. a PendingRollbackError caused by a dropped connection).
* `unavailable_response()`: 503 + `Retry-After`, JSON `{"error": {"code": "service_unavailable", ...}}` on /api/,
  a French HTML page elsewhere. The session is rolled back by the caller (sau.web's error handler). After a
  restart the next request reconnects by itself: on checkout the pool replaces a connection the server has closed
  (sau/__init__.py, `_drop_closed_connections`, no round trip), and a disconnect met by a statement invalidates
  the pool (SQLAlchemy).
* A request whose view already committed is *accepted*: if the database goes away after the commit (while the
  answer is being built), a 503 would make the client submit again and create a duplicate. Such a request is
  answered `202 Accepted` with a message saying its work is recorded (`accepted_response()`). Commits made by
  the request hooks that run before the view (token `last_used_at`, session expiry) do not count.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = ("Service momentanément indisponible (base de données injoignable ou en redémarrage) : "
                       "votre demande n'a pas été enregistrée, merci de réessayer dans quelques secondes.")
ACCEPTED_MESSAGE = ("Votre demande a bien été enregistrée, mais la réponse complète n'a pas pu être affichée "
                    "(base de données momentanément injoignable). Inutile de la renvoyer : rechargez la page "
                    "dans quelques secondes.")
_VIEW_STARTED = "_sau_view_started"
_COMMITTED = "_sau_committed"


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` (or an exception it was raised from) means the database cannot be reached right now."""
    import sqlalchemy.exc as sa_exc

    try:
        import psycopg
        raw: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raw = ()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, *raw)):
            return True
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def committed_in_view() -> bool:
    """Whether the current request's view committed a transaction (its work is accepted)."""
    return has_request_context() and bool(g.get(_COMMITTED))


def unavailable_response(wants_json: bool) -> Response:
    from sau.web import json_error

    if wants_json:
        response = json_error(503, "service_unavailable", UNAVAILABLE_MESSAGE)
    else:
        response = _page(503, "Service momentanément indisponible", UNAVAILABLE_MESSAGE)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def accepted_response(wants_json: bool) -> Response:
    from flask import jsonify

    if wants_json:
        response = jsonify({"status": "accepted", "message": ACCEPTED_MESSAGE})
        response.status_code = 202
    else:
        response = _page(202, "Demande enregistrée", ACCEPTED_MESSAGE)
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(status: int, title: str, message: str) -> Response:
    """A standalone French page rendered without the context processors (they read the signed-in user, i.e.
    the database that is away)."""
    template = current_app.jinja_env.get_template("errors/unavailable.html")
    html = template.render(status=status, title=title, message=message)
    return current_app.response_class(html, status=status, mimetype="text/html")


def database_error_response(exc: BaseException, wants_json: bool) -> Response:
    """The answer to a database outage met while handling a request (the caller has rolled back)."""
    if committed_in_view():
        current_app.logger.error("database lost after the request's commit (answered 202): %s", exc)
        return accepted_response(wants_json)
    current_app.logger.warning("database unavailable (answered 503): %s", exc)
    return unavailable_response(wants_json)


def note_commit() -> None:
    """A commit made outside the session (a statement that is its own transaction) by the request's view."""
    if has_request_context() and g.get(_VIEW_STARTED):
        setattr(g, _COMMITTED, True)


def _after_commit(_session: Any) -> None:
    note_commit()


def init_app(app: Flask) -> None:
    """Track the view's commits. Call after every other app-level `before_request` is registered."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    if not sa.event.contains(Session, "after_commit", _after_commit):
        sa.event.listen(Session, "after_commit", _after_commit)

    def view_starts() -> None:
        setattr(g, _VIEW_STARTED, True)

    app.before_request(view_starts)
    # Registered after Flask-SQLAlchemy's own teardown, so it runs first (teardowns run in reverse order).
    app.teardown_appcontext(close_session)


@contextmanager
def unless_database_down(warning: str) -> Iterator[None]:
    """Let the block fail quietly when the database is unreachable (log `warning` with the error); any other
    error still raises. For work that can wait for the database: the next request or sweep does it."""
    try:
        yield
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("%s: %s", warning, exc)


def close_session(_exc: BaseException | None = None) -> None:
    """End the request's session; when the database went away after the answer was built (its ROLLBACK meets a
    closed connection), log it and drop the session instead of raising. Raised here, the error came after every
    error handler and gunicorn answered 500 — once for a help request already accepted (the PostgreSQL restart
    fault test, issue 9). The connection is invalidated by SQLAlchemy; the pool replaces it."""
    from sau.extensions import db

    try:
        with unless_database_down("session closed without its rollback (database unavailable)"):
            db.session.remove()
    finally:
        # After an outage the failed session is still registered: drop it (a no-op after a clean remove()).
        db.session.registry.clear()
