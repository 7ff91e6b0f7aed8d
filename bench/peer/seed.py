"""Seed the peer (django-helpdesk) database for bench/peer_compare.py; run with the peer's venv:

    PEER_DATABASE_URL=postgresql://sau@127.0.0.1:PORT/peer bench/peer/.venv/bin/python bench/peer/seed.py \
        --tickets 1000000 --open-share 0.1

Migrates, creates 4 queues (one per SAU service; `aide` takes public submissions), a staff agent
(`agent` / `agent-bench-password`) and N tickets over 24 months (about `open-share` of them open, the most
recent ones, like bench/datagen.py) with about one follow-up per ticket, inserted in SQL with
generate_series (the ORM would take hours for 1,000,000 rows), then VACUUM ANALYZE.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "project"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproject.settings")

import django

django.setup()

from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from helpdesk.models import Queue

QUEUES = (("aide", "Toodego"), ("laclasse", "laclasse.com"), ("glc", "GrandLyon Connect"), ("data", "data.grandlyon"))
AGENT = ("agent", "agent-bench-password")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.1)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    for slug, title in QUEUES:
        Queue.objects.get_or_create(slug=slug, defaults={"title": title, "allow_public_submission": slug == "aide",
                                                         "allow_email_submission": False})
    user, _ = User.objects.get_or_create(username=AGENT[0], defaults={"is_staff": True, "email": "agent@example.org"})
    user.is_staff = True
    user.set_password(AGENT[1])
    user.save()
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM helpdesk_ticket")
        if cur.fetchone()[0] >= args.tickets:
            print("peer already seeded")
            return
        queue_ids = list(Queue.objects.order_by("id").values_list("id", flat=True))
        # Tickets: created uniformly over 24 months (ordered by id); the most recent 2 × open-share have a
        # 50 % chance to be open (status 1 open / 2 reopened), the others are resolved (3) or closed (4).
        cur.execute(
            """
            INSERT INTO helpdesk_ticket (title, created, modified, submitter_email, status, on_hold, description,
                resolution, priority, due_date, last_escalation, assigned_to_id, queue_id, secret_key)
            SELECT 'Demande ' || g,
                   now() - interval '730 days' * (1 - g::float / %(n)s),
                   now() - interval '730 days' * (1 - g::float / %(n)s) + interval '2 hours',
                   'usager' || (g %% 50000) || '@example.org',
                   CASE WHEN g > %(n)s * (1 - 2 * %(share)s) AND random() < 0.5 THEN 1
                        WHEN g > %(n)s * 0.98 THEN 3 ELSE 4 END,
                   false, 'Description générée pour les mesures de performance.', NULL,
                   1 + (g %% 5), NULL, NULL,
                   CASE WHEN random() < 0.6 THEN %(me)s ELSE NULL END,
                   (%(queues)s)[1 + (g %% 4)], md5(g::text)::uuid::text
            FROM generate_series(1, %(n)s) AS g
            """,
            {"n": args.tickets, "share": args.open_share, "me": user.id, "queues": queue_ids},
        )
        cur.execute(
            """
            INSERT INTO helpdesk_followup (date, title, comment, public, new_status, ticket_id, user_id)
            SELECT t.created + interval '1 hour', 'Commentaire', 'Nous avons transmis votre demande.', true, NULL,
                   t.id, %(me)s
            FROM helpdesk_ticket t WHERE random() < 0.9
            """,
            {"me": user.id},
        )
    connection.commit() if not connection.get_autocommit() else None
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT status, count(*) FROM helpdesk_ticket GROUP BY status ORDER BY status")
        print("tickets by status:", cur.fetchall())
    print(f"seeded {args.tickets} tickets in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
