"""The help request form ("demande d'aide")."""
from __future__ import annotations

from wtforms import EmailField, HiddenField, MultipleFileField, SelectField, StringField, TextAreaField
from wtforms.validators import Email, InputRequired, Length, Optional

from sau.forms import FrenchForm as FlaskForm

SUBJECT_MAX = 200
DESCRIPTION_MAX = 10_000


class HelpRequestForm(FlaskForm):
    class Meta:
        # The app-wide CSRFProtect checks every POST's token before any view runs (sau.extensions): a field of its
        # own would only sign a fresh token on every submission, never shown when the request is accepted (issue
        # 9). The page writes the token itself (templates/help/form.html).
        csrf = False

    service = HiddenField()
    page_url = HiddenField(validators=[Optional(), Length(max=2000, message="Adresse de page trop longue.")])
    # The codes are checked by sau.help.intake (French messages shared with the API), not by WTForms' English
    # "Not a valid choice".
    category = SelectField("Catégorie", validators=[InputRequired(message="Choisissez une catégorie.")],
                           validate_choice=False)
    commune = SelectField("Commune concernée", validators=[Optional()], validate_choice=False)
    school = SelectField("Établissement scolaire", validators=[Optional()], validate_choice=False)
    subject = StringField(
        "Objet de votre demande",
        validators=[
            InputRequired(message="Indiquez l'objet de votre demande."),
            Length(max=SUBJECT_MAX, message=f"L'objet ne doit pas dépasser {SUBJECT_MAX} caractères."),
        ],
    )
    description = TextAreaField(
        "Décrivez votre demande",
        validators=[
            InputRequired(message="Décrivez votre demande."),
            Length(min=10, max=DESCRIPTION_MAX,
                   message=f"La description doit compter entre 10 et {DESCRIPTION_MAX} caractères."),
        ],
    )
    email = EmailField(
        "Votre adresse e-mail",
        validators=[
            Optional(),
            Length(max=254, message="Adresse e-mail trop longue."),
            Email(message="Adresse e-mail invalide (exemple : prenom.nom@exemple.fr).", check_deliverability=False),
        ],
    )
    attachments = MultipleFileField("Pièces jointes (facultatif)")


class ReplyForm(FlaskForm):
    version = HiddenField()
    body = TextAreaField(
        "Votre réponse",
        validators=[InputRequired(message="Saisissez votre réponse."), Length(max=20_000, message="Réponse trop longue.")],
    )
    attachments = MultipleFileField("Pièces jointes (facultatif)")


class ReopenForm(FlaskForm):
    version = HiddenField()
    reason = TextAreaField(
        "Pourquoi rouvrir la demande ?",
        validators=[InputRequired(message="Expliquez pourquoi le problème persiste."), Length(max=20_000)],
    )
