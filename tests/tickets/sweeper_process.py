"""A separate app process that sweeps a database over simulated time (used by test_sweep_processes)."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta


def main() -> None:
    url, start, end, step = sys.argv[1], datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3]), \
        timedelta(minutes=int(sys.argv[4]))
    # Simulated time is paced on the wall clock from a shared origin, as real processes share "now":
    # step i is swept no earlier than origin + i × tick by every process.
    origin, tick = float(sys.argv[5]), float(sys.argv[6])
    from sau import create_app
    from sau.extensions import db
    from sau.tickets.sweeps import sweep

    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url})
    totals = {"at_risk": 0, "breached": 0, "skipped": 0, "sweeps": 0}
    now = start
    index = 0
    while now <= end:
        delay = origin + index * tick - time.time()
        if delay > 0:
            time.sleep(delay)
        index += 1
        with app.app_context():
            result = sweep(now)
            db.session.remove()
        totals["at_risk"] += result.at_risk
        totals["breached"] += result.breached
        totals["skipped"] += int(result.skipped)
        totals["sweeps"] += 1
        now += step
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
