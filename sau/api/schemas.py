"""Request bodies of the JSON API, validated with pydantic; errors are translated to French per field."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator

from sau.help.forms import DESCRIPTION_MAX, SUBJECT_MAX


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NewRequestBody(Body):
    service: str = Field(min_length=1, max_length=40)
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    description: str = Field(min_length=10, max_length=DESCRIPTION_MAX)
    commune: str | None = Field(default=None, max_length=10)
    category: str | None = Field(default=None, max_length=40)
    school: str | None = Field(default=None, max_length=8)
    email: EmailStr | None = Field(default=None, max_length=254)
    page_url: str | None = Field(default=None, max_length=2000)

    @field_validator("page_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("page_url must be an http(s) URL")
        return value or None


class PriorityBody(Body):
    priority: Literal["bloquant", "majeur", "mineur"]
    justification: str = Field(default="", max_length=20_000)
    version: int | None = None


class CommentBody(Body):
    body: str = Field(min_length=1, max_length=20_000)
    internal: bool = False
    version: int | None = None


class StatusBody(Body):
    status: Literal["en_cours", "en_attente", "resolu", "clos", "rejete", "doublon"]
    message: str | None = Field(default=None, max_length=20_000)
    duplicate_of: str | None = Field(default=None, max_length=20)
    version: int | None = None


class AssignBody(Body):
    assignee_id: int | None
    version: int | None = None


class EscalateBody(Body):
    reason: str = Field(min_length=1, max_length=20_000)
    version: int | None = None


class TransferBody(Body):
    organisation: str = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=1, max_length=20_000)
    version: int | None = None


MESSAGES = {
    "missing": "Champ obligatoire.",
    "string_too_long": "Trop long : {max_length} caractères au plus.",
    "string_too_short": "Trop court : {min_length} caractère(s) au moins.",
    "string_type": "Une chaîne de caractères est attendue.",
    "int_type": "Un nombre entier est attendu.",
    "int_parsing": "Un nombre entier est attendu.",
    "bool_type": "Un booléen (true ou false) est attendu.",
    "bool_parsing": "Un booléen (true ou false) est attendu.",
    "extra_forbidden": "Champ inconnu.",
    "literal_error": "Valeur non autorisée (valeurs possibles : {expected}).",
    "model_type": "Un objet JSON est attendu.",
    "model_attributes_type": "Un objet JSON est attendu.",
}


def translate(exc: ValidationError) -> dict[str, str]:
    """Map pydantic errors to {field: French message}."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        kind = err["type"]
        ctx: dict[str, Any] = dict(err.get("ctx") or {})
        if kind == "value_error" and loc == "email":
            message = "Adresse e-mail invalide."
        elif kind == "value_error" and loc == "page_url":
            message = "Adresse de page invalide (http:// ou https:// attendu)."
        elif kind in MESSAGES:
            try:
                message = MESSAGES[kind].format(**ctx)
            except (KeyError, IndexError):
                message = MESSAGES[kind]
        else:
            message = "Valeur invalide."
        fields.setdefault(loc, message)
    return fields
