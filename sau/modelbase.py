"""Declarative base, naming convention, the UTC datetime column type and the append-only guard of journals."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An instant stored in UTC; refuses naive datetimes and always returns aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def append_only(model: type[Any], name: str, *, delete_note: str = "") -> None:
    """Make the ORM refuse to update or delete rows of `model` (RuntimeError "<name> are immutable", plus
    `delete_note` on deletes). Set-based statements outside the ORM are not affected."""
    message = f"{name} are immutable"

    def refuse_update(mapper: Any, connection: Any, target: Any) -> None:
        raise RuntimeError(message)

    def refuse_delete(mapper: Any, connection: Any, target: Any) -> None:
        raise RuntimeError(message + delete_note)

    event.listen(model, "before_update", refuse_update)
    event.listen(model, "before_delete", refuse_delete)
