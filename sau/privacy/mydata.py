"""« Mes données »: what the SAU holds about a signed-in person, and the correction of their contact details.

Convention-cadre art. 7.2: "Garantir à l'utilisateur l'exercice effectif de ses droits sur ses données à caractère
personnel (accès, modification, suppression...)". The export is everything held about the person that they may see:
their account, identities, memberships, preferences, sign-in sessions, the requests they made (with their public
history, replies and attachments' descriptions) and the notifications addressed to them. Agents' internal notes
on their requests are not part of it — they are not shown to requesters anywhere in the SAU; a request for them
goes through the Data Protection Officer (convention, "Exercice des droits": the DPO's form on Toodego).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sau.auth.models import LoginSession, User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.notify.models import Notification
from sau.notify.operations import preferences_of
from sau.privacy.models import AccountDeletionWarning
from sau.tickets.models import Comment, Ticket

FORMAT = "sau-mes-donnees/1"
EMAIL_RE = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
NAME_RE = re.compile(r"^[^\x00-\x1f\x7f<>]*$")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def requests_of(user: User) -> list[Ticket]:
    return list(db.session.scalars(sa.select(Ticket).where(Ticket.requester_id == user.id)
                                   .order_by(Ticket.created_at, Ticket.id)))


def notification_count(user: User) -> int:
    return int(db.session.scalar(sa.select(sa.func.count(Notification.id)).where(Notification.user_id == user.id)) or 0)


def _ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "reference": ticket.reference,
        "kind": ticket.kind,
        "service": ticket.service.code,
        "commune": ticket.commune.name if ticket.commune else None,
        "subject": ticket.subject,
        "description": ticket.description,
        "page_url": ticket.page_url,
        "contact_email": ticket.requester_email,
        "status": ticket.status,
        "priority": ticket.priority,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "resolution_note": ticket.resolution_note,
        "comments": [{"at": _iso(c.created_at), "author": c.author_label, "from_me": c.is_from_requester,
                      "body": c.body} for c in ticket.comments if not c.is_internal],
        "history": [{"at": _iso(e.at), "type": e.type, "actor": e.actor_label} for e in ticket.events if e.is_public],
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
                         "created_at": _iso(a.created_at)} for a in ticket.attachments if not a.is_internal],
    }


def export_for(user: User, now: datetime) -> dict[str, Any]:
    """Everything held about `user` that they may see, as plain JSON-ready data (machine-readable)."""
    own_tickets = requests_of(user)
    own_ids = {t.id for t in own_tickets}
    other_comments = db.session.scalars(sa.select(Comment).where(Comment.author_id == user.id,
                                                                 Comment.ticket_id.not_in(own_ids) if own_ids else sa.true())
                                        .order_by(Comment.id))
    notifications = db.session.scalars(sa.select(Notification).where(Notification.user_id == user.id)
                                       .order_by(Notification.created_at, Notification.id))
    sessions = db.session.scalars(sa.select(LoginSession).where(LoginSession.user_id == user.id)
                                  .order_by(LoginSession.created_at))
    warning = db.session.get(AccountDeletionWarning, user.id)
    return {
        "format": FORMAT,
        "generated_at": now.isoformat(),
        "account": {
            "id": user.id, "given_name": user.given_name, "family_name": user.family_name, "email": user.email,
            "email_verified": user.is_email_verified, "identity_certified": user.is_identity_certified,
            "created_at": _iso(user.created_at), "last_seen_at": _iso(user.last_seen_at),
            "deletion_scheduled_at": _iso(warning.deletion_due_at) if warning else None,
        },
        "identities": [{"issuer": i.issuer, "sub": i.subject, "created_at": _iso(i.created_at)} for i in user.identities],
        "memberships": [{"organisation": m.organisation.name, "role": m.role_label,
                         "service": m.service.name if m.service else None} for m in user.memberships],
        "notification_preferences": preferences_of(user),
        "sessions": [{"created_at": _iso(s.created_at), "ended_at": _iso(s.ended_at), "issuer": s.issuer}
                     for s in sessions],
        "requests": [_ticket(t) for t in own_tickets],
        "comments_on_other_tickets": [{"ticket": c.ticket.reference, "at": _iso(c.created_at), "body": c.body,
                                       "internal": c.is_internal} for c in other_comments],
        "notifications": [{"at": _iso(n.created_at), "channel": n.channel, "kind": n.kind, "subject": n.subject,
                           "email": n.email, "ticket": n.ticket.reference if n.ticket else None, "status": n.status,
                           "sent_at": _iso(n.sent_at), "read_at": _iso(n.read_at)} for n in notifications],
    }


def update_contact(user: User, given_name: str, family_name: str, email: str, now: datetime) -> list[str]:
    """Correct the person's names and e-mail address (right of rectification). A new address is not verified
    until the provider confirms it at the next sign-in. Their open requests' contact address follows. Returns the
    French labels of the fields that changed. Raises ValidationFailed (French message per field)."""
    given, family, address = (given_name or "").strip(), (family_name or "").strip(), (email or "").strip()
    errors: dict[str, str] = {}
    for field, value, label in (("given_name", given, "votre prénom"), ("family_name", family, "votre nom")):
        if not value:
            errors[field] = f"Indiquez {label}."
        elif len(value) > 100:
            errors[field] = "100 caractères au plus."
        elif not NAME_RE.match(value):
            errors[field] = "Caractères non autorisés (< > ou caractères de contrôle)."
    if not address:
        errors["email"] = "Indiquez votre adresse e-mail."
    elif len(address) > 254 or not EMAIL_RE.match(address):
        errors["email"] = "Adresse e-mail invalide (exemple : prenom.nom@exemple.fr)."
    if errors:
        raise ValidationFailed("Le formulaire contient des erreurs : corrigez les champs signalés.", errors)
    changed = []
    if given != user.given_name:
        changed.append("prénom")
    if family != user.family_name:
        changed.append("nom")
    if address.lower() != (user.email or "").lower():
        changed.append("adresse e-mail")
        old = user.email
        db.session.execute(sa.update(Ticket.__table__).where(
            Ticket.__table__.c.requester_id == user.id,
            Ticket.__table__.c.requester_email == old).values(requester_email=address))
        user.is_email_verified = False
    user.given_name, user.family_name, user.email = given, family, address
    db.session.flush()
    return changed
