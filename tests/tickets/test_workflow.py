"""The help-request workflow through the operations layer: each step is an event, statuses follow the rules."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from sau.auth.models import User
from sau.auth.policy import Principal
from sau.errors import ConflictError, PermissionDenied, WorkflowError
from sau.extensions import db
from sau.tickets import operations as ops
from tests.conftest import DEMO_EMAILS


def _user(role: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[role]))


def test_full_lifecycle_records_every_step(app, ctx, clock, make_request):
    ref = make_request(requester="usager_a")
    ticket = ops.get_ticket(ref)
    agent = _user("agent_ecully")
    assert ticket.status == "nouveau" and ticket.organisation.code == "69081"

    ops.take(ticket, agent, clock.now(), ticket.version)
    clock.advance(timedelta(minutes=5))
    ops.set_priority(ticket, agent, "majeur", clock.now(), ticket.version, "Démarche indisponible")
    ops.request_information(ticket, agent, "Quel navigateur utilisez-vous ?", clock.now(), ticket.version)
    assert ticket.status == "en_attente"
    requester = Principal(user=_user("usager_a"))
    ops.requester_reply(ticket, requester, "Firefox 130", clock.now(), ticket.version)
    assert ticket.status == "en_cours"
    ops.resolve(ticket, agent, "Cache vidé, la démarche fonctionne.", clock.now(), ticket.version)
    assert ticket.status == "resolu" and ticket.resolved_at == clock.now()
    ops.reopen_by_requester(ticket, requester, "Toujours bloqué", clock.now(), 15, ticket.version)
    assert ticket.status == "en_cours" and ticket.resolved_at is None
    ops.resolve(ticket, agent, "Corrigé côté serveur.", clock.now(), ticket.version)
    ops.close(ticket, agent, clock.now(), ticket.version)
    db.session.commit()

    types = [e.type for e in ticket.events]
    for expected in ("ticket.created", "ticket.routed", "ticket.assigned", "priority.set", "comment.public",
                     "ticket.waiting", "requester.replied", "ticket.waiting_ended", "ticket.resolved",
                     "ticket.reopened", "ticket.closed"):
        assert expected in types, expected
    priority = next(e for e in ticket.events if e.type == "priority.set")
    assert priority.data == {"before": None, "after": "majeur", "justification": "Démarche indisponible"}
    assert priority.actor_id == agent.id and priority.is_public is False
    assert ticket.priority_set_at == ticket.events[0].at + timedelta(minutes=5)


def test_events_are_immutable(app, ctx, make_request):
    ticket = ops.get_ticket(make_request())
    event = ticket.events[0]
    event.actor_label = "falsifié"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()


def test_reopen_window_is_enforced(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request(requester="usager_a"))
    agent = _user("agent_ecully")
    ops.resolve(ticket, agent, "Fait.", clock.now())
    clock.advance(timedelta(days=16))
    with pytest.raises(WorkflowError, match="délai de réouverture"):
        ops.reopen_by_requester(ticket, Principal(user=_user("usager_a")), "Encore", clock.now(), 15)


def test_other_usager_cannot_reply_or_reopen(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request(requester="usager_a"))
    with pytest.raises(PermissionDenied):
        ops.requester_reply(ticket, Principal(user=_user("usager_b")), "Je m'immisce", clock.now())


def test_agent_of_another_commune_cannot_work_the_ticket(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    with pytest.raises(PermissionDenied):
        ops.take(ticket, _user("agent_tassin"), clock.now())


def test_stale_version_is_a_conflict_and_changes_nothing(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request())
    agent = _user("agent_ecully")
    read_version = ticket.version
    ops.set_priority(ticket, agent, "bloquant", clock.now(), read_version)
    db.session.commit()
    with pytest.raises(ConflictError):
        ops.set_priority(ticket, agent, "mineur", clock.now(), read_version)
    db.session.rollback()
    assert ops.get_ticket(ticket.reference).priority == "bloquant"


def test_escalation_moves_laclasse_ticket_to_metropole_level_2(app, ctx, clock, make_request):
    ticket = ops.get_ticket(make_request(service="laclasse", category="connexion", commune=None, school="0690900A"))
    assert ticket.level == 1 and ticket.organisation.code == "69081" and ticket.school.uai == "0690900A"
    school_admin = _user("school_admin")
    ops.take(ticket, school_admin, clock.now())
    ops.escalate(ticket, school_admin, "Problème de serveur", clock.now())
    assert ticket.level == 2 and ticket.organisation.code == "metropole" and ticket.assignee is None
    assert ticket.status == "nouveau"
    with pytest.raises(PermissionDenied):
        ops.take(ticket, school_admin, clock.now())
    ops.take(ticket, _user("agent_metropole"), clock.now())


def test_references_are_sequential_per_year(app, ctx, clock, make_request):
    first, second = make_request(), make_request()
    assert first == "SAU-2026-000001" and second == "SAU-2026-000002"
    clock.set(clock.now().replace(year=2027))
    assert make_request() == "SAU-2027-000001"
