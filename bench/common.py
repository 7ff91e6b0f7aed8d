"""What the benchmarks share: the machine's CPU model for the results, PostgreSQL COPY text encoding, and the
1,000,000-ticket setup (arguments, a throwaway cluster filled by bench/datagen.py)."""
from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# The data set's "now": what the report benches generate around and freeze the app's clock at.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def copy_value(value: Any) -> str:
    """One value in PostgreSQL COPY text format (\\N for NULL, t/f, ISO datetimes, escaped tabs and newlines)."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_row(values: tuple[Any, ...]) -> str:
    return "\t".join(copy_value(v) for v in values) + "\n"


def ticket_bench_args(runs: int) -> argparse.Namespace:
    """--tickets (default 1,000,000) and --runs (default `runs`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=runs)
    return parser.parse_args()


@contextmanager
def generated_cluster(tickets: int, now: datetime = NOW) -> Iterator[str]:
    """A throwaway PostgreSQL cluster holding `tickets` tickets over 24 months (bench/datagen.py, seed 7, no
    events); yields its URL."""
    from bench.datagen import generate
    from tests.support.pgcluster import PostgresCluster

    with PostgresCluster() as cluster:
        t0 = time.perf_counter()
        info = generate(cluster.url, tickets, 24, seed=7, now=now, with_events=False)
        print(f"generated {tickets} tickets in {time.perf_counter() - t0:.1f} s ({info})", flush=True)
        yield cluster.url
