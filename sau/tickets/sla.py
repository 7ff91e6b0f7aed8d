"""Wiring between tickets and the pure SLA engine: the stored SLA figures derive from the event log."""
from __future__ import annotations

from datetime import datetime

from sau.tickets.models import Ticket


def refresh(ticket: Ticket, now: datetime) -> None:
    """Recompute the ticket's stored SLA fields from its events (filled in by the SLA wiring)."""
    return None
