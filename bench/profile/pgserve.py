"""Start a throwaway durable PostgreSQL (as bench/http_load.py does), migrate, load the demo data, print the URL to
a file and wait until SIGTERM (then stop the cluster).  Helper for bench/profile/submission.py."""
from __future__ import annotations

import signal
import sys
import time

from tests.support.pgcluster import PostgresCluster


def main() -> None:
    out = sys.argv[1]
    cluster = PostgresCluster(settings={"max_connections": "50", "shared_buffers": "256MB", "fsync": "on",
                                        "synchronous_commit": "on", "full_page_writes": "on",
                                        "random_page_cost": "1.1"})
    url = cluster.start()
    stop = False

    def _term(*_a: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    try:
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
            db.engine.dispose()
        with open(out, "w") as fh:
            fh.write(url)
        print(url, flush=True)
        while not stop:
            time.sleep(0.5)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
