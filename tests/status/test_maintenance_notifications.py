"""Scheduled maintenance: every référent of every commune subscribed to the service is told, and no one else,
exactly once per step (announced, changed, cancelled, reminder) — issue 6, point 3."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.status.conftest import demo, service

PARIS = ZoneInfo("Europe/Paris")
TOODEGO_REFERENTS = {"ref_ecully", "ref_tassin", "ref_villeurbanne"}


def notifications(kind: str | None = None) -> list[Any]:
    from sau.extensions import db
    from sau.notify.models import Notification

    stmt = sa.select(Notification).where(Notification.kind.like("maintenance_%"))
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.session.scalars(stmt))


def recipients(kind: str, people: dict[str, Any], channel: str = "inapp") -> Counter[str]:
    by_id = {u.id: name for name, u in people.items()}
    return Counter(by_id.get(n.user_id, f"other:{n.user_id}") for n in notifications(kind) if n.channel == channel)


def announce(now: datetime, code: str = "toodego", start_in: timedelta = timedelta(days=5)) -> Any:
    from sau.extensions import db
    from sau.status import operations as ops

    m = ops.announce_maintenance(demo("agent_metropole"), now, service(code), now + start_in,
                                 now + start_in + timedelta(hours=3), "Téléservices indisponibles.")
    db.session.commit()
    return m


def test_announce_change_cancel_each_notify_every_subscribed_referent_once(people: dict[str, Any], clock: Any) -> None:
    from sau.extensions import db
    from sau.status import operations as ops

    now = clock.now()
    m = announce(now)
    expected = Counter(dict.fromkeys(TOODEGO_REFERENTS, 1))
    assert recipients("maintenance_announced", people) == expected
    assert recipients("maintenance_announced", people, "email") == expected
    first = notifications("maintenance_announced")[0]
    assert first.ticket_id is None and first.payload["ticket_url"].endswith("/statut/toodego")
    assert "Toodego" in first.subject

    ops.change_maintenance(demo("admin"), now, m, m.starts_at + timedelta(hours=1), m.ends_at + timedelta(hours=1),
                           "Téléservices indisponibles.")
    db.session.commit()
    assert recipients("maintenance_changed", people) == expected
    # Saving the same window again tells nobody.
    ops.change_maintenance(demo("admin"), now, m, m.starts_at, m.ends_at, m.impact)
    db.session.commit()
    assert recipients("maintenance_changed", people) == expected

    ops.cancel_maintenance(demo("agent_metropole"), now, m)
    db.session.commit()
    assert recipients("maintenance_cancelled", people) == expected
    assert recipients("maintenance_announced", people) == expected  # unchanged
    # A second announcement of the same step cannot duplicate: the keys are per (maintenance, step, version, user).
    from sau.notify.operations import enqueue_maintenance

    assert enqueue_maintenance(m, "cancelled", now) == []


def test_reminder_job_twice_sends_one_reminder(people: dict[str, Any], clock: Any) -> None:
    from sau.status import operations as ops

    now = clock.now()
    m = announce(now, start_in=timedelta(hours=60))
    assert ops.remind_due_maintenance(now, 48) == 0  # 60 h ahead: not yet
    assert recipients("maintenance_reminder", people) == Counter()
    clock.advance(timedelta(hours=13))
    assert ops.remind_due_maintenance(clock.now(), 48) == 1
    assert ops.remind_due_maintenance(clock.now(), 48) == 0
    clock.advance(timedelta(minutes=5))
    assert ops.remind_due_maintenance(clock.now(), 48) == 0
    assert recipients("maintenance_reminder", people) == Counter(dict.fromkeys(TOODEGO_REFERENTS, 1))
    assert m.reminder_sent_at is not None and m.reminder_version == 1


def test_a_changed_window_is_reminded_again_and_a_cancelled_one_never(people: dict[str, Any], clock: Any) -> None:
    from sau.extensions import db
    from sau.status import operations as ops

    now = clock.now()
    m = announce(now, start_in=timedelta(hours=24))
    assert ops.remind_due_maintenance(now, 48) == 1
    ops.change_maintenance(demo("admin"), now, m, m.starts_at + timedelta(hours=2), m.ends_at + timedelta(hours=2),
                           m.impact)
    db.session.commit()
    assert ops.remind_due_maintenance(now, 48) == 1
    assert recipients("maintenance_reminder", people) == Counter(dict.fromkeys(TOODEGO_REFERENTS, 2))
    other = announce(now, start_in=timedelta(hours=30))
    ops.cancel_maintenance(demo("admin"), now, other)
    db.session.commit()
    assert ops.remind_due_maintenance(now, 48) == 0


def test_laclasse_maintenance_reaches_its_own_referents_only(people: dict[str, Any], clock: Any) -> None:
    announce(clock.now(), code="laclasse")
    # Tassin (référent for every service) and Caluire (référent for laclasse); not Écully's toodego référent.
    assert recipients("maintenance_announced", people) == Counter({"ref_tassin": 1, "ref_caluire_laclasse": 1})


def test_only_metropole_agents_and_admins_announce(people: dict[str, Any], clock: Any) -> None:
    from sau.errors import PermissionDenied
    from sau.status import operations as ops

    now = clock.now()
    for role in ("referent_ecully", "agent_ecully", "agent_tassin", "usager_a"):
        with pytest.raises(PermissionDenied):
            ops.announce_maintenance(demo(role), now, service("toodego"), now + timedelta(days=1),
                                     now + timedelta(days=1, hours=1), "x")
    assert notifications() == []


def test_announcement_is_validated(people: dict[str, Any], clock: Any) -> None:
    from sau.errors import ValidationFailed
    from sau.status import operations as ops

    now = clock.now()
    with pytest.raises(ValidationFailed) as exc:
        ops.announce_maintenance(demo("admin"), now, service("toodego"), now - timedelta(hours=1), now - timedelta(hours=2),
                                 "")
    assert set(exc.value.fields) == {"starts_at", "ends_at", "impact"}
    assert notifications() == []


def test_messages_render_in_french(people: dict[str, Any], clock: Any) -> None:
    from notifications.render import render

    announce(clock.now())
    n = notifications("maintenance_announced")[0]
    rendered = render(n.kind, n.payload)
    assert "Une maintenance programmée de Toodego est annoncée : du 15/03/2026 à 10:00 au 15/03/2026 à 13:00" \
        in rendered.text
    assert "Impact prévu : Téléservices indisponibles." in rendered.text
    assert "/statut/toodego" in rendered.html


def test_scheduler_job_reminds_once(app: Any, people: dict[str, Any], clock: Any) -> None:
    from sau.extensions import db
    from sau.scheduler import build_scheduler, run_maintenance_reminders

    app.config["MAINTENANCE_REMINDER_HOURS"] = 24
    m = announce(clock.now(), start_in=timedelta(hours=30))
    run_maintenance_reminders(app)
    assert recipients("maintenance_reminder", people) == Counter()
    clock.advance(timedelta(hours=7))
    run_maintenance_reminders(app)
    run_maintenance_reminders(app)
    db.session.expire_all()
    assert recipients("maintenance_reminder", people) == Counter(dict.fromkeys(TOODEGO_REFERENTS, 1))
    assert db.session.get(type(m), m.id).reminder_version == 1
    assert "maintenance-reminders" in {job.id for job in build_scheduler(app).get_jobs()}
