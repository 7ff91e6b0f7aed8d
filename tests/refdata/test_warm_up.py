"""Gunicorn's master does once, before forking, what each worker did on its first request (sau.preload)."""
from __future__ import annotations

import logging
import os

from sau import autocommit, create_app, refdata
from sau.extensions import db
from sau.preload import warm_up


def test_warm_up_loads_the_snapshot_and_the_templates_and_keeps_no_connection(app):
    refdata._forget()
    warm_up(app)
    assert refdata._snapshot is not None  # a worker forked now starts with it
    assert not [key for key in autocommit._engines if key[0] == os.getpid()]
    with app.app_context():
        assert all(engine.pool.checkedout() == 0 for engine in db.engines.values())
        assert refdata._snapshot.version == refdata._version()
        db.session.remove()
    names = app.jinja_env.list_templates()
    cached = {key[1] for key in app.jinja_env.cache}  # (loader, name)
    assert "help/form.html" in names and set(names) <= cached


def test_warm_up_without_the_database_warns_and_leaves_the_snapshot_to_the_workers(caplog, tmp_path):
    down = create_app("test", {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://sau@127.0.0.1:9/sau",
                               "ATTACHMENTS_DIR": str(tmp_path)})
    refdata._forget()
    with caplog.at_level(logging.WARNING, logger="sau.preload"):
        warm_up(down)
    assert refdata._snapshot is None
    assert "reference data not loaded before the workers start" in caplog.text


def test_a_forked_worker_opens_its_connections_before_its_first_request(app):
    from sau.preload import open_connections

    with app.app_context():
        db.engine.dispose()
        autocommit.dispose()
        postgresql = db.engine.dialect.name == "postgresql"
    open_connections(app)
    with app.app_context():
        pools = [db.engine.pool]
        if postgresql:
            pools += [autocommit.engine(durable=False).pool, autocommit.engine(durable=True).pool]
        assert [(pool.checkedin(), pool.checkedout()) for pool in pools] == [(1, 0)] * len(pools)


def test_a_worker_without_the_database_warns_and_opens_them_later(caplog, tmp_path):
    from sau.preload import open_connections

    down = create_app("test", {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://sau@127.0.0.1:9/sau",
                               "ATTACHMENTS_DIR": str(tmp_path)})
    with caplog.at_level(logging.WARNING, logger="sau.preload"):
        open_connections(down)
    assert "database connections not opened before the first request" in caplog.text


def test_the_master_freezes_its_heap_right_before_each_fork():
    """gunicorn's pre_fork hook (deploy/gunicorn.conf.py) moves what the master holds to the collector's permanent
    generation, so that a worker's full collections do not walk the inherited app (sau.preload.freeze_heap)."""
    import gc
    import runpy
    from pathlib import Path

    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"))
    assert gc.get_freeze_count() == 0
    try:
        conf["pre_fork"](None, None)
        assert gc.get_freeze_count() > 10_000  # the test process's modules, the app and its mappers
    finally:
        gc.unfreeze()
