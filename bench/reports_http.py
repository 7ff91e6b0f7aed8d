"""Benchmark: the SLA compliance dashboard and its exports served over HTTP, 1,000,000 tickets on PostgreSQL.

    .venv/bin/python -m bench.reports_http [--tickets 1000000] [--runs 7]

Starts a throwaway PostgreSQL cluster (tests/support/pgcluster.py), fills it with bench/datagen.py (58 communes
weighted by population, 24 months, SLA fields from the pure engine), then serves the app with Werkzeug on a
local port and times full HTTP requests (urllib, body read to the end) signed in as the Métropole's manager:
the dashboard (default period = the current month, then a 24-month custom period), the CSV and XLSX exports, the
trend export, the annual report. Median and max of `--runs` requests after one warm-up. The app's clock is
frozen at the data set's "now" (2026-11-20 12:00 UTC).
"""
from __future__ import annotations

import http.cookiejar
import logging
import os
import statistics
import threading
import time
import urllib.request

from werkzeug.serving import make_server

from bench.common import NOW, cpu_model, generated_cluster, ticket_bench_args

MANAGER = "manon.girard@grandlyon.example"


def main() -> None:
    args = ticket_bench_args(runs=7)
    now = NOW
    with generated_cluster(args.tickets, now) as url:

        import sqlalchemy as sa

        from sau import create_app
        from sau.auth.models import User
        from sau.clock import FrozenClock
        from sau.extensions import db

        app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
        app.extensions["sau_clock"] = FrozenClock(now)

        @app.get("/_bench/login")
        def _bench_login() -> str:  # bench only: sign the Métropole's manager in, as the tests do
            from flask_login import login_user
            login_user(db.session.scalar(sa.select(User).where(User.email == MANAGER)))
            return "ok"

        with app.app_context():
            tickets = db.session.scalar(sa.text("SELECT count(*) FROM tickets"))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.open(f"{base}/_bench/login").read()
        cases = [
            ("dashboard, default period (2026-11)", "/rapports/sla"),
            ("dashboard, month 2026-10", "/rapports/sla?period=2026-10"),
            ("dashboard, 24 months", "/rapports/sla?start=2024-11-01&end=2026-11-20"),
            ("dashboard, 24 months, service toodego", "/rapports/sla?start=2024-11-01&end=2026-11-20&service=toodego"),
            ("CSV export, default period", "/rapports/sla.csv"),
            ("CSV export, 24 months", "/rapports/sla.csv?start=2024-11-01&end=2026-11-20"),
            ("XLSX export, 24 months", "/rapports/sla.xlsx?start=2024-11-01&end=2026-11-20"),
            ("trend CSV (58 × 12 months), 2026-10", "/rapports/sla/tendance.csv?period=2026-10"),
            ("annual report 2026 (58 communes)", "/rapports/annuel?annee=2026"),
        ]
        results = []
        for name, path in cases:
            def fetch(path: str = path) -> tuple[int, int]:
                with opener.open(base + path) as response:
                    return response.status, len(response.read())

            status, size = fetch()  # warm-up
            assert status == 200, (path, status)
            timings = []
            for _ in range(args.runs):
                t = time.perf_counter()
                fetch()
                timings.append((time.perf_counter() - t) * 1000)
            results.append((name, path, size, statistics.median(timings), max(timings)))
            print(f"{name:44s} {size:8d} B median={statistics.median(timings):7.1f} ms max={max(timings):7.1f} ms",
                  flush=True)
        server.shutdown()
    load = os.getloadavg()
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} CPUs, {tickets} tickets, PostgreSQL; "
          f"load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| request | response size | median (ms) | max (ms) |\n|---|---:|---:|---:|")
    for name, path, size, median, worst in results:
        print(f"| {name} (`{path}`) | {size:,} B | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
