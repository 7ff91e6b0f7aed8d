"""EXPLAIN (ANALYZE, BUFFERS) of the queries behind the agent queue, the SLA sweep and the reports, on a
database filled by bench/datagen.py (1,000,000 tickets):

    .venv/bin/python -m bench.explain_plans postgresql+psycopg://sau@127.0.0.1:PORT/sau [--full]

The statements are the app's own: captured (SQL and parameters) while the real code runs — the queue view
`GET /agent/` (default filters: open tickets, newest first; and `?tri=echeance`, by deadline) for the
Métropole's agent (the largest queue) and for an Écully agent, the SLA sweep's `_due` queries
(sau/tickets/sweeps.py) at the data set's "now", and the compliance report (sau/reports/compliance.py, one
year) — then each is explained. Prints the key lines of each plan (scans, sorts, times); `--full` prints
whole plans. Read-only (the sweep's queries are run, not the sweep).
"""
from __future__ import annotations

import argparse
import os
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

AGENTS = {"Métropole": "alice.dupont@grandlyon.example", "Écully": "etienne.roux@ville-ecully.example"}
KEY = re.compile(r"(Scan|Sort|Limit|Aggregate|Join|Loop|Execution Time|Planning Time|Rows Removed|Heap Fetches)")


def _capture(app: Any, fn: Any) -> list[tuple[str, Any]]:
    from sau.extensions import db

    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "tickets" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    return seen


def explain(app: Any, statement: str, parameters: Any) -> list[str]:
    from sau.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
        conn.rollback()
    return [r[0] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--now", default=None, help="ISO instant for the sweep (default: now)")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SAU_ENV", "production")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("OIDC_ISSUER", "https://moncompte.bench.invalid/")
    os.environ.setdefault("OIDC_CLIENT_ID", "bench")
    os.environ.setdefault("OIDC_CLIENT_SECRET", "bench")
    os.environ["DATABASE_URL"] = args.url
    from flask import session

    from sau import create_app
    from sau.auth.models import User
    from sau.auth.sessions import start_session
    from sau.extensions import db

    app = create_app()
    app.config["SESSION_COOKIE_SECURE"] = False
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    cases: list[tuple[str, str, Any]] = []

    for label, email in AGENTS.items():
        with app.test_request_context("/"):
            user = db.session.scalar(sa.select(User).where(User.email == email))
            start_session(user, issuer="https://moncompte.bench.invalid/")
            db.session.commit()
            cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))  # type: ignore[attr-defined]
            db.session.remove()
        for path in ("/agent/", "/agent/?tri=echeance"):
            client = app.test_client()
            client.set_cookie("session", cookie)

            def get(client: Any = client, path: str = path) -> None:
                response = client.get(path)
                assert response.status_code == 200, response.status_code

            for i, (stmt, params) in enumerate(_capture(app, get)):
                kind = "count" if "count(" in stmt.lower() else "page"
                cases.append((f"queue {label} {path} [{kind} {i}]", stmt, params))

    from sau.tickets import sweeps

    def due() -> None:
        with app.app_context():
            for kind in (sweeps.BREACHED, sweeps.AT_RISK):
                sweeps._due(kind, now, 5000)
            db.session.rollback()

    for i, (stmt, params) in enumerate(_capture(app, due)):
        cases.append((f"sweep _due [{'breached' if i == 0 else 'at_risk'}]", stmt, params))

    from sau.reports.compliance import compliance_by_commune

    def report() -> None:
        with app.app_context():
            compliance_by_commune(now=now, start=datetime(now.year, 1, 1, tzinfo=UTC), end=now)

    for stmt, params in _capture(app, report):
        cases.append(("compliance report, year to date", stmt, params))

    for name, stmt, params in cases:
        plan = explain(app, stmt, params)
        print(f"\n### {name}\n")
        if args.full:
            print(stmt.strip()[:2000])
        for line in plan:
            if args.full or KEY.search(line):
                print("    " + line)


if __name__ == "__main__":
    main()
