"""The base of every HTML form: Flask-WTF (CSRF) with WTForms' own French messages."""
from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms.meta import DefaultMeta


class FrenchForm(FlaskForm):
    """WTForms' built-in messages in French (Flask-WTF alone would need Flask-Babel for them)."""

    class Meta:
        locales = ("fr_FR", "fr")

        def get_translations(self, form: Any) -> Any:
            return DefaultMeta.get_translations(self, form)  # type: ignore[arg-type]
