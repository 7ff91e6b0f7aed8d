"""Timed work with APScheduler: the SLA sweep every minute.

The embedded default (`sau serve`, i.e. `make run`) runs the scheduler inside the web process; production
runs it as its own process (`sau scheduler`) next to gunicorn. Several schedulers on one PostgreSQL are safe:
the sweep takes an advisory lock, and its markers are unique.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from sau.clock import now_utc

log = logging.getLogger(__name__)


def _run_job(app: Flask, name: str, job: Callable[[datetime], Any]) -> None:
    """Run one job in an app context; a failure is logged and retried at the next tick (never kills the
    scheduler)."""
    from sau.extensions import db

    with app.app_context():
        try:
            job(now_utc())
        except Exception:
            db.session.rollback()
            log.exception("%s failed", name)
        finally:
            db.session.remove()


def run_sla_sweep(app: Flask) -> None:
    from sau.tickets.sweeps import sweep

    _run_job(app, "SLA sweep", sweep)


def run_notify_dispatch(app: Flask) -> None:
    from sau.notify.dispatcher import dispatch_due

    _run_job(app, "notification dispatch", dispatch_due)


def run_notify_fanout(app: Flask) -> None:
    from sau.notify.operations import expand_fanouts

    budget = float(app.config.get("NOTIFY_FANOUT_SECONDS", 5))
    _run_job(app, "notification fan-out", lambda _now: expand_fanouts(limit=1_000_000, seconds=budget))


def run_auto_close(app: Flask) -> None:
    from sau.tickets.jobs import close_resolved_after_window

    _run_job(app, "auto-close", lambda now: close_resolved_after_window(now, app.config["REOPEN_WINDOW_DAYS"]))


def run_maintenance_reminders(app: Flask) -> None:
    from sau.status.operations import remind_due_maintenance

    hours = float(app.config.get("MAINTENANCE_REMINDER_HOURS", 48))
    _run_job(app, "maintenance reminders", lambda now: remind_due_maintenance(now, hours))


def run_access_log_purge(app: Flask) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import purge_expired

    def purge(now: datetime) -> None:
        purge_expired(now)
        db.session.commit()

    _run_job(app, "access log purge", purge)


def run_retention(app: Flask) -> None:
    from sau.privacy.retention import run_retention as retention

    _run_job(app, "personal data retention", retention)


def run_opendata_refresh(app: Flask) -> None:
    from sau.reports.opendata import refresh_if_stale, settings

    _run_job(app, "open data refresh", lambda now: refresh_if_stale(now, settings(app.config)))


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
    # New requests' notifications (sau.notify.models.NotificationFanout), apart from the deliveries so that a rush
    # of requests gets its in-app notifications within seconds; each run works for at most its interval.
    scheduler.add_job(
        run_notify_fanout, "interval", args=[app], id="notify-fanout",
        seconds=app.config.get("NOTIFY_FANOUT_SECONDS", 5), coalesce=True, max_instances=1,
        misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_auto_close, "interval", args=[app], id="auto-close", minutes=15, coalesce=True, max_instances=1,
        misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_maintenance_reminders, "interval", args=[app], id="maintenance-reminders", minutes=5, coalesce=True,
        max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    # Hourly check; the open-data snapshot is rebuilt only once older than OPENDATA_REFRESH_HOURS.
    scheduler.add_job(
        run_opendata_refresh, "interval", args=[app], id="opendata-refresh", hours=1, coalesce=True,
        max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_access_log_purge, "interval", args=[app], id="access-log-purge", hours=24, coalesce=True,
        max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_retention, "interval", args=[app], id="retention", hours=app.config.get("RETENTION_RUN_HOURS", 24),
        coalesce=True, max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    return scheduler
