"""Benchmark of the SLA business calendar (``sla.BusinessCalendar``) against the brute-force oracle.

Run from the repository root:  .venv/bin/python bench/sla_calendar.py [--calls 200000] [--rounds 7]

Measures, on a warm calendar (years built, one untimed pass):

* ``add_business_time`` calls per second, random starts in 2024–2030 (Europe/Paris datetimes, and UTC ones as
  the database returns them), random business durations of 1 h to 40 h;
* ``business_time_between`` calls per second, random spans of 0 to 10 days;
* the minute-by-minute oracle of the tests (``tests/sla/oracle.py``) on a smaller sample, for scale.

Each figure is the best and the median of several rounds (the machine may be shared); the garbage collector is
off while timing, as in ``timeit``. Prints a Markdown table for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from bench.common import cpu_model

ROOT = Path(__file__).resolve().parents[1]

PARIS = ZoneInfo("Europe/Paris")
FIRST = datetime(2024, 1, 1, tzinfo=UTC)
SECONDS_IN_RANGE = int((datetime(2031, 1, 1, tzinfo=UTC) - FIRST).total_seconds())
TARGET_ADD_PER_SECOND = 250_000


def random_starts(
    rng: random.Random, count: int, zone: ZoneInfo | None, *, whole_minutes: bool = False
) -> list[datetime]:
    starts = []
    for _ in range(count):
        seconds = rng.randrange(SECONDS_IN_RANGE)
        if whole_minutes:
            seconds -= seconds % 60
        instant = FIRST + timedelta(seconds=seconds, microseconds=0 if whole_minutes else rng.randrange(1_000_000))
        starts.append(instant.astimezone(zone) if zone else instant)
    return starts


def random_durations(rng: random.Random, count: int) -> list[timedelta]:
    return [timedelta(minutes=rng.randint(60, 40 * 60)) for _ in range(count)]


class Rate(NamedTuple):
    best_cpu: float
    median_cpu: float
    best_wall: float


def rate(
    function: Callable[[datetime, timedelta], object],
    firsts: Sequence[datetime],
    seconds: Sequence[object],
    rounds: int,
) -> Rate:
    """Calls per second of ``function(first, second)`` over the pairs, per CPU second of this process (immune to
    other processes sharing the machine) and per wall-clock second: best and median of ``rounds``."""
    cpu_rates = []
    wall_rates = []
    for _ in range(rounds):
        gc.disable()
        try:
            wall_began, cpu_began = time.perf_counter(), time.process_time()
            for first, second in zip(firsts, seconds, strict=True):
                function(first, second)  # type: ignore[arg-type]
            cpu, wall = time.process_time() - cpu_began, time.perf_counter() - wall_began
        finally:
            gc.enable()
        cpu_rates.append(len(firsts) / cpu)
        wall_rates.append(len(firsts) / wall)
    return Rate(max(cpu_rates), statistics.median(cpu_rates), max(wall_rates))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per round for the engine")
    parser.add_argument("--oracle-calls", type=int, default=300, help="calls per round for the oracle")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    # Imported here, once the repository root is importable (the script runs with bench/ as its first path).
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sla import BusinessCalendar
    from tests.sla.oracle import OracleCalendar

    rng = random.Random(args.seed)
    calendar = BusinessCalendar(years=range(2023, 2033))
    durations = random_durations(rng, args.calls)
    paris_starts = random_starts(rng, args.calls, PARIS)
    utc_starts = random_starts(rng, args.calls, None)
    ends = [start + timedelta(seconds=rng.randrange(10 * 86_400)) for start in paris_starts]
    oracle = OracleCalendar()
    oracle_starts = random_starts(rng, args.oracle_calls, PARIS, whole_minutes=True)
    oracle_durations = durations[: args.oracle_calls]
    oracle_ends = [start + timedelta(minutes=rng.randrange(10 * 1440)) for start in oracle_starts]

    # Warm up: every year built, caches filled, code paths taken once.
    for start, duration, end in zip(paris_starts, durations, ends, strict=True):
        calendar.add_business_time(start, duration)
        calendar.business_time_between(start, end)
    oracle.add(oracle_starts[0], oracle_durations[0])

    rows = [
        (
            "add_business_time, Europe/Paris starts",
            rate(calendar.add_business_time, paris_starts, durations, args.rounds),
        ),
        ("add_business_time, UTC starts", rate(calendar.add_business_time, utc_starts, durations, args.rounds)),
        (
            "business_time_between, spans 0–10 days",
            rate(calendar.business_time_between, paris_starts, ends, args.rounds),
        ),
        ("oracle add (minute by minute)", rate(oracle.add, oracle_starts, oracle_durations, 3)),
        ("oracle between (minute by minute)", rate(oracle.between, oracle_starts, oracle_ends, 3)),
    ]

    print(f"machine: {cpu_model()}, {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs available")
    print(f"python: {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, seed {args.seed}, {args.calls:,} engine calls × {args.rounds} "
        f"rounds, {args.oracle_calls} oracle calls × 3 rounds, gc off while timing"
    )
    print()
    print("| operation | calls/s per CPU s (best) | per CPU s (median) | per wall s (best) |")
    print("|---|---:|---:|---:|")
    for name, result in rows:
        print(f"| {name} | {result.best_cpu:,.0f} | {result.median_cpu:,.0f} | {result.best_wall:,.0f} |")
    best = rows[0][1].best_cpu
    verdict = "meets" if best >= TARGET_ADD_PER_SECOND else "MISSES"
    print()
    print(f"add_business_time {verdict} the target of {TARGET_ADD_PER_SECOND:,} calls/s (best round, Paris starts).")


if __name__ == "__main__":
    main()
