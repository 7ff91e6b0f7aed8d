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


def open_connections(app: Flask) -> None:
    """In a worker just forked (gunicorn's `post_fork`): open its database connections now, one per pool the
    requests use (the app's; on PostgreSQL also sau.autocommit's two), and leave them in their pools. Opening one
    took about 0.2 s here (issue 9): paid by each worker's first request, it was the slowest page of a benchmark.
    Without the database at that moment, it logs a warning and the requests open them as before."""
    from sau import autocommit
    from sau.extensions import db, on_postgresql
    from sau.resilience import is_database_unavailable

    with app.app_context():
        engines = [db.engine]
        try:
            if on_postgresql():
                engines += [autocommit.engine(durable=False), autocommit.engine(durable=True)]
            for engine in engines:
                engine.connect().close()  # back to the pool, open
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            log.warning("database connections not opened before the first request: %s", exc)

