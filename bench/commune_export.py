"""Benchmark: a commune's full export (sau/privacy/commune_export.py) stays in bounded memory as the commune grows.

    .venv/bin/python -m bench.commune_export [--big 100000] [--small 10000]

Starts a throwaway PostgreSQL cluster (tests/support/pgcluster.py), migrates it and loads the demo reference data
(bench/datagen.setup_schema), then bulk-loads with COPY one commune with `--small` tickets (Tassin, 69244), one
with `--big` tickets (Écully, 69081) and a third commune as noise (Villeurbanne, 69266), each ticket with 4 events,
about 1.5 comments and 1 notification (outbox row), plus attachment files on disk (1 ticket in 500).

Each export runs in a fresh Python process (`--child`): its RSS is read after the app is created and a first
query ran, then its peak RSS (VmHWM of /proc/self/status, reset just before the export; `resource.getrusage`'s
ru_maxrss is printed too but on Linux it keeps the parent's peak across fork+exec) after the export; a second
child run measures the Python heap's peak with `tracemalloc` (slower, so its duration is not used; `--no-trace`
skips it).
The figures and a Markdown table are printed for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import copy_row, cpu_model
from bench.datagen import setup_schema
from tests.support.pgcluster import PostgresCluster

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COMMUNES = {"69081": "big", "69244": "small", "69266": "noise"}
TICKET_COLUMNS = ("id", "reference", "kind", "service_id", "commune_id", "organisation_id", "level", "routing_reason",
                  "needs_triage", "subject", "description", "requester_email", "status", "priority", "created_at",
                  "updated_at", "sla_paused", "version")
EVENT_COLUMNS = ("ticket_id", "type", "at", "actor_label", "is_public", "data")
COMMENT_COLUMNS = ("ticket_id", "author_label", "is_internal", "is_from_requester", "body", "created_at")
NOTIFICATION_COLUMNS = ("idempotency_key", "channel", "kind", "event_type", "email", "ticket_id", "subject", "payload",
                        "status", "attempts", "next_attempt_at", "created_at", "sent_at")
ATTACHMENT_COLUMNS = ("ticket_id", "filename", "content_type", "size", "sha256", "storage_key", "is_internal",
                      "created_at")


def _row(*values: Any) -> str:
    return copy_row(values)


def generate(url: str, counts: dict[str, int], attachments_dir: Path) -> dict[str, int]:
    """Bulk-load the tickets of each commune (code -> number of tickets) with COPY."""
    import hashlib

    import sqlalchemy as sa

    app = setup_schema(url)
    from sau.extensions import db

    totals = {"tickets": 0, "events": 0, "comments": 0, "notifications": 0, "attachments": 0}
    with app.app_context():
        orgs = dict(db.session.execute(sa.text("SELECT code, id FROM organisations")).all())
        service = db.session.execute(sa.text("SELECT id FROM services WHERE code = 'toodego'")).scalar_one()
        conn = db.engine.raw_connection()
        cur = conn.cursor()
        tid = 0
        for code, n in counts.items():
            org = orgs[code]
            bufs = {k: io.StringIO() for k in ("tickets", "ticket_events", "comments", "notifications", "attachments")}

            def flush(bufs: dict[str, io.StringIO] = bufs) -> None:
                for table, columns in (("tickets", TICKET_COLUMNS), ("ticket_events", EVENT_COLUMNS),
                                       ("comments", COMMENT_COLUMNS), ("notifications", NOTIFICATION_COLUMNS),
                                       ("attachments", ATTACHMENT_COLUMNS)):
                    buf = bufs[table]
                    if buf.tell():
                        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                            copy.write(buf.getvalue())
                    buf.seek(0)
                    buf.truncate()
                conn.commit()

            for i in range(n):
                tid += 1
                created = NOW - timedelta(minutes=7 * (n - i))
                email = f"usager{tid}@example.org"
                bufs["tickets"].write(_row(
                    tid, f"SAU-B{code}-{i:07d}", "demande", service, org, org, 1, "Règle de démonstration", False,
                    f"Demande {tid} de {code}", "Description générée pour la mesure de l'export, avec un peu de "
                    "texte pour ressembler à une vraie demande d'aide sur une démarche en ligne.", email,
                    "clos", "majeur", created, created + timedelta(hours=30), False, 1))
                for k, (etype, public) in enumerate((("ticket.created", True), ("ticket.routed", False),
                                                     ("priority.set", False), ("ticket.resolved", True))):
                    bufs["ticket_events"].write(_row(tid, etype, created + timedelta(hours=k), "Générateur", public,
                                                     json.dumps({"before": None, "after": k})))
                for c in range(1 + (i % 2)):
                    bufs["comments"].write(_row(tid, "Agent de démonstration", c == 1, False,
                                                "Bonjour, nous avons transmis votre demande au service compétent.",
                                                created + timedelta(hours=2 + c)))
                    totals["comments"] += 1
                bufs["notifications"].write(_row(
                    secrets.token_hex(16), "email", "request_received", "ticket.created", email, tid,
                    f"Votre demande SAU-B{code}-{i:07d} est enregistrée", json.dumps({"reference": tid}), "sent", 1,
                    created, created, created + timedelta(seconds=30)))
                if i % 500 == 0:
                    data = (f"Pièce jointe du ticket {tid}\n" * 300).encode()
                    key = secrets.token_hex(16)
                    (attachments_dir / key).write_bytes(data)
                    bufs["attachments"].write(_row(tid, f"piece-{tid}.txt", "text/plain", len(data),
                                                   hashlib.sha256(data).hexdigest(), key, False, created))
                    totals["attachments"] += 1
                totals["tickets"] += 1
                totals["events"] += 4
                totals["notifications"] += 1
                if (i + 1) % 20_000 == 0:
                    flush()
            flush()
        cur.execute(f"SELECT setval(pg_get_serial_sequence('tickets', 'id'), {tid})")
        conn.commit()
        raw = conn.driver_connection
        raw.autocommit = True
        raw.execute("VACUUM ANALYZE")
        conn.close()
    return totals


def _status_kb(field: str) -> int | None:
    """A memory figure of this process from /proc/self/status (Linux), in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(url: str, code: str, out: str, attachments_dir: str, trace: bool) -> None:
    """One export in this process; prints a JSON line with its figures."""
    import sqlalchemy as sa

    from sau import create_app
    from sau.extensions import db
    from sau.orgs.models import Organisation
    from sau.privacy.commune_export import write_export_to_path

    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url, "ATTACHMENTS_DIR": attachments_dir})
    with app.app_context():
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == code))
        assert org is not None
        # ru_maxrss survives fork+exec on Linux (it would report the parent's peak), so the peak is read from
        # /proc/self/status (VmHWM), reset to the current RSS just before the export.
        baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_before_kb = _status_kb("VmRSS")
        hwm_reset = _reset_peak_rss()
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        result = write_export_to_path(org, Path(out), NOW)
        seconds = time.perf_counter() - t0
        traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm_kb = _status_kb("VmHWM")
    print(json.dumps({"code": code, "counts": result.counts, "seconds": seconds, "baseline_kb": baseline_kb,
                      "peak_kb": peak_kb, "rss_before_kb": rss_before_kb, "hwm_kb": hwm_kb, "hwm_reset": hwm_reset,
                      "traced_peak_bytes": traced_peak, "zip_bytes": os.path.getsize(out)}))


