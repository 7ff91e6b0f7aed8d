"""Compliance of the resolution commitments: met in 95 % of cases for each commune (Toodego annex § 6.1.a).

A pure reference computation over per-ticket records; the reports of the application must agree with it.

* **Committed** tickets of a period ``[start, end)``: priority ``bloquant`` or ``majeur`` (the priorities with a
  commitment), not excluded (rejected, duplicate), and whose deadline falls in the period.
* **Met**: resolved within the target. **Breached**: resolved late, or still open and already past its deadline
  as of ``now`` (it can no longer be met). **Open**: still open and not yet past its deadline (undecided).
* **Compliance** = met / (met + breached); ``None`` when nothing is decided yet. The commune is *conforme* when
  compliance ≥ target (95 %), and vacuously when nothing is decided.
* **Error budget**: how many more breaches the commune can take and stay ≥ target, with the current met tickets
  (exact integer arithmetic). It is 0 at the edge and when already below target; then ``recovery_needed`` says
  how many further met tickets, without any breach, bring it back to the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import TypeVar

from sla.clock import DEPASSE, SANS_ENGAGEMENT, SlaState

__all__ = [
    "COMMITTED_PRIORITIES",
    "DEFAULT_COMPLIANCE_TARGET",
    "ComplianceFigures",
    "ComplianceTicket",
    "compliance_by",
    "compute_compliance",
    "figures_from_counts",
]

#: Priorities with a resolution commitment (Toodego annex § 6.1.a: mineur has "pas d'engagement").
COMMITTED_PRIORITIES: tuple[str, ...] = ("bloquant", "majeur")

#: "dans 95 % des cas pour chaque commune adhérente" (Toodego annex § 6.1.a).
DEFAULT_COMPLIANCE_TARGET = Fraction(95, 100)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ComplianceTicket:
    """What compliance needs to know about one ticket.

    Attributes:
        commune: INSEE code of the commune.
        service: service code (``toodego``, ``laclasse``…).
        priority: current priority.
        deadline_at: the SLA deadline (``SlaState.deadline_at``); ``None``: no deadline, never committed.
        met: ``True``/``False`` once resolved, ``None`` while open.
        breach_at: for an open ticket, the instant after which it is past its deadline (``SlaState.breach_at``);
            ``None`` means ``deadline_at``.
        is_paused: the clock is suspended with time left: an open paused ticket cannot be past its deadline.
        is_excluded: rejected or duplicate: never committed.
    """

    commune: str
    service: str
    priority: str | None
    deadline_at: datetime | None
    met: bool | None = None
    breach_at: datetime | None = None
    is_paused: bool = False
    is_excluded: bool = False

    @classmethod
    def from_state(cls, commune: str, service: str, state: SlaState) -> ComplianceTicket:
        """Build the record of a ticket from its SLA state, so that both tell the same story."""
        return cls(
            commune=commune,
            service=service,
            priority=state.priority,
            deadline_at=state.deadline_at,
            met=state.met,
            breach_at=state.breach_at,
            is_paused=state.is_paused and state.state != DEPASSE,
            is_excluded=state.state == SANS_ENGAGEMENT,
        )

    def is_breached_at(self, now: datetime) -> bool:
        """Return whether the ticket is breached as of ``now`` (resolved late, or open and past its deadline)."""
        if self.met is not None:
            return not self.met
        if self.is_paused or self.deadline_at is None:
            return False
        breach_at = self.deadline_at if self.breach_at is None else self.breach_at
        return now > breach_at


@dataclass(frozen=True)
class ComplianceFigures:
    """Compliance figures of a group of tickets over a period.

    ``committed = met + breached + open``; ``compliance`` is a float for display, ``is_conforme`` is decided with
    exact fractions.
    """

    committed: int
    met: int
    breached: int
    open: int
    compliance: float | None
    target: float
    is_conforme: bool
    error_budget: int
    recovery_needed: int | None


def _as_fraction(target: Fraction | float | str) -> Fraction:
    # str() first: 0.95 must mean 95/100, not the nearest binary float.
    value = target if isinstance(target, Fraction) else Fraction(str(target))
    if not 0 < value <= 1:
        raise ValueError(f"compliance target must be in ]0, 1], got {target}")
    return value


def figures_from_counts(
    met: int, breached: int, still_open: int, target: Fraction | float | str = DEFAULT_COMPLIANCE_TARGET
) -> ComplianceFigures:
    """Return the figures of a group from its counts (e.g. counted in SQL): compliance, conformity, budgets.

    Raises:
        ValueError: a negative count, or a target outside ]0, 1].
    """
    if min(met, breached, still_open) < 0:
        raise ValueError(f"counts must not be negative, got met={met}, breached={breached}, open={still_open}")
    goal = _as_fraction(target)
    decided = met + breached
    # met / (decided + k) ≥ target  ⇔  k ≤ met / goal − decided
    error_budget = max(math.floor(met / goal) - decided, 0)
    # (met + m) / (decided + m) ≥ target  ⇔  m × (1 − target) ≥ target × decided − met
    recovery_needed: int | None
    if goal == 1:
        recovery_needed = 0 if breached == 0 else None
    else:
        recovery_needed = max(math.ceil((goal * decided - met) / (1 - goal)), 0)
    return ComplianceFigures(
        committed=decided + still_open,
        met=met,
        breached=breached,
        open=still_open,
        compliance=met / decided if decided else None,
        target=float(goal),
        is_conforme=decided == 0 or Fraction(met, decided) >= goal,
        error_budget=error_budget,
        recovery_needed=recovery_needed,
    )


def _check_period(start: datetime, end: datetime, now: datetime) -> None:
    for name, value in (("start", start), ("end", end), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    if end <= start:
        raise ValueError(f"empty period: end {end.isoformat()} is not after start {start.isoformat()}")


def _is_committed(ticket: ComplianceTicket, start: datetime, end: datetime, priorities: tuple[str, ...]) -> bool:
    return (
        not ticket.is_excluded
        and ticket.priority in priorities
        and ticket.deadline_at is not None
        and start <= ticket.deadline_at < end
    )


def compute_compliance(
    tickets: Iterable[ComplianceTicket],
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    target: Fraction | float | str = DEFAULT_COMPLIANCE_TARGET,
    priorities: tuple[str, ...] = COMMITTED_PRIORITIES,
) -> ComplianceFigures:
    """Return the compliance figures of ``tickets`` whose deadline falls in ``[start, end)``, as of ``now``.

    Raises:
        ValueError: naive datetimes, ``end <= start``, or a target outside ]0, 1].
    """
    _check_period(start, end, now)
    goal = _as_fraction(target)
    met = breached = still_open = 0
    for ticket in tickets:
        if not _is_committed(ticket, start, end, priorities):
            continue
        if ticket.met:
            met += 1
        elif ticket.is_breached_at(now):
            breached += 1
        else:
            still_open += 1
    return figures_from_counts(met, breached, still_open, goal)


def _by_commune(ticket: ComplianceTicket) -> str:
    return ticket.commune


def compliance_by(
    tickets: Iterable[ComplianceTicket],
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    key: Callable[[ComplianceTicket], K] = _by_commune,  # type: ignore[assignment]
    target: Fraction | float | str = DEFAULT_COMPLIANCE_TARGET,
    priorities: tuple[str, ...] = COMMITTED_PRIORITIES,
) -> dict[K, ComplianceFigures]:
    """Return ``compute_compliance`` per group (per commune by default; e.g. ``key=lambda t: (t.commune,
    t.service)``). Every group with a ticket appears, in order of first appearance, even with nothing committed.

    Raises:
        ValueError: as ``compute_compliance``.
    """
    _check_period(start, end, now)
    groups: dict[K, list[ComplianceTicket]] = {}
    for ticket in tickets:
        groups.setdefault(key(ticket), []).append(ticket)
    return {
        group: compute_compliance(members, start, end, now, target=target, priorities=priorities)
        for group, members in groups.items()
    }
