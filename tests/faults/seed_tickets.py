"""Create help requests at simulated instants, diagnosed (priority set, which starts the SLA clock) and taken by
Écully's agent, as test_sweep_processes does. Usage: python -m tests.faults.seed_tickets COUNT START_ISO SEED PREFIX.
Prints the last creation instant."""
from __future__ import annotations

import random
import sys
from datetime import datetime, timedelta


def main() -> None:
    count, at, seed, prefix = int(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import sqlalchemy as sa

    from sau import create_app
    from sau.auth.models import User
    from sau.extensions import db
    from sau.help import intake
    from sau.tickets import operations as ops

    rng = random.Random(seed)
    app = create_app()
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == "etienne.roux@ville-ecully.example"))
        service = intake.require_sau_service("toodego")
        for i in range(count):
            at += timedelta(minutes=rng.randint(2, 40))
            category, commune, school = intake.resolve_fields(service, "teleservice-communal", "69081", None, at.date())
            ticket = ops.create_request(ops.NewRequest(
                service=service, subject=f"{prefix} {i}", description="Démarche bloquée (test de panne).",
                category=category, commune=commune, school=school, email=f"usager{i}@example.org"), None, at).ticket
            ops.assign(ticket, agent, agent, at + timedelta(seconds=30))
            ops.set_priority(ticket, agent, rng.choice(["bloquant", "majeur", "majeur", "mineur"]),
                             at + timedelta(minutes=1))
            db.session.commit()
    print((at + timedelta(minutes=1)).isoformat())


if __name__ == "__main__":
    main()
