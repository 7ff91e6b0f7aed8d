"""Benchmark: the SLA sweep (sau.tickets.sweeps.sweep) over ~100,000 open tickets on PostgreSQL.

    .venv/bin/python -m bench.sla_sweep                       # throwaway cluster, 1,000,000 tickets, 10 % open
    .venv/bin/python -m bench.sla_sweep --url postgresql+psycopg://…/sau [--copy]

With `--url`, the database must come from bench/datagen.py (`--open-share 0.1`: ~100,000 open tickets);
`--copy` works on a copy (CREATE DATABASE … TEMPLATE) so that the original keeps no sweep events. The
sweep writes (alerts, events, notifications), so it runs on the copy or on a database you can spare.

Three measurements, in-process (the function the scheduler calls), clock set by argument:
1. catch-up: right after loading, no alert has ever been recorded, so every open ticket whose at-risk or
   breach instant is past is due (tens of thousands); successive sweeps (up to 5,000 breached + 5,000 at risk
   each, the sweep's own batch limit) until nothing is left: time per sweep and per alert;
2. the steady state: then a sweep one minute later, the scheduler's normal tick (only what became due in
   that minute) — the figure to hold under 1 s;
3. the same tick with a whole hour due.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--copy", action="store_true", help="sweep a copy of --url (CREATE DATABASE … TEMPLATE)")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--max-rounds", type=int, default=40)
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        from bench.datagen import generate
        from tests.support.pgcluster import PostgresCluster

        cluster = PostgresCluster(settings={"shared_buffers": "1GB", "fsync": "on", "synchronous_commit": "on",
                                            "full_page_writes": "on"})
        url = cluster.start()
        print(generate(url, args.tickets, 24, seed=7, open_share=0.1), flush=True)
    elif args.copy:
        base, name = url.rsplit("/", 1)
        copy = f"{name}_sweep_copy"
        engine = sa.create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {copy}")
            t = time.perf_counter()
            conn.exec_driver_sql(f"CREATE DATABASE {copy} TEMPLATE {name}")
            print(f"copied {name} to {copy} in {time.perf_counter() - t:.1f} s", flush=True)
        engine.dispose()
        url = f"{base}/{copy}"
    os.environ.update({"SAU_ENV": "production", "DATABASE_URL": url,
                       "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
                       "OIDC_ISSUER": "https://moncompte.bench.invalid/", "OIDC_CLIENT_ID": "bench",
                       "OIDC_CLIENT_SECRET": "bench", "LOG_LEVEL": "WARNING"})
    from sau import create_app
    from sau.extensions import db
    from sau.tickets.models import OPEN_STATUSES, Ticket
    from sau.tickets.sweeps import sweep

    app = create_app()
    try:
        with app.app_context():
            open_count = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)
                                           .where(Ticket.status.in_(OPEN_STATUSES)))
            total = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))
            # "now" of the data set: the latest creation instant (datagen generates up to its own now).
            now = db.session.scalar(sa.select(sa.func.max(Ticket.created_at))).astimezone(UTC)
            now = max(now, datetime.now(UTC)) if args.url is None else now
            db.session.remove()
        print(f"{total} tickets, {open_count} open; sweeping at {now.isoformat()}; load average {loadavg()}",
              flush=True)
        rounds = []
        with app.app_context():
            for _ in range(args.max_rounds):
                t = time.perf_counter()
                result = sweep(now)
                elapsed = time.perf_counter() - t
                db.session.remove()
                done = result.at_risk + result.breached
                rounds.append((elapsed, done))
                print(f"catch-up sweep: {result.breached} breached + {result.at_risk} at risk in {elapsed:.2f} s "
                      f"({elapsed / done * 1000 if done else 0:.2f} ms per alert)", flush=True)
                if done == 0:
                    break
            ticks = {}
            for label, delta in (("1 minute later", timedelta(minutes=1)), ("1 hour later", timedelta(hours=1))):
                load = loadavg()
                t = time.perf_counter()
                result = sweep(now + delta)
                elapsed = time.perf_counter() - t
                db.session.remove()
                ticks[label] = (elapsed, result.breached, result.at_risk, load)
                print(f"tick {label}: {result.breached} breached + {result.at_risk} at risk in "
                      f"{elapsed * 1000:.0f} ms (load average before {load})", flush=True)
            # An idle tick: nothing new due (the query cost alone over the open tickets).
            idle = []
            for _ in range(5):
                t = time.perf_counter()
                sweep(now + timedelta(hours=1))
                idle.append(time.perf_counter() - t)
                db.session.remove()
        busy = [(e, d) for e, d in rounds if d]
        alerts = sum(d for _, d in busy)
        print("\n| measurement | alerts recorded | time |\n|---|---:|---:|")
        if busy:
            print(f"| catch-up, {len(busy)} sweeps (batches of ≤ 5,000 + 5,000) | {alerts} | "
                  f"{sum(e for e, _ in busy):.1f} s total, {sum(e for e, _ in busy) / alerts * 1000:.2f} ms per alert |")
            print(f"| catch-up, first sweep | {busy[0][1]} | {busy[0][0]:.2f} s |")
        for label, (elapsed, b, r, _load) in ticks.items():
            print(f"| tick {label} | {b + r} | {elapsed * 1000:.0f} ms |")
        print(f"| idle tick (nothing due), median of 5 | 0 | {statistics.median(idle) * 1000:.1f} ms |")
        print(f"\n{total} tickets, {open_count} open; load average after {loadavg()}")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
