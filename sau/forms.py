"""The base of every HTML form: Flask-WTF (CSRF) with WTForms' own French messages."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms.meta import DefaultMeta

NUL_MESSAGE = "Ce champ contient un caractère nul (U+0000), qui n'est pas accepté."


def has_nul(value: Any) -> bool:
    """Whether a submitted value (text, or lists and objects of text) holds U+0000, which PostgreSQL cannot store in
    a text column: such input is refused with a message rather than failing when written."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


class FrenchForm(FlaskForm):
    """WTForms' built-in messages in French (Flask-WTF alone would need Flask-Babel for them); a field holding
    U+0000 is in error (`has_nul`)."""

    class Meta:
        locales = ("fr_FR", "fr")

        def get_translations(self, form: Any) -> Any:
            return DefaultMeta.get_translations(self, form)  # type: ignore[arg-type]

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if has_nul(field.data):
                field.errors = [*field.errors, NUL_MESSAGE]
                valid = False
        return valid
