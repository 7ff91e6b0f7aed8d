"""SLA policy: resolution targets per priority and the rules that drive a ticket's clock.

The defaults are the Toodego annex § 6.1.a: after diagnosis the support assigns a priority; the maximum
resolution time, in business hours counted from that assignment, is 8 h for ``bloquant`` (1 business day),
24 h for ``majeur`` (3 business days) and no commitment for ``mineur``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

__all__ = [
    "DEFAULT_TARGETS",
    "PRIORITIES",
    "PRIORITY_CHANGE_RULES",
    "PriorityChange",
    "SlaPolicy",
]

#: Priorities, most urgent first (Toodego annex § 6.1.a: Bloquant/Urgent, Majeur/Normal, Mineur/Bas).
PRIORITIES: tuple[str, ...] = ("bloquant", "majeur", "mineur")

#: Maximum resolution time in business hours per priority; ``None`` = no commitment (Toodego annex § 6.1.a).
DEFAULT_TARGETS: Mapping[str, timedelta | None] = MappingProxyType(
    {"bloquant": timedelta(hours=8), "majeur": timedelta(hours=24), "mineur": None}
)

PriorityChange = Literal["keep_start", "restart"]

#: ``keep_start``: a change of priority keeps the clock's start (the first assignment of a committed priority)
#: and applies the new target to the business time already consumed. ``restart``: the clock restarts at the
#: change, the time consumed before it no longer counts.
PRIORITY_CHANGE_RULES: tuple[PriorityChange, ...] = ("keep_start", "restart")


@dataclass(frozen=True)
class SlaPolicy:
    """Targets and clock rules; immutable, hashable, one per service (see ``with_overrides``).

    Attributes:
        targets: priority → maximum resolution time in business hours, ``None`` for no commitment. Missing
            priorities have no commitment. Defaults to the Toodego annex § 6.1.a.
        at_risk_ratio: share of the target after which an open ticket is "à risque" (0 < ratio ≤ 1).
        pause_while_waiting: whether "en attente du demandeur" suspends the clock. Off by default: the
            convention counts business hours from the assignment of the priority to the resolution, with no
            suspension (its strict reading).
        priority_change: ``"keep_start"`` (default) or ``"restart"``, see ``PRIORITY_CHANGE_RULES``.

    Raises:
        ValueError: unknown priority, non-positive target, ratio outside ]0, 1], unknown priority-change rule.
    """

    targets: Mapping[str, timedelta | None] = field(default_factory=lambda: DEFAULT_TARGETS)
    at_risk_ratio: float = 0.75
    pause_while_waiting: bool = False
    priority_change: PriorityChange = "keep_start"

    def __post_init__(self) -> None:
        targets: dict[str, timedelta | None] = {}
        for priority, target in self.targets.items():
            if priority not in PRIORITIES:
                raise ValueError(f"unknown priority {priority!r}; expected one of {', '.join(PRIORITIES)}")
            if target is not None:
                if not isinstance(target, timedelta):
                    raise TypeError(f"target of {priority!r} must be a timedelta or None")
                if target <= timedelta(0):
                    raise ValueError(f"target of {priority!r} must be positive, got {target}")
            targets[priority] = target
        for priority in PRIORITIES:
            targets.setdefault(priority, None)
        if not 0 < self.at_risk_ratio <= 1:
            raise ValueError(f"at_risk_ratio must be in ]0, 1], got {self.at_risk_ratio}")
        if self.priority_change not in PRIORITY_CHANGE_RULES:
            raise ValueError(
                f"priority_change must be one of {', '.join(PRIORITY_CHANGE_RULES)}, got {self.priority_change!r}"
            )
        # Frozen dataclass: store a read-only copy so that the caller's dict cannot change the policy later.
        object.__setattr__(self, "targets", MappingProxyType({p: targets[p] for p in PRIORITIES}))

    def __hash__(self) -> int:
        return hash((tuple(self.targets.items()), self.at_risk_ratio, self.pause_while_waiting, self.priority_change))

    def target_for(self, priority: str | None) -> timedelta | None:
        """Return the target of ``priority`` (``None``: no priority yet or no commitment).

        Raises:
            ValueError: unknown priority.
        """
        if priority is None:
            return None
        if priority not in self.targets:
            raise ValueError(f"unknown priority {priority!r}; expected one of {', '.join(PRIORITIES)}")
        return self.targets[priority]

    def is_committed(self, priority: str | None) -> bool:
        """Return whether ``priority`` carries a resolution commitment."""
        return self.target_for(priority) is not None

    def with_overrides(
        self,
        *,
        targets: Mapping[str, timedelta | None] | None = None,
        at_risk_ratio: float | None = None,
        pause_while_waiting: bool | None = None,
        priority_change: PriorityChange | None = None,
    ) -> SlaPolicy:
        """Return a copy with some settings replaced (e.g. a service's own policy); ``targets`` are merged.

        Raises:
            ValueError: same as the constructor.
        """
        merged = dict(self.targets)
        merged.update(targets or {})
        return replace(
            self,
            targets=merged,
            at_risk_ratio=self.at_risk_ratio if at_risk_ratio is None else at_risk_ratio,
            pause_while_waiting=self.pause_while_waiting if pause_while_waiting is None else pause_while_waiting,
            priority_change=self.priority_change if priority_change is None else priority_change,
        )
