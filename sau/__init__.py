"""SAU — the Métropole de Lyon's help desk. `create_app` is the application factory."""
from __future__ import annotations

import inspect
import logging
import select
from pathlib import Path
from types import FunctionType
from typing import Any

from flask import Flask
from sqlalchemy.exc import DisconnectionError

import config as sau_config
from sau.clock import SystemClock
from sau.extensions import csrf, db, drop_idle_limiter_hook, limiter, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent
_COROUTINE_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE


class SauFlask(Flask):
    """Flask, with a cheaper `ensure_sync` (documented as overridable): Flask calls it for every view, hook and
    teardown function of every request (~10 per request), and `inspect.iscoroutinefunction` unwraps and inspects
    each time. A plain function whose code is not a coroutine is returned as it is, exactly what Flask would do;
    anything else (methods, partials, coroutine functions, marked functions) goes through Flask's own check."""

    def ensure_sync(self, func: Any) -> Any:
        if (type(func) is FunctionType and not func.__code__.co_flags & _COROUTINE_FLAGS
                and not hasattr(func, "_is_coroutine_marker")):  # inspect.markcoroutinefunction (Python 3.12+)
            return func
        return super().ensure_sync(func)


def create_app(config_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application. Raises config.ConfigError on unsafe production settings."""
    app = SauFlask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "sau" / "static"),
        instance_path=str(sau_config.INSTANCE_DIR),
    )
    app.config.from_object(sau_config.get_config(config_name))
    if overrides:
        app.config.update(overrides)
    sau_config.validate(app.config)
    logging.basicConfig(level=app.config["LOG_LEVEL"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    Path(app.config["ATTACHMENTS_DIR"]).mkdir(parents=True, exist_ok=True)
    app.extensions["sau_clock"] = SystemClock()

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from sau import models  # noqa: F401  (register every model)
    from sau.web import register_web

    register_web(app)
    drop_idle_limiter_hook(app)  # after every blueprint (and its limits) is registered
    from sau.cli import register_cli

    register_cli(app)
    with app.app_context():
        _configure_sqlite()
        _drop_closed_connections()
    return app


def _configure_sqlite() -> None:
    import sqlalchemy as sa

    engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def _drop_closed_connections() -> None:
    """On PostgreSQL (psycopg), replace a pooled connection whose socket is readable when it is checked out.

    An idle connection has nothing to read: the server sends nothing between transactions, except when it ends the
    session (restart, fast or smart shutdown, `pg_terminate_backend`, idle timeouts), where it sends a FATAL message
    and closes the socket. A non-blocking poll() sees that without a round trip (`pool_pre_ping` costs one on every
    checkout). Raising DisconnectionError from a "checkout" listener is SQLAlchemy's documented way to have the
    pool discard the connection and hand out a new one (if the server is still down, the new connect fails:
    sau/resilience.py answers 503). A false alarm only costs a reconnection.
    """
    for engine in db.engines.values():
        replace_closed_connections(engine)


def replace_closed_connections(engine: Any) -> None:
    """Install the check of `_drop_closed_connections` on one engine (PostgreSQL with psycopg; once)."""
    import sqlalchemy as sa

    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return
    if not sa.event.contains(engine, "checkout", _check_socket):
        sa.event.listen(engine, "checkout", _check_socket)


_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def _check_socket(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), _READABLE)
        events = poller.poll(0)
    except Exception as exc:  # closed connection, bad descriptor
        raise DisconnectionError(f"connection unusable: {exc}") from exc
    if events:
        raise DisconnectionError("the server closed the connection (or sent something while it was idle)")
