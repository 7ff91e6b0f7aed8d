"""The stored open-data snapshot (issue 7, point 6): one row per published resource, rebuilt whole by
`sau.reports.opendata.refresh` and served as is by the public endpoints.

A table rather than files: the scheduler may run in its own process (or host) next to the web workers, and the
database is the one store they all share; a refresh replaces every resource in one transaction, so a reader
sees the old snapshot or the new one, never a mix; and the snapshot is in the backups with the data it sums up.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from sau.extensions import db


class OpenDataSnapshot(db.Model):
    __tablename__ = "opendata_snapshots"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)  # "sau-tickets", "sau-disponibilite"
    generated_at: Mapped[datetime]
    row_count: Mapped[int]
    csv: Mapped[str] = mapped_column(sa.Text)
    json: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))  # of the data rows: unchanged data, unchanged digest
