"""Benchmark: the SLA compliance query (per commune, SQL) over 1,000,000 tickets on PostgreSQL.

    .venv/bin/python -m bench.compliance_query [--tickets 1000000]

Starts a throwaway PostgreSQL cluster (tests/support/pgcluster.py), fills it with bench/datagen.py, then times
`sau.reports.compliance.compliance_by_commune` for several periods and filters (median of 7 runs, after one
warm-up), prints the EXPLAIN of the heaviest one and a Markdown table for bench/RESULTS.md.
"""
from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.common import NOW, cpu_model, generated_cluster, ticket_bench_args

PARIS = ZoneInfo("Europe/Paris")


def main() -> None:
    args = ticket_bench_args(runs=7)
    now = NOW
    with generated_cluster(args.tickets, now) as url:
        from sau import create_app
        from sau.extensions import db
        from sau.reports.compliance import compliance_by_commune

        app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
        month = (datetime(2026, 10, 1, tzinfo=PARIS), datetime(2026, 11, 1, tzinfo=PARIS))
        cases = {
            "month (2026-10)": {"start": month[0], "end": month[1]},
            "quarter (2026-T3)": {"start": datetime(2026, 7, 1, tzinfo=PARIS),
                                  "end": datetime(2026, 10, 1, tzinfo=PARIS)},
            "year (2026)": {"start": datetime(2026, 1, 1, tzinfo=PARIS), "end": datetime(2027, 1, 1, tzinfo=PARIS)},
            "24 months": {"start": now - timedelta(days=731), "end": now + timedelta(days=1)},
            "year, service toodego": {"start": datetime(2026, 1, 1, tzinfo=PARIS),
                                      "end": datetime(2027, 1, 1, tzinfo=PARIS), "service": "toodego"},
            "year, one commune": {"start": datetime(2026, 1, 1, tzinfo=PARIS),
                                  "end": datetime(2027, 1, 1, tzinfo=PARIS), "communes": "one"},
        }
        rows = []
        with app.app_context():
            one = db.session.execute(sa.text("SELECT id FROM organisations WHERE code = '69081'")).scalar_one()
            for name, params in cases.items():
                kwargs = dict(params)
                if kwargs.get("communes") == "one":
                    kwargs["communes"] = {one}
                compliance_by_commune(now=now, **kwargs)  # warm-up
                timings = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    result = compliance_by_commune(now=now, **kwargs)
                    timings.append((time.perf_counter() - t) * 1000)
                    db.session.remove()
                committed = sum(r.figures.committed for r in result)
                rows.append((name, committed, statistics.median(timings), max(timings)))
                print(f"{name:28s} committed={committed:8d} median={statistics.median(timings):8.1f} ms "
                      f"max={max(timings):8.1f} ms")
            explain = db.session.execute(sa.text(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT commune_id, count(*), sum(CASE WHEN sla_met THEN 1 ELSE 0 END) "
                "FROM tickets WHERE commune_id IS NOT NULL AND priority IN ('bloquant','majeur') "
                "AND sla_state <> 'sans_engagement' AND sla_deadline_at >= :s AND sla_deadline_at < :e "
                "GROUP BY commune_id"), {"s": now - timedelta(days=731), "e": now}).all()
            print("\n".join(r[0] for r in explain))
    print(f"\nMachine: {cpu_model()}, {platform.python_version()}, {args.tickets} tickets, PostgreSQL")
    print("| query | committed tickets | median (ms) | max (ms) |\n|---|---|---|---|")
    for name, committed, median, worst in rows:
        print(f"| {name} | {committed} | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
