"""Timed work with APScheduler: the SLA sweep every minute.

The embedded default (`sau serve`, i.e. `make run`) runs the scheduler inside the web process; production
runs it as its own process (`sau scheduler`) next to gunicorn. Several schedulers on one PostgreSQL are safe:
the sweep takes an advisory lock, and its markers are unique.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from sau.clock import now_utc

log = logging.getLogger(__name__)


def run_sla_sweep(app: Flask) -> None:
    from sau.extensions import db
    from sau.tickets.sweeps import sweep

    with app.app_context():
        try:
            sweep(now_utc())
        except Exception:  # a failed sweep is retried at the next tick; it must not kill the scheduler
            db.session.rollback()
            log.exception("SLA sweep failed")
        finally:
            db.session.remove()


def run_notify_dispatch(app: Flask) -> None:
    from sau.extensions import db
    from sau.notify.dispatcher import dispatch_due

    with app.app_context():
        try:
            dispatch_due(now_utc())
        except Exception:  # retried at the next tick
            db.session.rollback()
            log.exception("notification dispatch failed")
        finally:
            db.session.remove()


def build_scheduler(app: Flask, *, blocking: bool = False) -> Any:
    scheduler = (BlockingScheduler if blocking else BackgroundScheduler)(timezone=UTC)
    scheduler.add_job(
        run_sla_sweep, "interval", args=[app], id="sla-sweep", seconds=app.config["SLA_SWEEP_SECONDS"],
        coalesce=True, max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_notify_dispatch, "interval", args=[app], id="notify-dispatch",
        seconds=app.config.get("NOTIFY_DISPATCH_SECONDS", 30), coalesce=True, max_instances=1,
        misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    return scheduler
