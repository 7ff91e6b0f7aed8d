"""In-process profile of a help-request submission (form POST /aide, API POST /api/v1/requests) through the Flask
test client, production settings, against PostgreSQL (bench/profile/pgserve.py).

    PYTHONPATH=. .venv/bin/python -m bench.profile.submission URL [--n 300] [--mode form|api|healthz]
        [--breakdown] [--cprofile FILE]

Prints per request: wall ms, process CPU ms, PostgreSQL CPU ms (/proc of the cluster's backends), SQL statements
and their time, and with --breakdown an exclusive-time table per phase (wrapped functions; SQL time attributed
to the innermost phase running it).
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import json
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

ENV = {
    "SAU_ENV": "production", "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
    "OIDC_ISSUER": "https://moncompte.bench.invalid/", "OIDC_CLIENT_ID": "bench", "OIDC_CLIENT_SECRET": "bench",
    "RATELIMIT_HELP_FORM": "1000000 per minute", "ATTACHMENTS_DIR": "/tmp/perf-attachments",
    "PUBLIC_URL": "http://127.0.0.1", "LOG_LEVEL": "WARNING", "SAU_INSTANCE_DIR": "/tmp/perf-instance",
}

# --- phase accounting -------------------------------------------------------------------------------------------
STACK: list[list[Any]] = []  # [name, start, child_time]
SELF: collections.Counter[str] = collections.Counter()
CALLS: collections.Counter[str] = collections.Counter()
SQL_T: collections.Counter[str] = collections.Counter()
SQL_N: collections.Counter[str] = collections.Counter()
STMTS: collections.Counter[str] = collections.Counter()
ENABLED = [False]
LOCK_HELD: list[float] = []  # how long each transaction held the reference counter's row lock


def _push(name: str) -> None:
    STACK.append([name, time.perf_counter(), 0.0])


def _pop() -> None:
    name, start, child = STACK.pop()
    total = time.perf_counter() - start
    SELF[name] += total - child
    CALLS[name] += 1
    if STACK:
        STACK[-1][2] += total


def _label(f: Any) -> str:
    f = getattr(f, "func", f)
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"


def wrap(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        if not ENABLED[0]:
            return fn(*a, **kw)
        _push(name)
        try:
            return fn(*a, **kw)
        finally:
            _pop()
    wrapper.__wrapped_phase__ = True  # type: ignore[attr-defined]
    return wrapper


def patch_function(module: str, attr: str, name: str) -> None:
    """Replace the function everywhere it was imported by name."""
    mod = sys.modules[module]
    orig = getattr(mod, attr)
    new = wrap(name, orig)
    for m in list(sys.modules.values()):
        d = getattr(m, "__dict__", None)
        if not d:
            continue
        for k, v in list(d.items()):
            if v is orig:
                setattr(m, k, new)


def patch_method(cls: Any, attr: str, name: str) -> None:
    setattr(cls, attr, wrap(name, cls.__dict__[attr]))


def install_sql_listener(engine: Any) -> None:
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if ENABLED[0]:
            _push("sql")
            conn.info["_t0"] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def after(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if ENABLED[0] and "_t0" in conn.info:
            dt = time.perf_counter() - conn.info.pop("_t0")
            owner = next((f[0] for f in reversed(STACK[:-1]) if f[0] != "sql"), "?")
            _pop()
            SQL_T[owner] += dt
            SQL_N[owner] += 1
            STMTS[_shape(statement)] += 1
            if statement.startswith("UPDATE reference_counters"):
                conn.info["lock_since"] = time.perf_counter() - dt  # the row lock is taken when the UPDATE runs

    @sa.event.listens_for(engine, "commit")
    def committing(conn):  # type: ignore[no-untyped-def]
        # Called as COMMIT is about to be sent: the hold measured excludes the COMMIT itself (its WAL flush).
        since = conn.info.pop("lock_since", None)
        if ENABLED[0] and since is not None:
            LOCK_HELD.append(time.perf_counter() - since)

    for ev in ("commit", "rollback", "begin"):
        pass


def _shape(sql: str) -> str:
    s = " ".join(sql.split())
    m = re.match(r"(SELECT .*? FROM \S+|INSERT INTO \S+|UPDATE \S+|DELETE FROM \S+|\w+)", s)
    return (m.group(1) if m else s)[:110]


def pg_cpu_ticks(port: str) -> int:
    """utime+stime of every process of the cluster listening on `port` (postmaster and its children)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    procs = [(int(p), int(pp), rest) for p, pp, rest in (l.split(None, 2) for l in out if len(l.split(None, 2)) == 3)]
    masters = []
    for p, _, a in procs:
        m = re.search(r"postgres -D (\S+)", a)
        if m:
            try:
                with open(f"{m.group(1)}/postmaster.pid") as fh:
                    if fh.read().splitlines()[3].strip() == port:
                        masters.append(p)
            except (OSError, IndexError):
                pass
    pids = set(masters)
    changed = True
    while changed:
        changed = False
        for p, pp, _ in procs:
            if pp in pids and p not in pids:
                pids.add(p)
                changed = True
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--mode", default="form")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--cprofile")
    parser.add_argument("--statements", action="store_true")
    parser.add_argument("--whatif-refcache", action="store_true", help="bench/profile/refcache_whatif.py")
    parser.add_argument("--config", default="{}", help="JSON settings passed to create_app (what-if runs)")
    args = parser.parse_args()
    os.environ.update(ENV)
    os.environ["DATABASE_URL"] = args.url
    port = re.search(r":(\d+)/", args.url).group(1)  # type: ignore[union-attr]

    from sau import create_app
    from sau.extensions import db

    app = create_app("production", {"SQLALCHEMY_DATABASE_URI": args.url, "SECRET_KEY": ENV["SECRET_KEY"],
                                    "OIDC_ISSUER": ENV["OIDC_ISSUER"], "OIDC_CLIENT_ID": "bench",
                                    "OIDC_CLIENT_SECRET": "bench", "ATTACHMENTS_DIR": ENV["ATTACHMENTS_DIR"],
                                    "RATELIMIT_HELP_FORM": ENV["RATELIMIT_HELP_FORM"],
                                    **json.loads(args.config)})
    if args.mode == "healthz":
        pass
    with app.app_context():
        install_sql_listener(db.engine)
    if args.whatif_refcache:
        from bench.profile import refcache_whatif

        refcache_whatif.install()
    if args.breakdown:
        install_phases(app)

    client = app.test_client()
    base = "https://localhost"
    token = None
    if args.mode == "form":
        r = client.get("/aide?service=toodego", base_url=base)
        assert r.status_code == 200, r.status_code
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', r.get_data(as_text=True))
        token = token.group(1) if token else re.search(r'csrf_token"[^>]*value="([^"]+)"',
                                                       r.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    tag = uuid.uuid4().hex[:8]

    def one(i: int) -> None:
        if args.mode == "form":
            r = client.post("/aide?service=toodego", base_url=base, headers={"Referer": base + "/aide"}, data={
                "service": "toodego", "category": "compte", "commune": "69081",
                "subject": f"Connexion impossible {tag}-{i}",
                "description": f"Je ne parviens plus a me connecter depuis ce matin (essai {tag}-{i}).",
                "email": "bench@example.org", "page_url": "", "csrf_token": token})
            assert r.status_code == 303, (r.status_code, r.get_data(as_text=True)[:2000])
        elif args.mode == "api":
            r = client.post("/api/v1/requests", base_url=base, headers={"Idempotency-Key": f"k-{tag}-{i}"}, json={
                "service": "toodego", "subject": f"Connexion impossible {tag}-{i}", "commune": "69081",
                "category": "compte", "description": f"Je ne parviens plus à me connecter (essai {tag}-{i}).",
                "email": "bench@example.org"})
            assert r.status_code == 201, (r.status_code, r.get_data(as_text=True)[:2000])
        else:
            r = client.get("/healthz", base_url=base)
            assert r.status_code == 200

    for i in range(args.warmup):
        one(-1 - i)
    SELF.clear(); CALLS.clear(); SQL_T.clear(); SQL_N.clear(); STMTS.clear()
    ENABLED[0] = True
    prof = cProfile.Profile(time.process_time) if args.cprofile else None
    pg0 = pg_cpu_ticks(port)
    c0, w0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for i in range(args.n):
        if args.breakdown:
            _push("request (Flask/Werkzeug/test client, other)")
        one(i)
        if args.breakdown:
            _pop()
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
    c1, w1 = time.process_time(), time.perf_counter()
    pg1 = pg_cpu_ticks(port)
    ENABLED[0] = False
    n = args.n
    from bench.http_load import cpu_index
    print(f"CPU index {cpu_index():.2f} ms (sum(range(100000)); ~1-1.5 ms on an idle core)")
    hz = os.sysconf("SC_CLK_TCK")
    sql_n = sum(SQL_N.values())
    sql_t = sum(SQL_T.values())
    print(f"mode={args.mode} n={n} wall={1000*(w1-w0)/n:.2f} ms/req  app CPU={1000*(c1-c0)/n:.2f} ms/req  "
          f"PostgreSQL CPU={1000*(pg1-pg0)/hz/n:.2f} ms/req  SQL statements={sql_n/n:.2f}/req "
          f"SQL wall={1000*sql_t/n:.2f} ms/req  loadavg={os.getloadavg()}")
    if LOCK_HELD:
        held = sorted(LOCK_HELD)
        print(f"reference counter row lock held (UPDATE -> COMMIT sent, +the commit itself): median {1000*held[len(held)//2]:.2f} ms, "
              f"p90 {1000*held[int(len(held)*0.9)]:.2f} ms -> at most ~{1/held[len(held)//2]:.0f} submissions/s "
              "through that row (one at a time)")
    if args.breakdown:
        total = sum(SELF.values())
        print("\n| phase (exclusive) | calls/req | Python ms/req | SQL stmts/req | SQL ms/req | total ms/req | % |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        names = set(SELF) | set(SQL_T)
        names.discard("sql")
        rows = []
        for name in names:
            py = SELF[name]
            sq = SQL_T[name]
            rows.append((py + sq, name, py, sq))
        rows.sort(reverse=True)
        for tot, name, py, sq in rows:
            print(f"| {name} | {CALLS[name]/n:.1f} | {1000*(py)/n:.2f} | {SQL_N[name]/n:.1f} | {1000*sq/n:.2f} | "
                  f"{1000*tot/n:.2f} | {100*tot/total:.1f} |")
        print(f"| total | | | {sql_n/n:.1f} | {1000*sql_t/n:.2f} | {1000*total/n:.2f} | 100 |")
    if args.statements or args.breakdown:
        print("\nstatements per request:")
        for s, c in STMTS.most_common():
            print(f"  {c/n:5.2f}  {s}")


def install_phases(app: Any) -> None:
    import flask_wtf
    import sqlalchemy.orm
    from flask.sessions import SecureCookieSessionInterface


    for mod, attr, name in [
        ("sau.help.intake", "service_by_code", "intake.service_by_code"),
        ("sau.help.intake", "resolve_fields", "intake.resolve_fields"),
        ("sau.routing.operations", "route", "routing.route"),
        ("sau.tickets.operations", "next_reference", "next_reference"),
        ("sau.tickets.operations", "record_event", "record_event (self: event objects)"),
        ("sau.notify.operations", "enqueue_for_event", "notify.enqueue_for_event (outbox)"),
        ("sau.tickets.sla", "refresh", "sla.refresh"),
        ("sau.tickets.operations", "hash_token", "hash_token"),
        ("sau.api.views", "parse", "pydantic parse"),
        ("sau.api.views", "_created_response", "API response (serialize+jsonify)"),
        ("sau.api.idempotency", "set_resource", "idempotency.set_resource"),
        ("sau.api.idempotency", "_store_response", "idempotency._store_response (2nd txn)"),
        ("sau.api.idempotency", "_existing", "idempotency._existing"),
        ("sau.web", "remember_tracked_ticket", "remember_tracked_ticket"),
        ("flask.templating", "_render", "jinja render"),
        ("sau.tickets.operations", "create_request", "create_request (self)"),
    ]:
        try:
            patch_function(mod, attr, name)
        except (KeyError, AttributeError) as exc:
            print("cannot patch", mod, attr, exc)
    patch_method(sqlalchemy.orm.Session, "flush", "Session.flush (ORM unit of work)")
    patch_method(sqlalchemy.orm.Session, "commit", "Session.commit")
    patch_method(flask_wtf.FlaskForm, "validate_on_submit", "WTForms validate (+CSRF)")
    import wtforms.form
    patch_method(wtforms.form.BaseForm, "__init__", "WTForms form construction")
    patch_method(SecureCookieSessionInterface, "save_session", "session cookie save")
    patch_method(SecureCookieSessionInterface, "open_session", "session cookie open")
    import flask_limiter._extension as fle
    for cand in ("_check_request_limit", "_Limiter__inject_headers"):
        if cand in fle.Limiter.__dict__:
            patch_method(fle.Limiter, cand, "rate limiter")
    # view functions and request hooks
    for endpoint in ("help.help_form", "api.create_request"):
        app.view_functions[endpoint] = wrap(f"view {endpoint} (self)", app.view_functions[endpoint])
    for key, funcs in app.before_request_funcs.items():
        app.before_request_funcs[key] = [wrap(f"before_request {_label(f)}", f) for f in funcs]
    for key, funcs in app.after_request_funcs.items():
        app.after_request_funcs[key] = [wrap(f"after_request {_label(f)}", f) for f in funcs]
    import logging
    patch_method(logging.Logger, "handle", "logging")


if __name__ == "__main__":
    main()
