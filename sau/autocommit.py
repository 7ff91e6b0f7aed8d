"""Short statements that must not wait for the request's transaction, on PostgreSQL: a small autocommit engine
beside the app's, one per process (a forked worker makes its own) and database, whose connections do not wait for
their WAL flush (`synchronous_commit = off`).

Used for the reference counter (sau.tickets.operations.next_reference: its row lock is held for one statement, not
until the request's commit) and the reference data's version (sau.refdata: one round trip, no transaction).
A statement here that changes data is made durable by the next synchronous commit of any connection (WAL is
flushed in order): the ticket that uses a number commits after it.
"""
from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from sau.extensions import db

_engines: dict[tuple[int, str], sa.engine.Engine] = {}


def engine() -> sa.engine.Engine:
    url = db.engine.url
    key = (os.getpid(), url.render_as_string(hide_password=False))
    found = _engines.get(key)
    if found is None:
        found = _engines[key] = sa.create_engine(
            url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4, pool_recycle=3600,
            connect_args={"options": "-c synchronous_commit=off"},
        )
        from sau import replace_closed_connections  # as the app's engine (sau/__init__.py)

        replace_closed_connections(found)
    return found


def fetch_value(sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row of `sql` (psycopg `%s` placeholders), or None: on a pooled connection
    used directly (no SQLAlchemy Connection around it: this is on every submission's path)."""
    raw = engine().raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    finally:
        raw.close()  # back to the pool
    return row[0] if row is not None else None
