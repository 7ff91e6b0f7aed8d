"""What gunicorn's processes do before they serve: the master once before it forks its workers (sau.wsgi,
preload_app) and again right before each fork (deploy/gunicorn.conf.py, pre_fork), then each worker right after
its fork (post_fork)."""
from __future__ import annotations

import gc

import sqlalchemy as sa
from flask import Flask

from sau.resilience import unless_database_down


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
            with unless_database_down("reference data not loaded before the workers start"):
                refdata.current()
        finally:
            db.session.remove()
            autocommit.dispose()
            for engine in db.engines.values():
                engine.dispose()


def freeze_heap() -> None:
    """In the master, right before a fork (gunicorn's `pre_fork`): collect, then move every object alive now (the
    app, its mappers, templates and reference snapshot: about 180,000 objects) to the collector's permanent
    generation, as the `gc.freeze` documentation advises before fork().

    A worker's full collections then scan only what it allocated itself. Without this, each one walked the whole
    inherited heap: about 100 ms, once every hundred agent queue pages or so, a page's p99 (issue 9; the queue
    keeps a hundred ORM objects alive per request, and they reach the oldest generation). Walking those objects
    also wrote to their pages, which the workers then stopped sharing with the master. The cost: a reference
    cycle made only of frozen objects is never collected; the master's heap is built once and kept for its
    lifetime anyway."""
    gc.collect()
    gc.freeze()


def open_connections(app: Flask) -> None:
    """In a worker just forked (gunicorn's `post_fork`): open its database connections now, one per pool the
    requests use (the app's; on PostgreSQL also sau.autocommit's two), and leave them in their pools. Opening one
    took about 0.2 s here, paid by each worker's first request (issue 9: 190 ms of a first agent queue page of
    200 ms). Without the database at that moment, it logs a warning and the requests open them as before."""
    from sau import autocommit
    from sau.extensions import db, on_postgresql

    with app.app_context():
        engines = [db.engine]
        with unless_database_down("database connections not opened before the first request"):
            if on_postgresql():
                engines += [autocommit.engine(durable=False), autocommit.engine(durable=True)]
            for engine in engines:
                engine.connect().close()  # back to the pool, open

