"""SLA engine of SAU: business calendar, policies, ticket clocks and compliance — pure Python, no I/O.

The rules are the Toodego annex § 6.1.a: business hours Monday–Friday 09:00–17:00 Europe/Paris without French
public holidays; resolution within 8 business hours (bloquant) or 24 (majeur) of the assignment of the priority,
no commitment for mineur; deadlines met in 95 % of cases for each commune.
"""

from sla.availability import (
    AVAILABILITY_TARGET,
    DEFAULT_PARTIAL_WEIGHT,
    Availability,
    OutageSpan,
    availability,
    daily_availability,
    monthly_availability,
)
from sla.calendar import DEFAULT_WEEKLY_HOURS, BusinessCalendar, OpeningHours
from sla.clock import (
    A_RISQUE,
    DANS_LES_TEMPS,
    DEPASSE,
    EVENT_KINDS,
    NON_RESPECTE,
    RESPECTE,
    SANS_ENGAGEMENT,
    STATE_LABELS,
    STATES,
    SlaEvent,
    SlaPeriod,
    SlaState,
    compute_sla,
)
from sla.compliance import (
    COMMITTED_PRIORITIES,
    DEFAULT_COMPLIANCE_TARGET,
    ComplianceFigures,
    ComplianceTicket,
    compliance_by,
    compute_compliance,
    figures_from_counts,
)
from sla.policy import DEFAULT_TARGETS, PRIORITIES, PRIORITY_CHANGE_RULES, PriorityChange, SlaPolicy

__all__ = [
    "AVAILABILITY_TARGET",
    "A_RISQUE",
    "COMMITTED_PRIORITIES",
    "DANS_LES_TEMPS",
    "DEFAULT_COMPLIANCE_TARGET",
    "DEFAULT_PARTIAL_WEIGHT",
    "DEFAULT_TARGETS",
    "DEFAULT_WEEKLY_HOURS",
    "DEPASSE",
    "EVENT_KINDS",
    "NON_RESPECTE",
    "PRIORITIES",
    "PRIORITY_CHANGE_RULES",
    "RESPECTE",
    "SANS_ENGAGEMENT",
    "STATES",
    "STATE_LABELS",
    "Availability",
    "BusinessCalendar",
    "ComplianceFigures",
    "ComplianceTicket",
    "OpeningHours",
    "OutageSpan",
    "PriorityChange",
    "SlaEvent",
    "SlaPeriod",
    "SlaPolicy",
    "SlaState",
    "availability",
    "compliance_by",
    "compute_compliance",
    "compute_sla",
    "daily_availability",
    "figures_from_counts",
    "monthly_availability",
]
