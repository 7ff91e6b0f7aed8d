"""JSON body of `POST /api/v1/incidents` (documented in /api/v1/openapi.json)."""
from __future__ import annotations

from pydantic import Field

from sau.api.schemas import Body

SUBJECT_MAX = 200
DESCRIPTION_MAX = 10_000


class NewIncidentBody(Body):
    """An incident of a commune about a service it subscribes to; with `security_alert` (or a `detected_at`)
    it is a security alert: priority "bloquant", the Métropole's security contacts notified at once."""

    service: str = Field(min_length=1, max_length=40, description="Code du service concerné (adhésion de la commune)")
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    description: str = Field(min_length=10, max_length=DESCRIPTION_MAX)
    commune: str | None = Field(default=None, max_length=10,
                                description="Code INSEE ; facultatif si l'utilisateur n'a qu'une commune")
    security_alert: bool = False
    detected_at: str | None = Field(default=None, max_length=40,
                                    description="Détection de l'attaque, ISO 8601 (sans fuseau : heure de Paris)")
