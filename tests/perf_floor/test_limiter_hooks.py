"""The rate limiter costs nothing on routes without a limit (sau/extensions.py): its app-wide hook is dropped when
SAU declares no app-wide limit, its header and teardown hooks only run when a limit was checked, and its storage
starts no thread per hit. Checked in a fresh process: the limiter is one object per process and the other tests
run with limits off."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent('''
    import json, sys, tempfile, threading, time
    from flask_migrate import upgrade
    from sau import create_app
    from sau.extensions import LazyExpiryMemoryStorage, db, limiter
    settings = {"SQLALCHEMY_DATABASE_URI": "sqlite:///" + tempfile.mkdtemp() + "/rl.sqlite3", "RATELIMIT_ENABLED": True,
                "RATELIMIT_SIGN_IN": "3 per minute"}
    settings.update(json.loads(sys.argv[1]))
    app = create_app("test", settings)
    with app.app_context():
        upgrade()
    client = app.test_client()
    out = {"hook": limiter._check_request_limit in app.before_request_funcs[None],
           "storage": type(limiter.storage).__name__, "healthz": [], "login": []}
    first_timer = getattr(limiter.storage, "timer", None)  # started by the storage's creation: wait until it is done
    if first_timer is not None:
        first_timer.join(10)
    threads, most = threading.active_count(), 0
    for _ in range(3):
        r = client.get("/healthz")
        out["healthz"].append([r.status_code, sorted(k for k in r.headers.keys() if k.startswith("X-RateLimit"))])
    for _ in range(5):
        r = client.get("/auth/login")
        out["login"].append([r.status_code, r.headers.get("X-RateLimit-Limit"), r.headers.get("X-RateLimit-Remaining"),
                             r.headers.get("Retry-After")])
        most = max(most, threading.active_count())  # memory:// has just started a timer thread for this hit
        time.sleep(0.02)  # (which fires after 10 ms: the next hit starts another)
    out["extra_threads"] = most - threads
    print(json.dumps(out))
''')


def run(settings: dict[str, object]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(settings)], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_unlimited_routes_skip_the_limiter_and_limited_ones_keep_limits_and_headers() -> None:
    out = run({})
    assert out["hook"] is False  # no app-wide limit declared: the app-wide hook is gone
    assert out["storage"] == "LazyExpiryMemoryStorage"
    assert out["healthz"] == [[200, []]] * 3  # no limit, no header
    login = out["login"]
    assert [row[:3] for row in login[:3]] == [[302, "3", "2"], [302, "3", "1"], [302, "3", "0"]]
    assert [row[0] for row in login[3:]] == [429, 429] and all(row[3] for row in login[3:])
    assert out["extra_threads"] == 0


def test_an_app_wide_limit_keeps_the_hook() -> None:
    out = run({"RATELIMIT_DEFAULT": "2 per minute"})
    assert out["hook"] is True
    statuses = [status for status, _ in out["healthz"]]
    assert statuses == [200, 200, 429]  # the default limit applies to every route
    assert out["healthz"][0][1] == ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def test_memory_scheme_still_works() -> None:
    out = run({"RATELIMIT_STORAGE_URI": "memory://"})
    assert out["storage"] == "MemoryStorage"
    assert [row[0] for row in out["login"]] == [302, 302, 302, 429, 429]
