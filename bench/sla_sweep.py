"""Benchmark: the SLA sweep (sau.tickets.sweeps.sweep) over ~100,000 open tickets on PostgreSQL.

    .venv/bin/python -m bench.sla_sweep                       # throwaway cluster, 1,000,000 tickets, 10 % open
    .venv/bin/python -m bench.sla_sweep --url postgresql+psycopg://…/sau [--copy]

With `--url`, the database must come from bench/datagen.py (`--open-share 0.1`: ~100,000 open tickets);
`--copy` works on a copy (CREATE DATABASE … TEMPLATE) so that the original keeps no sweep events. The
sweep writes (alerts, events, notifications), so it runs on the copy or on a database you can spare.

Measurements, in-process (the function the scheduler calls), clock set by argument:
1. catch-up: right after loading no alert has ever been recorded, so every open ticket whose at-risk or
   breach instant is past is due (tens of thousands, as after a long scheduler outage); one sweep with a
   batch of `--batch` tickets per kind gives the cost per alert (events, notifications, SLA recomputation);
2. the steady state: the remaining past-due tickets are then marked as already alerted in SQL (what the
   minute-by-minute sweeps would have recorded), and the sweep runs one minute later — the scheduler's
   normal tick over ~100,000 open tickets, the figure to hold under 1 s — then at 10:00 (Paris) on the next
   business morning (an hour of business time due at once), then with nothing new due (the query cost alone).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa


def cpu_index() -> float:
    """CPU time (ms) of a fixed pure-Python loop: shows how fast this shared machine runs at the moment
    (the same loop on the idle machine is recorded in bench/RESULTS.md)."""
    import timeit

    return min(timeit.repeat("sum(range(100000))", number=50, repeat=3)) / 50 * 1000


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--copy", action="store_true", help="sweep a copy of --url (CREATE DATABASE … TEMPLATE)")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="tickets per kind in the catch-up sweep")
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        from bench.datagen import generate
        from tests.support.pgcluster import PostgresCluster

        cluster = PostgresCluster(settings={"shared_buffers": "1GB", "fsync": "on", "synchronous_commit": "on",
                                            "full_page_writes": "on", "random_page_cost": "1.1"})
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

    # Settings passed explicitly too: config.py reads the environment when first imported (the data generator
    # may have imported it already).
    app = create_app("production", {"SQLALCHEMY_DATABASE_URI": url,
                                    "SECRET_KEY": os.environ["SECRET_KEY"], "OIDC_ISSUER": os.environ["OIDC_ISSUER"],
                                    "OIDC_CLIENT_ID": "bench", "OIDC_CLIENT_SECRET": "bench"})
    try:
        with app.app_context():
            open_count = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)
                                           .where(Ticket.status.in_(OPEN_STATUSES)))
            total = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))
            # "now" of the data set: the latest creation instant (datagen generates up to its own now).
            now = db.session.scalar(sa.select(sa.func.max(Ticket.created_at))).astimezone(UTC)
            now = max(now, datetime.now(UTC)) if args.url is None else now
            db.session.remove()
        print(f"{total} tickets, {open_count} open; sweeping at {now.isoformat()}; load average {loadavg()}; "
              f"CPU index {cpu_index():.1f} ms",
              flush=True)
        with app.app_context():
            load = loadavg()
            t = time.perf_counter()
            result = sweep(now, limit=args.batch)
            catch_up = time.perf_counter() - t
            db.session.remove()
            done = result.at_risk + result.breached
            print(f"catch-up sweep (batch {args.batch}): {result.breached} breached + {result.at_risk} at risk in "
                  f"{catch_up:.2f} s ({catch_up / max(done, 1) * 1000:.2f} ms per alert; load before {load})", flush=True)
            # What the minute-by-minute sweeps would have recorded: every past-due ticket already alerted.
            t = time.perf_counter()
            marked = 0
            for kind, column, op in (("breached", "sla_breach_at", "<"), ("at_risk", "sla_at_risk_at", "<=")):
                marked += db.session.execute(sa.text(
                    f"INSERT INTO sla_alerts (ticket_id, kind, deadline_at, created_at) "
                    f"SELECT id, :kind, sla_deadline_at, :now FROM tickets WHERE status IN "
                    f"('nouveau', 'en_cours', 'en_attente') AND sla_met IS NULL AND sla_paused IS false "
                    f"AND sla_deadline_at IS NOT NULL AND {column} {op} :now ON CONFLICT DO NOTHING"),
                    {"kind": kind, "now": now}).rowcount
            db.session.commit()
            db.session.execute(sa.text("ANALYZE sla_alerts"))
            db.session.commit()
            print(f"marked {marked} past-due alerts as recorded in {time.perf_counter() - t:.1f} s", flush=True)
            ticks = {}
            # The next business morning at 10:00 Paris: an hour of business time has run since the opening. Counted
            # from the next day's midnight: a "now" inside business hours would otherwise give this morning, past.
            from sau.tickets.sla import calendar

            cal = calendar()
            midnight = datetime.combine(now.astimezone(cal.tz).date() + timedelta(days=1), datetime.min.time(), cal.tz)
            opening = cal.add_business_time(midnight, timedelta(0))
            morning = opening.replace(hour=10, minute=0, second=0, microsecond=0)
            for label, at in (("1 minute later", now + timedelta(minutes=1)),
                              (f"at {morning:%a %H:%M} Paris, 1 business hour after opening", morning)):
                if at == morning:
                    # What the minute-by-minute ticks record until the opening (the rest of a business day when
                    # "now" falls inside one), so that the morning tick meets one business hour of deadlines.
                    t = time.perf_counter()
                    result = sweep(opening)
                    db.session.remove()
                    print(f"sweep up to the opening ({opening:%a %H:%M} Paris, untimed tick): {result.breached} "
                          f"breached + {result.at_risk} at risk in {time.perf_counter() - t:.1f} s", flush=True)
                load = loadavg()
                t = time.perf_counter()
                result = sweep(at)
                elapsed = time.perf_counter() - t
                db.session.remove()
                ticks[label] = (elapsed, result.breached, result.at_risk, load)
                print(f"tick {label}: {result.breached} breached + {result.at_risk} at risk in "
                      f"{elapsed * 1000:.0f} ms (load average before {load})", flush=True)
            idle = []
            for _ in range(5):
                t = time.perf_counter()
                sweep(morning)
                idle.append(time.perf_counter() - t)
                db.session.remove()
        print("\n| measurement | alerts recorded | time |\n|---|---:|---:|")
        print(f"| catch-up sweep, batch of {args.batch} per kind | {done} | {catch_up:.2f} s "
              f"({catch_up / max(done, 1) * 1000:.1f} ms per alert) |")
        for label, (elapsed, b, r, _load) in ticks.items():
            print(f"| tick {label} ({open_count} open tickets) | {b + r} | {elapsed * 1000:.0f} ms |")
        print(f"| tick with nothing new due, median of 5 | 0 | {statistics.median(idle) * 1000:.1f} ms |")
        print(f"\n{total} tickets, {open_count} open; load average after {loadavg()}")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
