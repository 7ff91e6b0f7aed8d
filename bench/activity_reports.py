"""Benchmark: the workload/speed report, the availability report and the open-data rebuild over 1,000,000
tickets on PostgreSQL.

    .venv/bin/python -m bench.activity_reports [--tickets 1000000] [--runs 3]

Starts a throwaway PostgreSQL cluster (tests/support/pgcluster.py), fills it with bench/datagen.py (24 months,
58 communes), then times `sau.reports.workload` (open tickets by age, business-hour speed per group, monthly
volumes), `sau.reports.availability_report` and `sau.reports.opendata.refresh` (median and max of `--runs` runs
after one warm-up; the open-data rebuild once), with the peak memory of the process, and prints a Markdown
table for bench/RESULTS.md.
"""
from __future__ import annotations

import platform
import resource
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import NOW, cpu_model, generated_cluster, ticket_bench_args

PARIS = ZoneInfo("Europe/Paris")


def _timed(fn: Callable[[], Any], runs: int, cleanup: Callable[[], None]) -> tuple[Any, float, float]:
    fn()  # warm-up
    cleanup()
    timings = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        timings.append((time.perf_counter() - t) * 1000)
        cleanup()
    return result, statistics.median(timings), max(timings)


def main() -> None:
    args = ticket_bench_args(runs=3)
    now = NOW
    with generated_cluster(args.tickets, now) as url:
        from sau import create_app
        from sau.extensions import db
        from sau.reports import opendata, workload
        from sau.reports.availability_report import availability_report, last_months

        app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
        month = (datetime(2026, 10, 1, tzinfo=PARIS), datetime(2026, 11, 1, tzinfo=PARIS))
        year = (datetime(2026, 1, 1, tzinfo=PARIS), datetime(2027, 1, 1, tzinfo=PARIS))
        quarter = (datetime(2026, 7, 1, tzinfo=PARIS), datetime(2026, 10, 1, tzinfo=PARIS))
        rows = []
        with app.app_context():
            one = db.session.execute(db.text("SELECT id FROM organisations WHERE code = '69081'")).scalar_one()
            cases: dict[str, Callable[[], Any]] = {
                "open tickets by age (all)": lambda: workload.open_by_age(now),
                "speed, month (2026-10)": lambda: workload.speed(*month),
                "speed, quarter (2026-T3)": lambda: workload.speed(*quarter),
                "speed, year (2026)": lambda: workload.speed(*year),
                "speed, year, one commune": lambda: workload.speed(*year, communes={one}),
                "volumes, year (2026)": lambda: workload.volumes(*year),
                "availability, 12 months": lambda: availability_report(last_months(now), now, partial_weight=0.5),
            }
            for name, fn in cases.items():
                result, median, worst = _timed(fn, args.runs, db.session.remove)
                size = ""
                if isinstance(result, workload.SpeedReport):
                    size = f"{result.overall.first_response.count:,} first answers, {result.overall.resolution.count:,} resolutions"
                elif isinstance(result, workload.AgeTable):
                    size = f"{result.total:,} open tickets"
                elif isinstance(result, workload.VolumeTable):
                    size = f"{result.total:,} tickets"
                rows.append((name, size, median, worst))
                print(f"{name:32s} {size:45s} median={median:9.1f} ms max={worst:9.1f} ms")
            t = time.perf_counter()
            counts = opendata.refresh(now, months=24)
            db.session.commit()
            elapsed = (time.perf_counter() - t) * 1000
            rows.append(("open-data rebuild, 24 months", ", ".join(f"{v:,} rows {k}" for k, v in counts.items()),
                         elapsed, elapsed))
            print(f"open-data rebuild: {counts} in {elapsed:.0f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nMachine: {cpu_model()}, {platform.python_version()}, {args.tickets} tickets, PostgreSQL; "
          f"peak RSS of the process {peak:.0f} MB")
    print("| report | rows | median (ms) | max (ms) |\n|---|---|---:|---:|")
    for name, size, median, worst in rows:
        print(f"| {name} | {size} | {median:,.0f} | {worst:,.0f} |")


if __name__ == "__main__":
    main()
