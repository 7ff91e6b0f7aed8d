"""What gunicorn's processes do before they serve: the master once before it forks its workers (sau.wsgi,
preload_app), then each worker right after its fork (deploy/gunicorn.conf.py, post_fork)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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

    sa.orm.configure_mappers()
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)
    with app.app_context():
        try:
            with _unless_database_down("reference data not loaded before the workers start"):
                refdata.current()
        finally:
            db.session.remove()
            autocommit.dispose()
            for engine in db.engines.values():
                engine.dispose()


def open_connections(app: Flask) -> None:
    """In a worker just forked (gunicorn's `post_fork`): open its database connections now, one per pool the
    requests use (the app's; on PostgreSQL also sau.autocommit's two), and leave them in their pools. Opening one
    took about 0.2 s here, paid by each worker's first request (issue 9: 190 ms of a first agent queue page of
    200 ms). Without the database at that moment, it logs a warning and the requests open them as before."""
    from sau import autocommit
    from sau.extensions import db, on_postgresql

    with app.app_context():
        engines = [db.engine]
        with _unless_database_down("database connections not opened before the first request"):
            if on_postgresql():
                engines += [autocommit.engine(durable=False), autocommit.engine(durable=True)]
            for engine in engines:
                engine.connect().close()  # back to the pool, open


@contextmanager
def _unless_database_down(warning: str) -> Iterator[None]:
    """Let the block fail quietly when the database is unreachable (log `warning`): the requests do it later."""
    from sau.resilience import is_database_unavailable

    try:
        yield
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("%s: %s", warning, exc)

