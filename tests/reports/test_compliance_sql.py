"""SLA compliance computed in SQL equals the pure reference (sla.compliance) on random data sets, and the
report API shows each manager only what they may see."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sau.auth.models import Membership, User
from sau.errors import WorkflowError
from sau.extensions import db
from sau.orgs.models import Organisation
from sau.reports.compliance import compliance_by_commune
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import Ticket
from sla import ComplianceTicket, compliance_by
from tests.conftest import DEMO_EMAILS
from tests.reports.helpers import add_ecully_manager

PARIS = ZoneInfo("Europe/Paris")
COMMUNES = ["69081", "69244", "69266", "69259", "69034"]


def _agent_for(commune: str) -> User:
    """An agent able to work tickets of that commune's queue (created on the fly)."""
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
    email = f"agent-{commune}@example.org"
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        user = User(email=email, given_name="Agent", family_name=commune, created_at=datetime(2026, 1, 1, tzinfo=PARIS))
        db.session.add(user)
        db.session.add(Membership(user=user, organisation=org, role="agent", created_at=user.created_at))
        db.session.flush()
    return user


def _random_history(rng: random.Random, clock, make_request, n: int) -> list[str]:
    refs = []
    for _ in range(n):
        clock.advance(timedelta(minutes=rng.randint(10, 600)))
        commune = rng.choice(COMMUNES)
        ref = make_request(commune=commune)
        ticket = ops.get_ticket(ref)
        agent = _agent_for(commune)
        t = clock.now()
        for _step in range(rng.randint(0, 5)):
            t += timedelta(minutes=rng.randint(1, 900))
            action = rng.random()
            try:
                if action < 0.45:
                    ops.set_priority(ticket, agent, rng.choice(["bloquant", "majeur", "mineur"]), t)
                elif action < 0.6:
                    ops.request_information(ticket, agent, "Précisez ?", t)
                elif action < 0.85:
                    ops.resolve(ticket, agent, "Résolu", t)
                elif action < 0.95:
                    ops.reopen_by_agent(ticket, agent, "Revient", t)
                else:
                    ops.reject(ticket, agent, "Hors périmètre", t)
            except WorkflowError:  # impossible transitions are part of random histories
                pass
        db.session.commit()
        refs.append(ref)
    return refs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_compliance_equals_pure_reference(app, ctx, clock, make_request, seed):
    rng = random.Random(seed)
    _random_history(rng, clock, make_request, 45)
    tickets = db.session.scalars(sa.select(Ticket)).all()
    last_event = max(e.at for t in tickets for e in t.events)
    for offset_days in (0, 3, 10, 40):
        now = last_event + timedelta(days=offset_days, hours=rng.randint(0, 23))
        reference = compliance_by(
            [ComplianceTicket.from_state(t.commune.code, t.service.code, ticket_sla.compute(t, now, explain=False))
             for t in tickets],
            start=datetime(2026, 3, 1, tzinfo=PARIS), end=datetime(2026, 7, 1, tzinfo=PARIS), now=now,
        )
        sql = {r.code: r.figures for r in compliance_by_commune(datetime(2026, 3, 1, tzinfo=PARIS),
                                                                datetime(2026, 7, 1, tzinfo=PARIS), now)}
        for code, figures in reference.items():
            assert sql[code] == figures, (seed, offset_days, code)
        assert sum(f.committed for f in reference.values()) > 0


def test_report_api_scopes_commune_managers(app, clock, make_request, login_as):
    with app.app_context():
        DEMO_EMAILS["manager_ecully"] = add_ecully_manager(clock.now()).email
        db.session.commit()
        refs = {commune: make_request(commune=commune) for commune in ("69081", "69244")}
        for commune, ref in refs.items():
            ticket = ops.get_ticket(ref)
            ops.set_priority(ticket, _agent_for(commune), "bloquant", clock.now())
            ops.resolve(ticket, _agent_for(commune), "Fait", clock.now() + timedelta(hours=1))
        db.session.commit()
    try:
        metro = login_as("manager_metropole").get("/api/v1/reports/sla?period=2026-03").get_json()
        by_code = {c["code"]: c for c in metro["communes"]}
        assert by_code["69081"]["met"] == 1 and by_code["69244"]["met"] == 1 and len(by_code) == 58
        local = login_as("manager_ecully").get("/api/v1/reports/sla?period=2026-03").get_json()
        assert [c["code"] for c in local["communes"]] == ["69081"]
        assert login_as("agent_ecully").get("/api/v1/reports/sla").status_code == 403
        assert app.test_client().get("/api/v1/reports/sla").status_code == 401
        bad = login_as("manager_metropole").get("/api/v1/reports/sla?period=2026-13")
        assert bad.status_code == 422 and "period" in bad.get_json()["error"]["fields"]
    finally:
        DEMO_EMAILS.pop("manager_ecully", None)
