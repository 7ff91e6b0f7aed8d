"""gunicorn settings for SAU in production.

    SAU_ENV=production DATABASE_URL=postgresql+psycopg://… SECRET_KEY=… OIDC_…=… \
        .venv/bin/gunicorn -c deploy/gunicorn.conf.py

Serves `sau.wsgi:app`. Every setting below can be changed with an environment variable (GUNICORN_*,
WEB_CONCURRENCY). The scheduler is NOT started by gunicorn: run `sau scheduler` as its own process
(deploy/sau-scheduler.service). Migrations are NOT run here either: `sau db upgrade` once per deploy, before
starting the new code (README, "Production").
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


wsgi_app = "sau.wsgi:app"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
# Sync workers: one request per process at a time, the app's SQLAlchemy session is per request. The usual
# 2 × cores + 1; WEB_CONCURRENCY is the conventional override (the benchmarks use 2 to 4 on 2 cores, see bench/).
workers = _int("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = _int("GUNICORN_THREADS", 1)
# Requests are short (no long polling): kill a worker stuck longer than this; graceful stop on reload.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (bounded memory growth), with jitter so that they do not restart together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# Heartbeat files in RAM: a worker blocked on a slow disk is not mistaken for a dead one.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
# Load the app once in the master, then fork: workers share the code pages (less memory, faster restarts).
# The database pool is reset in each worker after the fork (post_fork below): no connection is shared.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") not in ("0", "false", "no")
# Largest request line / header accepted (defaults of gunicorn, stated).
limit_request_line = 8190
limit_request_fields = 100
# Logs on stdout/stderr (journald, container logs). Access log with the duration in microseconds (%(D)s)
# and the client address as the load balancer saw it.
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
access_log_format = (
    '%(h)s fwd="%({x-forwarded-for}i)s" %(l)s %(u)s %(t)s "%(r)s" %(s)s %(B)s %(D)sus '
    '"%(f)s" "%(a)s" pid=%(p)s'
)
# The app reads X-Forwarded-* itself when TRUSTED_PROXIES is set (sau/wsgi.py); gunicorn trusts them only
# from these addresses (the load balancer's).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "sau-web"


def pre_fork(server: Any, worker: Any) -> None:
    """Freeze the master's heap before forking (sau.preload.freeze_heap): a worker's garbage collections then leave
    the app loaded by the master alone."""
    from sau.preload import freeze_heap

    freeze_heap()


def post_fork(server: Any, worker: Any) -> None:
    """Drop any database connection inherited from the master (preload_app): each worker opens its own, before its
    first request (sau.preload.open_connections)."""
    if not preload_app:
        return
    from sau.extensions import db
    from sau.preload import open_connections
    from sau.wsgi import app

    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)
    open_connections(app)
