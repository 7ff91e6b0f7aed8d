"""Realistic volumes for benchmarks: the 58 communes of the Métropole weighted by population, 4 services,
N tickets over M months with their events and comments (agents' public replies, internal notes, requesters'
replies, each with its `comment.*` / `requester.replied` event), SLA fields computed by the pure engine (as the
app stores them).

    .venv/bin/python -m bench.datagen postgresql+psycopg://…/db --tickets 1000000 --months 24 [--open-share 0.1]

`--open-share`: about that share of the tickets is still open (the most recent ones; 0.1 → ~100,000 open tickets
out of 1,000,000, the SLA sweep benchmark's volume).

Bulk-loaded with PostgreSQL COPY (the schema comes from the migrations, the reference data from demo.json).
"""
from __future__ import annotations

import argparse
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import copy_row as _row
from sla import BusinessCalendar, SlaEvent, SlaPolicy, compute_sla

SERVICES = ("toodego", "laclasse", "grandlyon-connect", "data-grandlyon")
SERVICE_WEIGHTS = (0.55, 0.2, 0.2, 0.05)
PRIORITIES = ("bloquant", "majeur", "mineur", None)
PRIORITY_WEIGHTS = (0.1, 0.3, 0.4, 0.2)
TICKET_COLUMNS = (
    "id", "reference", "kind", "service_id", "commune_id", "organisation_id", "level", "routing_reason",
    "needs_triage", "subject", "description", "requester_email", "status", "priority", "created_at", "updated_at",
    "first_response_at", "resolved_at", "closed_at", "priority_set_at", "sla_deadline_at", "sla_at_risk_at",
    "sla_breach_at", "sla_state", "sla_met", "sla_paused", "version", "first_response_business_seconds",
    "resolution_business_seconds",
)
EVENT_COLUMNS = ("ticket_id", "type", "at", "actor_label", "is_public", "data")
COMMENT_COLUMNS = ("id", "ticket_id", "author_label", "is_internal", "is_from_requester", "body", "created_at")
COMMENT_BODIES = (
    "Bonjour, pouvez-vous préciser la page concernée et joindre une capture d'écran ?",
    "Nous avons transmis votre demande au service compétent.",
    "Le problème venait d'un paramétrage du compte ; il est corrigé.",
    "Merci, cela fonctionne à nouveau de mon côté.",
    "Voici la capture demandée, l'erreur apparaît après validation du formulaire.",
)


def setup_schema(url: str) -> Any:
    from flask_migrate import upgrade

    from sau import create_app
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.orgs.loader import DEMO_FILE, load_file

    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        load_file(DEMO_FILE, now_utc())
        db.session.commit()
    return app


