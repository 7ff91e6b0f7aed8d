"""SAU — the Métropole de Lyon's help desk. `create_app` is the application factory."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

import config as sau_config
from sau.clock import SystemClock
from sau.extensions import csrf, db, limiter, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(config_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application. Raises config.ConfigError on unsafe production settings."""
    app = Flask(
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
    from sau.cli import register_cli

    register_cli(app)
    with app.app_context():
        _configure_sqlite()
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
