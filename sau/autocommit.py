"""Short statements that must not wait for the request's transaction, on PostgreSQL: a small autocommit engine
beside the app's, one per process (a forked worker makes its own) and database, whose connections do not wait for
their WAL flush (`synchronous_commit = off`).

Used for the reference counter (sau.tickets.operations.next_reference: its row lock is held for one statement, not
until the request's commit) and the reference data's version (sau.refdata: one round trip, no transaction).
A statement here that changes data is made durable by the next synchronous commit of any connection (WAL is
flushed in order): the ticket that uses a number commits after it.

`durable=True` is a second such engine whose connections wait for the WAL flush as usual: one statement there is
a whole durable transaction (a new help request with its events, written in one statement: no BEGIN, no COMMIT).
"""
from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from sau.extensions import db

_engines: dict[tuple[int, str, bool], sa.engine.Engine] = {}


def engine(durable: bool = False) -> sa.engine.Engine:
    url = db.engine.url
    key = (os.getpid(), url.render_as_string(hide_password=False), durable)
    found = _engines.get(key)
    if found is None:
        found = _engines[key] = sa.create_engine(
            url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4, pool_recycle=3600,
            connect_args={} if durable else {"options": "-c synchronous_commit=off"},
        )
        from sau import replace_closed_connections  # as the app's engine (sau/__init__.py)

        replace_closed_connections(found)
    return found


def dispose() -> None:
    """Close this process's connections (a master process done with the database before it forks:
    sau.preload.warm_up)."""
    for key in [k for k in _engines if k[0] == os.getpid()]:
        _engines.pop(key).dispose()


def fetch_row(sql: str, params: Any = (), *, durable: bool = False) -> tuple[Any, ...] | None:
    """The first row of `sql` (psycopg placeholders: `%s` with a tuple, `%(name)s` with a dict), or None: on a
    pooled connection used directly (no SQLAlchemy Connection around it: this is on every submission's path)."""
    raw = engine(durable).raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    finally:
        raw.close()  # back to the pool
    return tuple(row) if row is not None else None


def fetch_value(sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of `sql` (`%s` placeholders), or None (not durable: see above)."""
    row = fetch_row(sql, params)
    return row[0] if row is not None else None
