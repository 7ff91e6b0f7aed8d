"""The audit journal of administration: every change to reference data or to memberships is one immutable
event (who, when, what, before/after), as roles are granted and revoked by admins (issue 4, point 3)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.auth.models import User
from sau.extensions import db
from sau.modelbase import append_only

# French labels of the actions, for the journal page.
ACTION_LABELS = {
    "organisation.created": "Commune créée",
    "organisation.updated": "Commune modifiée",
    "organisation.deactivated": "Commune désactivée",
    "organisation.reactivated": "Commune réactivée",
    "service.updated": "Service modifié",
    "service.sla_targets": "Délais SLA du service modifiés",
    "calendar.day_added": "Jour particulier ajouté au calendrier",
    "outage.recorded": "Interruption de service enregistrée",
    "outage.updated": "Interruption de service modifiée",
    "maintenance.announced": "Maintenance programmée annoncée",
    "maintenance.changed": "Maintenance programmée modifiée",
    "maintenance.cancelled": "Maintenance programmée annulée",
    "calendar.day_removed": "Jour particulier retiré du calendrier",
    "category.created": "Catégorie créée",
    "category.updated": "Catégorie modifiée",
    "category.deleted": "Catégorie supprimée",
    "subscription.created": "Adhésion créée",
    "subscription.updated": "Adhésion modifiée",
    "subscription.ended": "Adhésion terminée",
    "school.created": "Établissement créé",
    "school.updated": "Établissement modifié",
    "school_administrator.added": "Administrateur d'établissement ajouté",
    "school_administrator.removed": "Administrateur d'établissement retiré",
    "routing_rule.created": "Règle de routage créée",
    "routing_rule.updated": "Règle de routage modifiée",
    "routing_rule.activated": "Règle de routage activée",
    "routing_rule.deactivated": "Règle de routage désactivée",
    "membership.granted": "Habilitation accordée",
    "membership.revoked": "Habilitation retirée",
    "faq.created": "Question fréquente créée",
    "faq.updated": "Question fréquente modifiée",
    "faq.published": "Question fréquente publiée",
    "faq.unpublished": "Question fréquente dépubliée",
    "faq.deleted": "Question fréquente supprimée",
    "webhook_endpoint.created": "Webhook créé",
    "webhook_endpoint.disabled": "Webhook désactivé",
    "webhook_endpoint.enabled": "Webhook réactivé",
    "webhook_endpoint.secret_rotated": "Secret de webhook renouvelé",
    "organisation.exported": "Export complet de la commune (art. 12.3)",
}
# French names of the fields recorded in `data`, for the journal page.
FIELD_LABELS = {
    "code": "code", "name": "nom", "population": "population", "is_active": "active", "description": "description",
    "has_sau": "SAU", "no_sau_reason": "motif d'absence de SAU", "asks_commune": "demande la commune",
    "asks_school": "demande l'établissement", "service": "service", "label": "libellé", "position": "position",
    "requires_commune": "commune obligatoire", "commune": "commune", "offer": "offre", "starts_on": "début",
    "ends_on": "fin", "uai": "code UAI", "school": "établissement", "user": "compte", "user_id": "n° de compte",
    "category": "catégorie", "target": "cible", "target_organisation": "organisation désignée", "level": "niveau",
    "reason": "motif", "organisation": "organisation", "role": "rôle", "question": "question", "answer": "réponse",
    "keywords": "mots-clés", "is_published": "publiée", "url": "adresse", "events": "événements",
    "secret_rotated_at": "secret renouvelé le",
}


class AuditEvent(db.Model):
    """One immutable entry of the administration journal."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    # The actor's label is copied so the journal stays readable if the account is later erased (art. 7).
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_label: Mapped[str] = mapped_column(sa.String(200), default="")
    action: Mapped[str] = mapped_column(sa.String(60))
    object_type: Mapped[str] = mapped_column(sa.String(40))
    object_id: Mapped[int | None]
    object_label: Mapped[str] = mapped_column(sa.String(300), default="")
    # {"before": {...} | None, "after": {...} | None}
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    actor: Mapped[User | None] = relationship()

    __table_args__ = (sa.Index("ix_audit_events_object", "object_type", "object_id"),)

    @property
    def action_label(self) -> str:
        return ACTION_LABELS.get(self.action, self.action)

    @property
    def before(self) -> dict[str, Any] | None:
        return (self.data or {}).get("before")

    @property
    def after(self) -> dict[str, Any] | None:
        return (self.data or {}).get("after")

    def changes(self) -> list[tuple[str, Any, Any]]:
        """(field, before, after) for every field whose value differs (all fields on creation or deletion)."""
        before, after = self.before or {}, self.after or {}
        keys = list(before) + [k for k in after if k not in before]
        return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


append_only(AuditEvent, "audit events")