def generate(url: str, tickets: int, months: int, seed: int = 1, now: datetime | None = None,
             with_events: bool = True, open_share: float = 0.03) -> dict[str, float]:
    """Fill the database; returns timings. `open_share`: share of tickets still open (recent ones)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    app = setup_schema(url)
    from sau.extensions import db

    started = time.perf_counter()
    with app.app_context():
        conn = db.engine.raw_connection()
        communes = [(r[0], r[1] or 1) for r in db.session.execute(
            sa.text("SELECT id, population FROM organisations WHERE kind = 'commune' ORDER BY code"))]
        metropole = db.session.execute(sa.text("SELECT id FROM organisations WHERE kind = 'metropole'")).scalar_one()
        services = dict(db.session.execute(sa.text("SELECT code, id FROM services")).all())
        start_id = (db.session.execute(sa.text("SELECT coalesce(max(id), 0) FROM tickets")).scalar_one()) + 1
        comment_id = (db.session.execute(sa.text("SELECT coalesce(max(id), 0) FROM comments")).scalar_one()) + 1
    commune_ids = [c[0] for c in communes]
    weights = [c[1] for c in communes]
    cal = BusinessCalendar()
    policy = SlaPolicy()
    span = timedelta(days=30.44 * months)
    origin = now - span
    counters: dict[int, int] = {}
    tbuf, ebuf, cbuf = io.StringIO(), io.StringIO(), io.StringIO()
    n_events = n_comments = 0
    cur = conn.cursor()

    def flush() -> None:
        with cur.copy(f"COPY tickets ({', '.join(TICKET_COLUMNS)}) FROM STDIN") as copy:
            copy.write(tbuf.getvalue())
        if with_events:
            with cur.copy(f"COPY comments ({', '.join(COMMENT_COLUMNS)}) FROM STDIN") as copy:
                copy.write(cbuf.getvalue())
            with cur.copy(f"COPY ticket_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                copy.write(ebuf.getvalue())
        conn.commit()
        for buf in (tbuf, ebuf, cbuf):
            buf.seek(0)
            buf.truncate()

    times = sorted(origin + span * rng.random() for _ in range(tickets))
    for i, created in enumerate(times):
        tid = start_id + i
        commune = rng.choices(commune_ids, weights)[0]
        service = rng.choices(SERVICES, SERVICE_WEIGHTS)[0]
        priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
        year = created.year
        counters[year] = counters.get(year, 0) + 1
        reference = f"SAU-{year}-{counters[year]:06d}"
        events = [("ticket.created", created, {}), ("ticket.routed", created, {})]
        sla_events = []
        priority_at = None
        if priority:
            priority_at = cal.add_business_time(created, timedelta(minutes=rng.randint(5, 240)))
            events.append(("priority.set", priority_at, {"before": None, "after": priority}))
            sla_events.append(SlaEvent(priority_at, "priority_set", priority))
        is_open = (now - created) < span * open_share * 2 and rng.random() < 0.5
        resolved_at = None
        if not is_open:
            base = priority_at or created
            # Mostly within the target, sometimes late: about 96 % met for committed tickets.
            hours = rng.expovariate(1 / 5) if rng.random() < 0.96 else rng.uniform(8, 60)
            if priority == "majeur":
                hours *= 2.5
            resolved_at = cal.add_business_time(base, timedelta(hours=hours))
            if resolved_at > now:
                resolved_at = None
        # Taken in charge by an agent a little after triage (most tickets), then a few comments.
        first_touch = priority_at or created
        limit_at = resolved_at or now
        taken_in_charge = rng.random() < 0.8 and first_touch < limit_at
        if taken_in_charge:
            taken = min(limit_at, first_touch + timedelta(minutes=rng.randint(1, 120)))
            events.append(("ticket.assigned", taken, {"before": None, "after": "Agent de démonstration"}, False))
            events.append(("status.changed", taken, {"before": "nouveau", "after": "en_cours"}))
        for _ in range(rng.choices((0, 1, 2, 3), (0.45, 0.3, 0.15, 0.1))[0]):
            at = first_touch + (limit_at - first_touch) * rng.random()
            kind = rng.choices(("comment.public", "comment.internal", "requester.replied"), (0.5, 0.2, 0.3))[0]
            internal = kind == "comment.internal"
            cbuf.write(_row((comment_id, tid, "Usager" if kind == "requester.replied" else "Agent de démonstration",
                             internal, kind == "requester.replied", rng.choice(COMMENT_BODIES), at)))
            events.append((kind, at, {"comment_id": comment_id}, not internal))
            comment_id += 1
            n_comments += 1
        if resolved_at:
            events.append(("ticket.resolved", resolved_at, {"resolution_note": "Résolu."}))
            sla_events.append(SlaEvent(resolved_at, "resolved"))
        state = compute_sla(sla_events, now, cal, policy, explain=False)
        status = "clos" if resolved_at and (now - resolved_at).days > 15 else ("resolu" if resolved_at else
                                                                               "en_cours" if taken_in_charge else "nouveau")
        events.sort(key=lambda e: e[1])
        updated = max(e[1] for e in events)
        tbuf.write(_row((
            tid, reference, "demande", services[service], commune,
            commune if service == "toodego" and rng.random() < 0.4 else metropole, 1, "Règle de démonstration",
            False, f"Demande {tid}", "Description générée pour les mesures de performance.",
            f"usager{tid % 50000}@example.org", status, priority, created, updated,
            priority_at, resolved_at, resolved_at if status == "clos" else None, priority_at,
            state.deadline_at, state.at_risk_at, state.breach_at, state.state, state.met,
            state.is_paused and state.state != "depasse", 1,
            cal.business_time_between(created, priority_at).total_seconds() if priority_at else None,
            cal.business_time_between(created, resolved_at).total_seconds() if resolved_at else None,
        )))
        if with_events:
            for type_, at, data, *public in events:
                ebuf.write(_row((tid, type_, at, "Générateur", public[0] if public else True, json.dumps(data))))
            n_events += len(events)
        if (i + 1) % 50_000 == 0:
            flush()
    flush()
    for year, last in counters.items():
        cur.execute("INSERT INTO reference_counters (year, last_number) VALUES (%s, %s) "
                    "ON CONFLICT (year) DO UPDATE SET last_number = EXCLUDED.last_number", (year, last))
    cur.execute(f"SELECT setval(pg_get_serial_sequence('tickets', 'id'), {start_id + tickets})")
    cur.execute(f"SELECT setval(pg_get_serial_sequence('comments', 'id'), {comment_id})")
    conn.commit()
    load_s = time.perf_counter() - started
    t = time.perf_counter()
    conn.commit()
    raw = conn.driver_connection  # the psycopg connection behind SQLAlchemy's pool proxy
    raw.autocommit = True
    raw.execute("VACUUM ANALYZE")  # sets the visibility map, as autovacuum would, for index-only scans
    conn.close()
    with app.app_context():
        db.engine.dispose()  # no idle connection left behind: CREATE DATABASE … TEMPLATE needs none (bench.sla_sweep)
    return {"tickets": tickets, "events": n_events, "comments": n_comments, "load_seconds": load_s,
            "analyze_seconds": time.perf_counter() - t}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-events", action="store_true", help="tickets only (no events, no comments)")
    parser.add_argument("--open-share", type=float, default=0.03)
    args = parser.parse_args()
    print(generate(args.url, args.tickets, args.months, args.seed, with_events=not args.no_events,
                   open_share=args.open_share))


if __name__ == "__main__":
    main()
