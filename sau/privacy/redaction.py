"""Agents mask personal data a usager typed into free text (a phone number, an address, a health detail…).

Convention-cadre art. 7.2: the parties commit to "Assurer la protection des données partagées" and to minimise
risks to confidentiality. An agent who may work the ticket (policy.can_redact) replaces a span of the description
or of a comment — or the whole field — with "[donnée masquée]". The same text is masked in the copies the SAU
made of it (the ticket's event data, its notifications and webhook bodies in the outbox). The change is logged:
a `ticket.redacted` event (internal) says who masked which field when, and how many characters — never the text —
and the access log gets a "ticket.redaction" entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from sau.auth import policy
from sau.auth.models import User
from sau.errors import NotFound, PermissionDenied, ValidationFailed
from sau.extensions import db
from sau.notify.models import Notification
from sau.privacy.erasure import Scrubber, _scrub_rows
from sau.tickets.models import Comment, Ticket, TicketEvent

MASK = "[donnée masquée]"
MIN_SPAN = 3
FIELD_DESCRIPTION = "description"
FIELD_COMMENT = "comment"


@dataclass(frozen=True)
class Redaction:
    field: str
    comment_id: int | None
    masked_chars: int


def redact(ticket: Ticket, actor: User, now: datetime, *, field: str, comment_id: int | None = None,
           span: str = "", whole: bool = False) -> Redaction:
    """Mask `span` (every occurrence, case-insensitive) or the whole field. Raises PermissionDenied (the actor may
    not work the ticket), NotFound (no such comment on this ticket) or ValidationFailed (French message)."""
    from sau.privacy.access_log import log_access
    from sau.tickets.operations import record_event

    if not policy.can_redact(actor, ticket):
        raise PermissionDenied("Vous n'êtes pas habilité à traiter ce ticket.")
    comment: Comment | None = None
    if field == FIELD_DESCRIPTION:
        original = ticket.description
    elif field == FIELD_COMMENT:
        comment = db.session.get(Comment, comment_id) if comment_id else None
        if comment is None or comment.ticket_id != ticket.id:
            raise NotFound("Ce message n'existe pas sur ce ticket.")
        original = comment.body
    else:
        raise ValidationFailed.for_fields({"target": "Choisissez la description ou un message."})
    span = (span or "").strip()
    if whole:
        if original == MASK:
            raise ValidationFailed.for_fields({"target": "Ce texte est déjà entièrement masqué."})
        scrub = Scrubber([], [original], MASK) if len(original) >= MIN_SPAN else None
        new, masked = MASK, len(original)
    else:
        if len(span) < MIN_SPAN:
            raise ValidationFailed.for_fields({"span": f"Indiquez le texte à masquer ({MIN_SPAN} caractères au moins), "
                                                       "ou cochez « masquer tout le texte »."})
        scrub = Scrubber([], [span], MASK)
        new = scrub.text(original) or ""
        if new == original:
            raise ValidationFailed.for_fields({"span": "Ce texte ne figure pas dans le champ choisi."})
        masked = len(original) - len(new.replace(MASK, ""))
    if comment is not None:
        comment.body = new
    else:
        ticket.description = new
    if scrub is not None:
        # The copies: event data (e.g. a reopening reason), rendered notifications, webhook bodies.
        _scrub_rows(TicketEvent, TicketEvent.ticket_id == ticket.id, (), ("data",), scrub)
        ids = list(db.session.scalars(sa.select(Notification.id).where(Notification.ticket_id == ticket.id)))
        _scrub_rows(Notification, Notification.id.in_(ids), ("subject",), ("payload",), scrub)
    record_event(ticket, "ticket.redacted", now, actor,
                 {"field": field, "comment_id": comment.id if comment else None, "whole": whole,
                  "masked_chars": masked}, is_public=False)
    log_access(actor, "ticket.redaction", ticket.requester_id, commune_id=ticket.commune_id, ticket_id=ticket.id,
               detail=f"{ticket.reference} : {'message' if comment else 'description'}")
    db.session.flush()
    db.session.expire(ticket)
    return Redaction(field, comment.id if comment else None, masked)
