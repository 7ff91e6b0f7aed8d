"""Forms of « Mes données », of the agents' masking tool and of the admin import (CSRF through Flask-WTF)."""
from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from sau.forms import FrenchForm

CONFIRMATION_WORD = "SUPPRIMER"


class ContactForm(FrenchForm):
    """Validation is the operation's (sau.privacy.mydata.update_contact): one place for the rules."""

    given_name = StringField("Prénom", render_kw={"autocomplete": "given-name", "maxlength": 100})
    family_name = StringField("Nom", render_kw={"autocomplete": "family-name", "maxlength": 100})
    email = StringField("Adresse e-mail", render_kw={"autocomplete": "email", "maxlength": 254, "type": "email"})


class DeleteAccountForm(FrenchForm):
    understood = BooleanField("Je comprends que mon compte sera supprimé définitivement et que mon nom et mon adresse "
                              "e-mail seront effacés de mes demandes.",
                              validators=[InputRequired(message="Cochez cette case pour confirmer.")])
    confirmation = StringField(f"Pour confirmer, saisissez le mot {CONFIRMATION_WORD}",
                               validators=[InputRequired(message=f"Saisissez {CONFIRMATION_WORD} pour confirmer.")],
                               render_kw={"autocomplete": "off"})

    def validate_confirmation(self, field: StringField) -> None:
        from wtforms.validators import ValidationError

        if (field.data or "").strip().upper() != CONFIRMATION_WORD:
            raise ValidationError(f"Saisissez exactement {CONFIRMATION_WORD} pour confirmer.")


class RedactForm(FrenchForm):
    target = SelectField("Texte concerné", validators=[InputRequired(message="Choisissez la description ou un message.")],
                         validate_choice=False)
    span = TextAreaField("Texte à masquer (copiez-le exactement)",
                         validators=[Length(max=20_000, message="20 000 caractères au plus.")])
    whole = BooleanField("Masquer tout le texte")


class ImportForm(FrenchForm):
    file = FileField("Liste des comptes supprimés (CSV ou JSON)")


class ConfirmImportForm(FrenchForm):
    payload = HiddenField(validators=[InputRequired(message="Aucune liste à importer : recommencez l'envoi.")])
