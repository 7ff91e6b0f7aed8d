"""The one source of "now". Operations receive `now` explicitly; views and jobs read it from here.

Tests replace the app's clock with a `FrozenClock` to control time.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def now(self) -> datetime:
        return self._now


def now_utc() -> datetime:
    """The current instant (aware, UTC) from the application's clock."""
    clock = current_app.extensions.get("sau_clock")
    return clock.now() if clock is not None else datetime.now(UTC)
