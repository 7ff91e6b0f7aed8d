"""How fast new requests' notifications are worked out after a rush (sau.notify.models.NotificationFanout).

    .venv/bin/python -m bench.fanout_drain [--requests 3000]

A throwaway durable PostgreSQL with the demo data; `--requests` help requests created in-process the way the form
creates them (Écully's Toodego queue: two agents, one webhook endpoint added here), which leaves as many fan-out
rows; then the scheduler's step, `expand_fanouts`, is timed until none is left. Prints rows/s and the
notifications written (bench/RESULTS.md).
"""
from __future__ import annotations

import argparse
import time

from bench.common import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--cprofile", help="write a cProfile of the drain to this file")
    args = parser.parse_args()

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from sau import create_app
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.help import intake
    from sau.notify.models import Notification, NotificationFanout
    from sau.notify.operations import add_webhook_endpoint, expand_fanouts
    from sau.orgs.loader import DEMO_FILE, load_file
    from sau.orgs.models import Organisation
    from sau.tickets import operations as ops
    from tests.support.pgcluster import PostgresCluster

    cluster = PostgresCluster(settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "256MB"})
    url = cluster.start()
    try:
        app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            upgrade()
            now = now_utc()
            load_file(DEMO_FILE, now)
            ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
            add_webhook_endpoint(ecully, "https://gru.ecully.example/sau", now)
            db.session.commit()
            service = intake.require_sau_service("toodego")
            category, commune, school = intake.resolve_fields(service, "teleservice-communal", "69081", None,
                                                              now.date())
            started = time.perf_counter()
            for n in range(args.requests):
                ops.create_request(ops.NewRequest(service=service, subject=f"Démarche bloquée {n}",
                                                  description="Le bouton « Valider » ne répond pas.",
                                                  category=category, commune=commune, school=school,
                                                  email="demandeur@example.org"), None, now)
                db.session.commit()
            created_s = time.perf_counter() - started
            pending = db.session.scalar(sa.select(sa.func.count()).select_from(NotificationFanout))
            db.session.remove()
        with app.app_context():
            profiler = None
            if args.cprofile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            started = time.perf_counter()
            expanded = 0
            while True:
                done = expand_fanouts(limit=1_000_000, seconds=5)
                expanded += done
                if done == 0:
                    break
            drain_s = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.cprofile)
            notifications = db.session.scalar(sa.select(sa.func.count()).select_from(Notification))
            left = db.session.scalar(sa.select(sa.func.count()).select_from(NotificationFanout))
        print(f"CPU: {cpu_model()}")
        print(f"{args.requests} requests created in-process in {created_s:.1f} s; {pending} fan-out rows pending")
        print(f"expanded {expanded} rows in {drain_s:.1f} s = {expanded / drain_s:.0f} rows/s; "
              f"{notifications} notifications written ({notifications / max(expanded, 1):.1f} per request); "
              f"{left} left")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
