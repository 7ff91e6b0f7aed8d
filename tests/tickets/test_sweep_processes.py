"""Two app processes sweeping the same PostgreSQL database over simulated time: every at-risk and breach
event is recorded exactly once (issue 3)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import TicketEvent
from tests.conftest import DEMO_EMAILS, ROOT, db_kind

PARIS = ZoneInfo("Europe/Paris")
STEP = timedelta(minutes=20)


@pytest.mark.skipif(db_kind() != "postgresql", reason="concurrent sweepers need PostgreSQL (the SQLite run has one)")
def test_two_processes_sweep_each_event_exactly_once(app, clock, make_request):
    rng = random.Random(20260310)
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))
        refs = []
        for _ in range(40):
            clock.advance(timedelta(minutes=rng.randint(5, 180)))
            ref = make_request()
            ticket = ops.get_ticket(ref)
            ops.set_priority(ticket, agent, rng.choice(["bloquant", "majeur", "mineur"]), clock.now())
            if rng.random() < 0.2:
                ops.resolve(ticket, agent, "Résolu vite", clock.now() + timedelta(minutes=1))
            db.session.commit()
            refs.append(ref)
        start = clock.now() + timedelta(minutes=2)
        end = start + timedelta(days=6)
        grid = []
        t = start
        while t <= end:
            grid.append(t)
            t += STEP
        expected = Counter()
        for ref in refs:
            ticket = ops.get_ticket(ref)
            if not ticket.is_open or ticket.sla_deadline_at is None or ticket.sla_state == "sans_engagement":
                continue
            breach_at = ticket.sla_breach_at
            if any(g > breach_at for g in grid):
                expected[(ref, "sla.breached")] += 1
            if any(ticket.sla_at_risk_at <= g <= breach_at for g in grid):
                expected[(ref, "sla.at_risk")] += 1
            # The pure engine agrees with the stored projection.
            assert ticket_sla.compute(ticket, end).deadline_at == ticket.sla_deadline_at
        url = db.engine.url.render_as_string(hide_password=False)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.tickets.sweeper_process", url, start.isoformat(), end.isoformat(),
            str(int(STEP.total_seconds() // 60)), str(time.time() + 3.0), "0.04"]
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))

    with app.app_context():
        rows = db.session.execute(
            sa.select(TicketEvent.type, TicketEvent.ticket_id).where(TicketEvent.type.in_(["sla.at_risk", "sla.breached"]))
        ).all()
        ids = {ops.get_ticket(r).id: r for r in refs}
        recorded = Counter((ids[ticket_id], type_) for type_, ticket_id in rows)
    assert recorded == expected
    assert max(recorded.values()) == 1
    assert sum(o["at_risk"] + o["breached"] for o in outputs) == len(rows)
    assert sum(expected.values()) > 10  # the scenario really exercises the sweep
