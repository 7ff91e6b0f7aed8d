"""The app on the fault tests' simulated clock: "now" is read from the file named by SAU_FAULTS_CLOCK_FILE, which
the test moves forward; every process (gunicorn workers, schedulers) reads the same file, so they share "now" as
real processes share the wall clock. Nothing else differs from `sau:create_app()`."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from flask import Flask


class FileClock:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        at = datetime.fromisoformat(self.path.read_text().strip())
        if at.tzinfo is None:
            raise ValueError("the simulated clock needs an aware datetime")
        return at


def create_app() -> Flask:
    from sau import create_app as create_sau_app

    app = create_sau_app()
    app.extensions["sau_clock"] = FileClock(os.environ["SAU_FAULTS_CLOCK_FILE"])
    return app
