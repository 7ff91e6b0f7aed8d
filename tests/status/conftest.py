"""Helpers of the status tests: extra référents around the demo data, and maintenance set up through the
operations layer."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import DEMO_EMAILS


def user(email: str) -> Any:
    from sau.auth.models import User
    from sau.extensions import db

    return db.session.scalar(sa.select(User).where(User.email == email))


def demo(role: str) -> Any:
    return user(DEMO_EMAILS[role])


def service(code: str) -> Any:
    from sau.extensions import db
    from sau.orgs.models import Service

    return db.session.scalar(sa.select(Service).where(Service.code == code))


def add_member(email: str, commune: str, role: str, service_code: str | None = None, active: bool = True) -> Any:
    from sau.auth.models import Membership, User
    from sau.extensions import db
    from sau.orgs.models import Organisation

    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    u = User(email=email, given_name=email.split("@")[0], family_name="Test", is_active_account=active, created_at=now)
    db.session.add(u)
    db.session.add(Membership(user=u, organisation=org, role=role, created_at=now,
                              service=service(service_code) if service_code else None))
    db.session.flush()
    return u


@pytest.fixture()
def people(ctx: None) -> dict[str, Any]:
    """Référents and others around the demo subscriptions to toodego (Écully, Tassin, Villeurbanne,
    Vénissieux, Caluire active; Bron ended in 2024)."""
    from sau.extensions import db

    made = {
        "ref_tassin": add_member("ref.tassin@example.org", "69244", "referent"),
        "ref_villeurbanne": add_member("ref.villeurbanne@example.org", "69266", "referent", "toodego"),
        "ref_caluire_laclasse": add_member("ref.caluire@example.org", "69034", "referent", "laclasse"),
        "ref_bron_ended": add_member("ref.bron@example.org", "69029", "referent"),
        "ref_lyon_not_subscribed": add_member("ref.lyon@example.org", "69123", "referent"),
        "ref_inactive": add_member("ref.inactive@example.org", "69259", "referent", active=False),
        "agent_tassin_2": add_member("agent2.tassin@example.org", "69244", "agent"),
        "manager_tassin": add_member("manager.tassin@example.org", "69244", "manager"),
    }
    made["ref_ecully"] = demo("referent_ecully")
    db.session.commit()
    return made
