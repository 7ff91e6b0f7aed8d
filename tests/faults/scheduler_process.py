"""`sau scheduler` on the simulated clock: the same scheduler (sau.scheduler.build_scheduler, blocking, every job)
as the production command, with the app of tests/faults/clocked.py."""
from __future__ import annotations


def main() -> None:
    from sau.scheduler import build_scheduler
    from tests.faults.clocked import create_app

    app = create_app()
    print("scheduler started", flush=True)
    build_scheduler(app, blocking=True).start()


if __name__ == "__main__":
    main()
