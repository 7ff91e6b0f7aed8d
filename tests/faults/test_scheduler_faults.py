"""The scheduler process SIGKILLed and restarted on a simulated clock, then two app nodes and two schedulers on one
PostgreSQL under load (issue 9, point 5): missed sweeps are caught up, and no SLA event, outbox row or e-mail is
ever recorded or sent twice."""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.faults.harness import (
    ROOT,
    Load,
    Node,
    Scheduler,
    Stack,
    check_no_loss_no_duplicate,
    record_result,
    wait_until,
)
from tests.notifications.conftest import SmtpSink

pytestmark = pytest.mark.faults
PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 10, 9, 0, tzinfo=PARIS)  # a Tuesday in term time
STEP = timedelta(hours=3)
SLA_TYPES = ("sla.at_risk", "sla.breached")


def seed(stack: Stack, count: int, at: datetime, seed_value: int, prefix: str) -> datetime:
    proc = subprocess.run([sys.executable, "-m", "tests.faults.seed_tickets", str(count), at.isoformat(),
                           str(seed_value), prefix], check=False, cwd=ROOT, env=stack.env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return datetime.fromisoformat(proc.stdout.strip().splitlines()[-1])


def sla_tickets(stack: Stack) -> list[tuple[int, Any, Any]]:
    """(id, at-risk instant, breach instant) of the open tickets under an SLA deadline."""
    return [(r[0], r[1], r[2]) for r in stack.query(
        "SELECT id, sla_at_risk_at, sla_breach_at FROM tickets WHERE status NOT IN ('resolu', 'ferme', 'cloture') "
        "AND sla_deadline_at IS NOT NULL AND sla_met IS NULL AND NOT sla_paused")]


def expected_events(tickets: list[tuple[int, Any, Any]], swept: list[datetime]) -> Counter[tuple[int, str]]:
    """The SLA events sweeps at the instants `swept` must have recorded, exactly once each: breached once a sweep
    ran after the breach instant; at risk only if a sweep ran between the at-risk and the breach instants (a ticket
    found already breached gets no late "at risk" event)."""
    expected: Counter[tuple[int, str]] = Counter()
    for ticket_id, at_risk_at, breach_at in tickets:
        if any(s > breach_at for s in swept):
            expected[(ticket_id, "sla.breached")] += 1
        if any(at_risk_at <= s <= breach_at for s in swept):
            expected[(ticket_id, "sla.at_risk")] += 1
    return expected


def recorded_events(stack: Stack) -> Counter[tuple[int, str]]:
    return Counter((r[0], r[1]) for r in stack.query(
        "SELECT ticket_id, type FROM ticket_events WHERE type IN ('sla.at_risk', 'sla.breached')"))


def events_at(stack: Stack, at: datetime) -> int:
    return int(stack.query("SELECT count(*) FROM ticket_events WHERE type IN ('sla.at_risk', 'sla.breached') "
                           "AND at = %s", (at,))[0][0])


def pending_mail(stack: Stack) -> int:
    return int(stack.query("SELECT count(*) FROM notifications WHERE status = 'pending' AND channel = 'email'")[0][0])


def check_notifications(stack: Stack, sink: SmtpSink) -> dict[str, int]:
    """Every e-mail of the outbox sent, and received by the SMTP server exactly once; no outbox row twice."""
    rows = stack.query("SELECT idempotency_key, status FROM notifications WHERE channel = 'email'")
    keys = Counter(r[0] for r in rows)
    assert max(keys.values(), default=1) == 1, f"outbox rows with the same key: {keys.most_common(3)}"
    not_sent = [r for r in rows if r[1] != "sent"]
    assert not not_sent, f"{len(not_sent)} e-mails not sent: {not_sent[:5]}"
    received = Counter(m["Message-ID"] for m in sink.messages())
    expected = {f"<{key}@grandlyon.example>" for key in keys}
    assert set(received) == expected, (f"missing: {len(expected - set(received))}, "
                                       f"unknown: {len(set(received) - expected)}")
    duplicates = {k: n for k, n in received.items() if n > 1}
    assert not duplicates, f"DUPLICATE e-mails: {len(duplicates)}: {list(duplicates.items())[:5]}"
    alerts = stack.query("SELECT ticket_id, kind, deadline_at, count(*) FROM sla_alerts "
                         "GROUP BY ticket_id, kind, deadline_at HAVING count(*) > 1")
    assert not alerts, f"duplicate sla_alerts: {alerts[:5]}"
    return {"emails": len(rows), "emails_received": sum(received.values()), "email_duplicates": 0}


def check_events(stack: Stack, tickets: list[tuple[int, Any, Any]], swept: list[datetime],
                 maybe: datetime | None = None) -> Counter[tuple[int, str]]:
    recorded = recorded_events(stack)
    duplicates = {k: n for k, n in recorded.items() if n > 1}
    assert not duplicates, f"DUPLICATE SLA events: {list(duplicates.items())[:5]}"
    options = [expected_events(tickets, swept)]
    if maybe is not None:  # killed right after the clock moved: that sweep may or may not have committed
        options.append(expected_events(tickets, sorted([*swept, maybe])))
    if recorded not in options:
        want = options[-1]
        raise AssertionError(f"SLA events: missing {sorted(set(want) - set(recorded))[:5]}, "
                             f"unexpected {sorted(set(recorded) - set(want))[:5]}")
    return recorded


def test_scheduler_killed_and_restarted_catches_up(stack: Stack, tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    sink = SmtpSink(mail)
    sink.start()
    smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none"}
    swept: list[datetime] = []  # the instants at which a running scheduler swept
    scheduler: Scheduler | None = None
    now = START

    def move(to: datetime) -> datetime:
        nonlocal now
        now = to
        stack.set_clock(now)
        return now

    def sweep_now(tickets: list[tuple[int, Any, Any]], maybe: datetime | None = None) -> None:
        """With the scheduler running, wait for its sweep at `now` and for the e-mails it queued. `maybe`: an
        instant a killed scheduler may or may not have swept."""
        swept.append(now)
        wants = [expected_events(tickets, swept)]
        if maybe is not None:
            wants.append(expected_events(tickets, sorted([*swept, maybe])))
        wait_until(lambda: recorded_events(stack) in wants, 60, f"the sweep at {now}")
        wait_until(lambda: pending_mail(stack) == 0, 60, "the e-mails to be sent")

    def down_until_due(tickets: list[tuple[int, Any, Any]], extra: list[datetime]) -> int:
        """The scheduler is down: move the clock on (3 steps at least) until sweeps have work waiting."""
        for steps in range(1, 21):
            move(now + STEP)
            time.sleep(0.1)
            waiting = set(expected_events(tickets, sorted([*swept, *extra, now]))) - set(recorded_events(stack))
            if steps >= 3 and len(waiting) >= 3:
                return steps
        raise AssertionError("nothing became due in 60 simulated hours")

    try:
        last = seed(stack, 30, START, 20260310, "sla-panne-a")
        tickets = sla_tickets(stack)  # minor priorities carry no commitment
        assert len(tickets) >= 15
        move(last + timedelta(minutes=5))
        scheduler = Scheduler(stack, "scheduler-1", smtp)
        for _ in range(4):
            sweep_now(tickets)
            move(now + STEP)
        # 1. Killed while idle; the clock runs on while it is down (until work is waiting): nothing is swept.
        scheduler.kill()
        down_steps = down_until_due(tickets, [])
        assert recorded_events(stack) == expected_events(tickets, swept)
        scheduler = Scheduler(stack, "scheduler-2", smtp)
        sweep_now(tickets)  # the restart catches up what became due while it was down
        caught_up_1 = events_at(stack, now)
        # New requests keep coming in.
        last = seed(stack, 20, now, 20260311, "sla-panne-b")
        tickets = sla_tickets(stack)
        move(last + timedelta(minutes=5))
        sweep_now(tickets)
        # 2. Killed right after the clock moved: possibly in the middle of that sweep.
        maybe = move(now + STEP)
        scheduler.kill()
        down_steps += down_until_due(tickets, [maybe])
        check_events(stack, tickets, swept, maybe=maybe)
        scheduler = Scheduler(stack, "scheduler-3", smtp)
        sweep_now(tickets, maybe)  # the restart catches up
        caught_up_2 = events_at(stack, now)
        for _ in range(2):
            move(now + STEP)
            sweep_now(tickets, maybe)
        recorded = check_events(stack, tickets, swept, maybe=maybe)
        assert caught_up_1 > 0 and caught_up_2 > 0, (
            f"the restarts had nothing to catch up ({caught_up_1}, {caught_up_2}): the test proves nothing")
        kinds = Counter(kind for _, kind in recorded)
        assert kinds["sla.at_risk"] > 5 and kinds["sla.breached"] > 5
        figures = {"tickets": len(tickets), "sla_events": sum(recorded.values()), **dict(kinds),
                   "caught_up_after_kill_1": caught_up_1, "caught_up_after_kill_2": caught_up_2,
                   "scheduler_kills": 2, "simulated_hours_down": down_steps * 3, "event_duplicates": 0, **check_notifications(stack, sink)}
        record_result("scheduler_sigkill", figures)
    finally:
        if scheduler is not None:
            scheduler.stop()
        sink.stop()


def test_two_nodes_two_schedulers_under_load(stack: Stack, tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    sink = SmtpSink(mail)
    sink.start()
    smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "SMTP_SECURITY": "none"}
    processes: list[Any] = []
    swept: list[datetime] = []
    try:
        last = seed(stack, 30, START, 20260312, "sla-2n")
        now = last + timedelta(minutes=5)
        stack.set_clock(now)
        token = stack.create_token()
        clocked = "tests.faults.clocked:create_app()"
        nodes = [Node(stack, workers=2, app=clocked, name=f"node{i}") for i in (1, 2)]
        processes += nodes
        schedulers = [Scheduler(stack, f"scheduler-{i}", smtp) for i in (1, 2)]
        processes += schedulers
        load = Load([n.port for n in nodes], token, threads=6, prefix="panne-2n").start()
        try:
            for _ in range(8):  # 24 simulated hours under load, both schedulers sweeping and dispatching
                now += STEP
                stack.set_clock(now)
                swept.append(now)
                wait_until(lambda: recorded_events(stack) == expected_events(sla_tickets(stack), swept), 60,
                           f"the sweep at {now}")
        finally:
            load.stop()
        wait_until(lambda: pending_mail(stack) == 0, 90, "the e-mails to be sent")
        requests = check_no_loss_no_duplicate(stack, load)
        assert requests["accepted"] >= 30, f"too little load to prove anything: {requests}"
        tickets = sla_tickets(stack)
        recorded = check_events(stack, tickets, swept)
        kinds = Counter(kind for _, kind in recorded)
        assert kinds["sla.at_risk"] > 5 and kinds["sla.breached"] > 5
        mails = check_notifications(stack, sink)
        assert all(s.proc.poll() is None for s in schedulers) and all(n.proc.poll() is None for n in nodes)
        figures = {**requests, "sla_events": sum(recorded.values()), **dict(kinds), "event_duplicates": 0, **mails}
        record_result("two_nodes_two_schedulers", figures)
    finally:
        for process in processes:
            process.stop()
        sink.stop()
