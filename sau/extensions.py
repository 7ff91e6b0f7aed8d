"""Flask extensions, created unbound and initialised by the app factory."""
from __future__ import annotations

import time
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits.storage import MemoryStorage

from sau.modelbase import Base


class LazyExpiryMemoryStorage(MemoryStorage):
    """limits' in-process storage (`memory://`) without its timer thread: `memory://` starts a `threading.Timer`
    on every hit when the previous one has fired (every 10 ms), i.e. a new thread per rate-limited request under
    load (~0.2 ms of CPU each). Here the expired counters are swept by the request itself, at most once a second.
    Counting is unchanged: a fixed window's counter is dropped when read after its expiry, as in `memory://`.
    Registered under the `sau-memory://` scheme (limits' documented way to add a storage), the default
    RATELIMIT_STORAGE_URI (config.py). Per worker process, like `memory://`.
    """

    STORAGE_SCHEME = ["sau-memory"]  # noqa: RUF012 (declared by limits as a plain attribute)
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._next_sweep = 0.0

    # Replaces MemoryStorage.__schedule_expiry (name-mangled), if this version of limits has it and its sweep;
    # otherwise this class is plain memory://.
    if hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry") and hasattr(MemoryStorage,
                                                                             "_MemoryStorage__expire_events"):
        def _MemoryStorage__schedule_expiry(self) -> None:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + self.SWEEP_SECONDS
                self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()


def on_postgresql() -> bool:
    """Whether the app's database is PostgreSQL, from its engine: asking the session would open one for the request
    (a help request committed on its own needs none, issue 9)."""
    return bool(db.engine.dialect.name == "postgresql")


def commit_pending() -> None:
    """Commit the request's session if it holds a transaction; else there is nothing to commit (a standalone
    creation has committed its work itself, sau.tickets.operations.create_request)."""
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()


limiter = Limiter(key_func=get_remote_address, default_limits=[])


def drop_idle_limiter_hook(app: Flask) -> bool:
    """Remove Flask-Limiter's app-wide `before_request` check when it can only ever find nothing to check.

    SAU limits a few views with `@limiter.limit` (sign-in, help form, API submission); those limits are checked by
    the decorator's wrapper when the view runs, not by the app-wide hook. The hook only evaluates application,
    default, blueprint and meta limits (and the in-memory fallback limits when the storage is down), none of which
    SAU declares — yet it resolved them on every request (~5 % of a bare request's CPU). If any of them is ever
    declared (or an attribute this relies on is missing in another Flask-Limiter version), the hook is kept.
    Call once every blueprint is registered. Returns whether the hook was removed.
    """
    hooks = app.before_request_funcs.get(None, [])
    hook = limiter._check_request_limit
    if hook not in hooks:  # limiter disabled for this app (RATELIMIT_ENABLED false): no hook
        return False
    manager = getattr(limiter, "limit_manager", None)
    missing = object()
    declared = [getattr(manager, "_application_limits", missing), getattr(manager, "_default_limits", missing),
                getattr(manager, "_blueprint_limits", missing), getattr(limiter, "_meta_limits", missing)]
    if any(value is missing or value for value in declared) or getattr(limiter, "_in_memory_fallback_enabled", True):
        return False
    hooks.remove(hook)
    _skip_untouched_limiter_context(app)
    return True


_CONTEXT_ATTR = "_limiter_request_context"  # where Flask-Limiter keeps its per-request state (request context)


def _skip_untouched_limiter_context(app: Flask) -> None:
    """Flask-Limiter's after_request (rate-limit headers) and teardown hooks create its per-request state only to
    find it empty when no limited view ran. Guard them so that they run only when a limit was checked. Installed
    only if the state is where this expects it (checked here), otherwise the hooks are left as they are."""
    import functools

    try:
        from flask.globals import _cv_request  # Flask 3.0 and 3.1 (pyproject: Flask<3.2)
    except ImportError:
        return
    with app.test_request_context("/"):
        _ = limiter.context
        if not hasattr(_cv_request.get(None), _CONTEXT_ATTR):
            return
    after = app.after_request_funcs.get(None, [])
    for index, func in enumerate(after):
        if (isinstance(func, functools.partial) and func.args == (limiter,)
                and getattr(func.func, "__name__", "") == "__inject_headers"):
            after[index] = _when_limited(func, _cv_request, passthrough=True)
    teardown = app.teardown_request_funcs.get(None, [])
    for index, func in enumerate(teardown):
        if getattr(func, "__self__", None) is limiter and getattr(func, "__name__", "") == "__release_context":
            teardown[index] = _when_limited(func, _cv_request, passthrough=False)


def _when_limited(func: Any, current_request: Any, *, passthrough: bool) -> Any:
    def guarded(arg: Any) -> Any:
        ctx = current_request.get(None)
        if ctx is not None and not hasattr(ctx, _CONTEXT_ATTR):
            return arg if passthrough else None
        return func(arg)

    name = getattr(getattr(func, "func", func), "__name__", "hook").lstrip("_")
    guarded.__name__ = guarded.__qualname__ = f"limiter_{name}_when_limited"
    return guarded
