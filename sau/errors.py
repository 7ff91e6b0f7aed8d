"""Domain errors raised by operations and turned into HTTP answers at the boundary."""
from __future__ import annotations


class SauError(Exception):
    """Base class. `message` is French and safe to show to the user."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


FIELD_LABELS = {
    "service": "service", "category": "catégorie", "commune": "commune", "school": "établissement",
    "subject": "objet", "description": "description", "email": "e-mail", "page_url": "adresse de la page",
    "attachments": "pièces jointes", "body": "message", "priority": "priorité", "status": "statut",
    "reason": "motif", "resolution_note": "note de résolution", "version": "version", "assignee": "attribution",
    "organisation": "organisation", "duplicate_of": "ticket d'origine",
}


class ValidationFailed(SauError):
    status = 422
    code = "validation_error"

    @classmethod
    def for_fields(cls, fields: dict[str, str]) -> ValidationFailed:
        names = ", ".join(FIELD_LABELS.get(f, f) for f in fields)
        return cls(f"Certains champs sont invalides : {names}.", fields)


class WorkflowError(SauError):
    """The action is not possible in the ticket's current state."""

    status = 409
    code = "invalid_transition"


class ConflictError(SauError):
    """Someone else changed the ticket since it was read (optimistic locking)."""

    status = 409
    code = "conflict"


class PermissionDenied(SauError):
    status = 403
    code = "forbidden"


class NotFound(SauError):
    status = 404
    code = "not_found"