def _run_child(url: str, code: str, out: Path, attachments_dir: Path, trace: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.commune_export", "--child", url, code, str(out), str(attachments_dir)]
    if trace:
        cmd.append("--trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], "--trace" in sys.argv)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--noise", type=int, default=5_000)
    parser.add_argument("--no-trace", action="store_true", help="skip the (slow) tracemalloc runs")
    args = parser.parse_args()
    with PostgresCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        url = cluster.url
        attachments_dir = Path(tmp) / "attachments"
        attachments_dir.mkdir()
        t0 = time.perf_counter()
        totals = generate(url, {"69244": args.small, "69081": args.big, "69266": args.noise}, attachments_dir)
        print(f"generated in {time.perf_counter() - t0:.1f} s: {totals}", flush=True)
        rows = []
        for code, n in (("69244", args.small), ("69081", args.big)):
            out = Path(tmp) / f"export-{code}.zip"
            plain = _run_child(url, code, out, attachments_dir, trace=False)
            traced = None if args.no_trace else _run_child(url, code, out, attachments_dir, trace=True)
            assert plain["counts"]["tickets"] == n, plain["counts"]
            rows.append((n, plain, traced))
            print(json.dumps({"plain": plain, "traced": traced}), flush=True)
        load = os.getloadavg()
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, PostgreSQL "
          f"(throwaway cluster); load average after the runs {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| tickets | rows written (JSONL) | ZIP size | duration | rows/s | RSS before | peak RSS during export "
          "(VmHWM) | growth | Python heap peak (tracemalloc) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, plain, traced in rows:
        written = sum(plain["counts"].values())
        heap = f"{traced['traced_peak_bytes'] / 2**20:.1f} MiB" if traced else "not measured"
        print(f"| {n:,} | {written:,} | {plain['zip_bytes'] / 1e6:.1f} MB | {plain['seconds']:.1f} s "
              f"| {written / plain['seconds']:,.0f} | {plain['rss_before_kb'] / 1024:.1f} MiB "
              f"| {plain['hwm_kb'] / 1024:.1f} MiB | {(plain['hwm_kb'] - plain['rss_before_kb']) / 1024:.1f} MiB "
              f"| {heap} |")


if __name__ == "__main__":
    main()
