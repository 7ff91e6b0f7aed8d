"""Work done once in gunicorn's master before it forks its workers (sau.wsgi, preload_app)."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask

log = logging.getLogger(__name__)


def warm_up(app: Flask) -> None:
    """Do once, before gunicorn forks its workers (preload_app), what each worker would otherwise do on its first
    request, which took 0.6 s and made the tail latency of a benchmark (issue 9): configure the ORM's mappers (a
    third of it), compile the templates, and load the reference data's snapshot (sau.refdata; a worker checks its
    version as usual, so an old one is never used). Without the database, the workers load the snapshot on their
    first request."""
    from sau import autocommit, refdata
    from sau.extensions import db
    from sau.resilience import is_database_unavailable

    sa.orm.configure_mappers()
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)
    with app.app_context():
        try:
            refdata.current()
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            log.warning("reference data not loaded before the workers start: %s", exc)
        finally:
            db.session.remove()
            autocommit.dispose()
            for engine in db.engines.values():
                engine.dispose()
