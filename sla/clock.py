"""The SLA clock of a ticket, as a pure function of its event log.

``compute_sla(events, now, calendar, policy)`` replays the ticket's events and returns its ``SlaState``: the same
log always gives the same state, so the state can be recomputed, audited and explained to a commune in a dispute.

Rules (Toodego annex § 6.1.a unless noted):

* The clock starts when a priority carrying a commitment (``bloquant``, ``majeur``) is assigned: "après
  affectation du niveau de priorité". No priority, or ``mineur`` ("pas d'engagement"): *sans engagement*.
* Only business hours count (``BusinessCalendar``). The clock stops at the resolution; a reopening resumes it,
  and the time between the resolution and the reopening is not counted. ``closed`` on an unresolved ticket
  counts as its resolution; on a resolved ticket it changes nothing.
* "En attente du demandeur" (``waiting``) suspends the clock only when ``policy.pause_while_waiting`` (off by
  default: the convention's strict reading has no suspension). A resolution ends any waiting.
* A change of priority follows ``policy.priority_change``: ``keep_start`` keeps the start and applies the new
  target to the business time already consumed (bloquant → majeur after 10 h is still on time; majeur →
  bloquant after 10 h is already *dépassé*); ``restart`` restarts the clock at the change. Setting the same
  priority again is not a change. A change to ``mineur`` removes the commitment (*sans engagement*); business
  time consumed meanwhile stays in the explanation but no deadline applies.
* A rejected ticket (duplicate, out of scope) is excluded from the commitment: *sans engagement*, whatever its
  priority, until it is reopened.
* Deadline reached exactly is on time: an open ticket is *dépassé* only once consumed > target, and a resolved
  one is *respecté* when consumed ≤ target. As 17:00 is not business time, a ticket due at 17:00 and resolved
  at 18:00 the same day consumed exactly its target and is *respecté*; left open, it becomes *dépassé* at the
  next opening (``breach_at``).
* *À risque*: open, not dépassé, and consumed ≥ ``policy.at_risk_ratio`` × target.

Events must be sorted by ``at`` (ties keep their order); events after ``now`` are ignored, so the state "as of"
any past instant can be recomputed from the full log.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from sla.calendar import BusinessCalendar
from sla.policy import SlaPolicy

__all__ = [
    "A_RISQUE",
    "DANS_LES_TEMPS",
    "DEPASSE",
    "EVENT_KINDS",
    "NON_RESPECTE",
    "RESPECTE",
    "SANS_ENGAGEMENT",
    "STATES",
    "STATE_LABELS",
    "SlaEvent",
    "SlaPeriod",
    "SlaState",
    "compute_sla",
]

PRIORITY_SET = "priority_set"
WAITING = "waiting"
WAITING_ENDED = "waiting_ended"
RESOLVED = "resolved"
REOPENED = "reopened"
CLOSED = "closed"
REJECTED = "rejected"

#: Event kinds the clock understands; ``priority_set`` (first assignment or change) carries the priority.
EVENT_KINDS: tuple[str, ...] = (PRIORITY_SET, WAITING, WAITING_ENDED, RESOLVED, REOPENED, CLOSED, REJECTED)

SANS_ENGAGEMENT = "sans_engagement"
DANS_LES_TEMPS = "dans_les_temps"
A_RISQUE = "a_risque"
DEPASSE = "depasse"
RESPECTE = "respecte"
NON_RESPECTE = "non_respecte"

STATES: tuple[str, ...] = (SANS_ENGAGEMENT, DANS_LES_TEMPS, A_RISQUE, DEPASSE, RESPECTE, NON_RESPECTE)

#: French labels of the states, for the UI and the reports.
STATE_LABELS: dict[str, str] = {
    SANS_ENGAGEMENT: "sans engagement",
    DANS_LES_TEMPS: "dans les temps",
    A_RISQUE: "à risque",
    DEPASSE: "dépassé",
    RESPECTE: "respecté",
    NON_RESPECTE: "non respecté",
}

REASON_COUNTED = "heures ouvrées comptées"
REASON_COUNTED_WHILE_WAITING = "heures ouvrées comptées (en attente du demandeur, sans suspension)"
REASON_OFF_HOURS = "hors heures ouvrées"
REASON_PAUSED = "suspendu : en attente du demandeur"
REASON_RESOLVED_GAP = "entre résolution et réouverture : non compté"
REASON_REJECTED_GAP = "entre rejet et réouverture : non compté"
REASON_BEFORE_RESTART = "avant le changement de priorité (délai redémarré) : non compté"
REASON_NO_PRIORITY = "aucune priorité affectée"
REASON_REJECTED = "ticket rejeté ou doublon : exclu des engagements"


def _reason_uncommitted(priority: str) -> str:
    return f"priorité {priority} : pas d'engagement"


@dataclass(frozen=True)
class SlaEvent:
    """One event of a ticket's log, as the clock sees it.

    Raises:
        ValueError: naive ``at``, unknown ``kind``, or ``priority`` missing on ``priority_set`` / present elsewhere.
    """

    at: datetime
    kind: str
    priority: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"SlaEvent.at must be timezone-aware, got naive {self.at.isoformat()}")
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown SLA event kind {self.kind!r}; expected one of {', '.join(EVENT_KINDS)}")
        if (self.kind == PRIORITY_SET) != (self.priority is not None):
            raise ValueError(f"a priority is required on {PRIORITY_SET!r} events and only there")


@dataclass(frozen=True)
class SlaPeriod:
    """A period of the ticket's timeline and whether it counts towards the target.

    ``business_time`` is the business time inside ``[start, end)`` (also when not counted, e.g. while suspended);
    the ``business_time`` of the counted periods adds up to ``SlaState.consumed``.
    """

    start: datetime
    end: datetime
    counted: bool
    business_time: timedelta
    reason: str


@dataclass(frozen=True)
class SlaState:
    """The SLA of a ticket at ``now``.

    Attributes:
        priority: current priority, ``None`` before the diagnosis.
        target: maximum resolution time in business hours, ``None`` when sans engagement.
        state: one of ``STATES``; ``label`` gives its French label.
        started_at: assignment of the priority that started the clock (the first committed one; the latest change
            under ``restart``); ``None`` if no committed priority was ever set.
        deadline_at: the instant consumed business time reaches the target: where it happened if already
            reached, else projected from the running segment; when the clock is stopped, as last projected.
            ``None`` when sans engagement or while the clock has never run.
        at_risk_at: same, for ``at_risk_ratio`` × target.
        breach_at: the instant from which the ticket is (or, the clock running, will be) dépassé: dépassé means
            ``now > breach_at``. ``deadline_at`` itself, or the next opening when the deadline is at a closing.
            ``None`` when it did not and, on the current projection, cannot happen.
        consumed: business time counted so far (up to ``now``, or up to the stop).
        remaining: ``max(0, target − consumed)``; ``None`` when sans engagement.
        overrun: ``max(0, consumed − target)``; zero when sans engagement.
        is_running: whether the clock is counting at ``now`` (outside business hours too).
        is_paused: whether the clock is suspended (waiting, with ``pause_while_waiting``).
        met: ``True``/``False`` once resolved (respecté / non respecté), ``None`` while open or sans engagement.
        resolved_at: the resolution the state rests on, ``None`` while open.
        no_commitment_reason: why the ticket is sans engagement (French), else ``None``.
        explanation: the timeline from the first priority assignment, period by period.
    """

    priority: str | None
    target: timedelta | None
    state: str
    started_at: datetime | None
    deadline_at: datetime | None
    at_risk_at: datetime | None
    breach_at: datetime | None
    consumed: timedelta
    remaining: timedelta | None
    overrun: timedelta
    is_running: bool
    is_paused: bool
    met: bool | None
    resolved_at: datetime | None
    no_commitment_reason: str | None
    explanation: tuple[SlaPeriod, ...]

    @property
    def label(self) -> str:
        """French label of ``state``."""
        return STATE_LABELS[self.state]


# Phase kinds of the timeline (internal).
_COUNTING = "counting"
_PAUSED = "paused"
_RESOLVED = "resolved"
_REJECTED = "rejected"
_UNCOMMITTED = "uncommitted"


@dataclass
class _Phase:
    start: datetime
    end: datetime | None
    kind: str
    priority: str
    is_waiting: bool
    is_discarded: bool = False


@dataclass
class _Reach:
    """Where the consumed business time reaches an amount along the counting segments."""

    at: datetime
    segment: int
    is_reached: bool


def compute_sla(
    events: Sequence[SlaEvent],
    now: datetime,
    calendar: BusinessCalendar,
    policy: SlaPolicy,
    *,
    explain: bool = True,
) -> SlaState:
    """Replay ``events`` up to ``now`` and return the ticket's SLA state (see the module's rules).

    ``explain=False`` skips building ``explanation`` (left empty), for sweeps over many tickets.

    Raises:
        ValueError: ``now`` naive, events not sorted by ``at``, or an unknown priority.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    for previous, event in itertools.pairwise(events):
        if event.at < previous.at:
            raise ValueError(f"events must be sorted by 'at': {event.at.isoformat()} after {previous.at.isoformat()}")

    tz = calendar.tz
    now = now.astimezone(tz)
    priority: str | None = None
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    is_resolved = is_waiting = is_rejected = False
    phases: list[_Phase] = []

    def phase_kind() -> str:
        assert priority is not None
        if is_rejected:
            return _REJECTED
        if is_resolved:
            return _RESOLVED
        if not policy.is_committed(priority):
            return _UNCOMMITTED
        if is_waiting and policy.pause_while_waiting:
            return _PAUSED
        return _COUNTING

    for event in events:
        if event.at > now:
            break
        at = event.at.astimezone(tz)
        if phases:
            phases[-1].end = at
        if event.kind == PRIORITY_SET:
            assert event.priority is not None
            new_target = policy.target_for(event.priority)  # ValueError on an unknown priority
            if event.priority != priority:
                if new_target is not None and (started_at is None or policy.priority_change == "restart"):
                    started_at = at
                if policy.priority_change == "restart" and priority is not None:
                    for phase in phases:
                        phase.is_discarded = True
                priority = event.priority
        elif event.kind == WAITING:
            is_waiting = True
        elif event.kind == WAITING_ENDED:
            is_waiting = False
        elif event.kind in (RESOLVED, CLOSED):
            if not is_resolved:
                is_resolved, resolved_at, is_waiting = True, at, False
        elif event.kind == REOPENED:
            is_resolved = is_rejected = False
            resolved_at = None
        elif event.kind == REJECTED:
            is_rejected, is_waiting = True, False
        if priority is not None:
            phases.append(_Phase(at, None, phase_kind(), priority, is_waiting))
    if phases:
        phases[-1].end = now
        if phases[-1].kind in (_RESOLVED, _REJECTED):
            phases.pop()  # the timeline ends at the resolution (or rejection)
    # Several events at the same instant leave empty phases; keep the last one: a clock started at ``now`` runs.
    phases = [p for i, p in enumerate(phases) if p.end != p.start or i == len(phases) - 1]

    segments = [
        (p.start, now if p.end is None else p.end) for p in phases if p.kind == _COUNTING and not p.is_discarded
    ]
    consumed = sum((calendar.business_time_between(start, end) for start, end in segments), timedelta(0))
    is_open = not is_resolved and not is_rejected
    current_kind = phase_kind() if priority is not None else None
    is_running = is_open and current_kind == _COUNTING
    is_paused = is_open and current_kind == _PAUSED
    explanation = tuple(_explain(phases, calendar)) if explain else ()

    def no_commitment(reason: str) -> SlaState:
        return SlaState(
            priority=priority,
            target=None,
            state=SANS_ENGAGEMENT,
            started_at=started_at,
            deadline_at=None,
            at_risk_at=None,
            breach_at=None,
            consumed=consumed,
            remaining=None,
            overrun=timedelta(0),
            is_running=False,
            is_paused=False,
            met=None,
            resolved_at=resolved_at,
            no_commitment_reason=reason,
            explanation=explanation,
        )

    if priority is None:
        return no_commitment(REASON_NO_PRIORITY)
    if is_rejected:
        return no_commitment(REASON_REJECTED)
    target = policy.target_for(priority)
    if target is None:
        return no_commitment(_reason_uncommitted(priority))

    # The last segment is open-ended while the clock runs: projections from it are not bounded by ``now``.
    open_segments: list[tuple[datetime, datetime | None]] = list(segments)
    if is_running and open_segments:
        open_segments[-1] = (open_segments[-1][0], None)
    deadline = _reach(open_segments, target, calendar)
    threshold = timedelta(
        microseconds=math.ceil((target // timedelta(microseconds=1)) * Fraction(str(policy.at_risk_ratio)))
    )
    at_risk = _reach(open_segments, threshold, calendar)
    breach_at = _breach_at(open_segments, deadline, calendar)

    if is_resolved:
        met: bool | None = consumed <= target
        state = RESPECTE if met else NON_RESPECTE
    else:
        met = None
        if consumed > target:
            state = DEPASSE
        elif consumed >= threshold:
            state = A_RISQUE
        else:
            state = DANS_LES_TEMPS
    return SlaState(
        priority=priority,
        target=target,
        state=state,
        started_at=started_at,
        deadline_at=deadline.at if deadline else None,
        at_risk_at=at_risk.at if at_risk else None,
        breach_at=breach_at,
        consumed=consumed,
        remaining=max(target - consumed, timedelta(0)),
        overrun=max(consumed - target, timedelta(0)),
        is_running=is_running,
        is_paused=is_paused,
        met=met,
        resolved_at=resolved_at,
        no_commitment_reason=None,
        explanation=explanation,
    )


def _reach(
    segments: Sequence[tuple[datetime, datetime | None]], amount: timedelta, calendar: BusinessCalendar
) -> _Reach | None:
    """Find where the business time counted along ``segments`` reaches ``amount``.

    Returns where it was reached, or the projection from the last segment (as if it had kept running), or
    ``None`` without segments. A segment whose end is ``None`` runs for ever.
    """
    consumed_before = timedelta(0)
    projection: _Reach | None = None
    for index, (start, end) in enumerate(segments):
        candidate = calendar.add_business_time(start, amount - consumed_before)
        if end is None or candidate <= end:
            return _Reach(candidate, index, True)
        consumed_before += calendar.business_time_between(start, end)
        projection = _Reach(candidate, index, False)
    return projection


def _breach_at(
    segments: Sequence[tuple[datetime, datetime | None]], deadline: _Reach | None, calendar: BusinessCalendar
) -> datetime | None:
    """The first instant after ``deadline`` at which business time is counted again (dépassé once past it)."""
    if deadline is None or not deadline.is_reached:
        return None
    for start, end in segments[deadline.segment :]:
        candidate = calendar.next_opening(max(start, deadline.at))
        if end is None or candidate < end:
            return candidate
    return None


def _explain(phases: Sequence[_Phase], calendar: BusinessCalendar) -> list[SlaPeriod]:
    periods: list[SlaPeriod] = []
    for phase in phases:
        assert phase.end is not None
        if phase.end == phase.start:
            continue
        if phase.kind == _COUNTING and not phase.is_discarded:
            cursor = phase.start
            reason = REASON_COUNTED_WHILE_WAITING if phase.is_waiting else REASON_COUNTED
            for opening, closing in calendar.business_intervals(phase.start, phase.end):
                if opening > cursor:
                    periods.append(_off_hours(cursor, opening, calendar))
                periods.append(SlaPeriod(opening, closing, True, _elapsed(opening, closing), reason))
                cursor = closing
            if cursor < phase.end:
                periods.append(_off_hours(cursor, phase.end, calendar))
            continue
        if phase.is_discarded:
            reason = REASON_BEFORE_RESTART
        elif phase.kind == _PAUSED:
            reason = REASON_PAUSED
        elif phase.kind == _RESOLVED:
            reason = REASON_RESOLVED_GAP
        elif phase.kind == _REJECTED:
            reason = REASON_REJECTED_GAP
        else:
            reason = _reason_uncommitted(phase.priority)
        business_time = calendar.business_time_between(phase.start, phase.end)
        periods.append(SlaPeriod(phase.start, phase.end, False, business_time, reason))
    return periods


def _elapsed(start: datetime, end: datetime) -> timedelta:
    # Absolute difference: subtracting two datetimes of the same zone would give the wall-clock difference.
    return end.astimezone(UTC) - start.astimezone(UTC)


def _off_hours(start: datetime, end: datetime, calendar: BusinessCalendar) -> SlaPeriod:
    """A gap between business periods, with the holidays and closures it covers (e.g. "jour férié : Ascension")."""
    reasons: list[str] = []
    day: date = start.date()
    while day <= end.date():
        reason = calendar.closure_reason(day)
        if reason is not None and reason not in reasons:
            reasons.append(reason)
        day += timedelta(days=1)
    text = " / ".join([REASON_OFF_HOURS, *reasons])
    return SlaPeriod(start, end, False, timedelta(0), text)
