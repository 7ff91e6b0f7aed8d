"""Forms of the administration. They check presence, types and lengths; the business rules (formats,
uniqueness, overlaps…) are checked by sau.admin.operations, whose field errors are shown on the same fields.
Select choices are filled by the views."""
from __future__ import annotations

from typing import Any

from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from sau.admin.operations import RULE_OFFERS
from sau.auth.models import ROLES
from sau.forms import FrenchForm
from sau.orgs.models import OFFERS
from sau.routing.models import TARGETS


class AdminForm(FrenchForm):
    """The administration's forms (French messages, CSRF)."""


class FrIntegerField(IntegerField):
    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist or str(valuelist[0]).strip() == "":
            self.data = None
            return
        try:
            self.data = int(str(valuelist[0]).strip())
        except ValueError:
            self.data = None
            raise ValueError("Saisissez un nombre entier, sans espace ni lettre.") from None


class FrDateField(DateField):
    """Accepts the HTML date input (AAAA-MM-JJ) and the French notation (JJ/MM/AAAA); empty means no date."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist or str(valuelist[0]).strip() == "":
            self.data = None
            return
        try:
            super().process_formdata([str(valuelist[0]).strip()])
        except ValueError:
            raise ValueError("Date invalide : utilisez le format JJ/MM/AAAA ou AAAA-MM-JJ.") from None


# Plain text inputs (styled like the others, predictable for assistive technologies) rather than the
# browsers' number and date widgets.
NUMBER = {"inputmode": "numeric", "type": "text", "size": 8}
DATE = {"type": "text", "inputmode": "numeric", "autocomplete": "off", "size": 12}


def _date(label: str, required_message: str | None = None) -> FrDateField:
    validators: list[Any] = [InputRequired(message=required_message)] if required_message else [Optional()]
    return FrDateField(label, validators=validators, format=["%d/%m/%Y", "%Y-%m-%d"], render_kw=DATE)


def _required(message: str) -> InputRequired:
    return InputRequired(message=message)


class ActionForm(AdminForm):
    """A button that changes something (deactivate, revoke, delete…): only the CSRF token."""


class CommuneForm(AdminForm):
    code = StringField("Code INSEE", validators=[_required("Indiquez le code INSEE."), Length(max=20)],
                       render_kw={"inputmode": "numeric", "autocomplete": "off", "size": 6})
    name = StringField("Nom", validators=[_required("Indiquez le nom de la commune."), Length(max=200)])
    population = FrIntegerField("Population (facultatif)", validators=[Optional()], render_kw=NUMBER)


class ServiceForm(AdminForm):
    name = StringField("Nom", validators=[_required("Indiquez le nom du service."), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)], render_kw={"rows": 3})
    has_sau = BooleanField("Ce service dispose du SAU (les usagers peuvent demander de l'aide)")
    no_sau_reason = TextAreaField("Explication affichée si le service n'a pas de SAU",
                                  validators=[Optional(), Length(max=5000)], render_kw={"rows": 3})
    asks_commune = BooleanField("Le formulaire demande la commune")
    asks_school = BooleanField("Le formulaire demande l'établissement scolaire")


class CategoryForm(AdminForm):
    label = StringField("Libellé", validators=[_required("Indiquez le libellé."), Length(max=200)])
    position = FrIntegerField("Ordre d'affichage", validators=[_required("Indiquez l'ordre d'affichage.")],
                              default=0, render_kw=NUMBER)
    requires_commune = BooleanField("La commune est obligatoire pour cette catégorie (téléservice communal)")


class NewCategoryForm(CategoryForm):
    code = StringField("Code", validators=[_required("Indiquez le code de la catégorie."), Length(max=40)],
                       render_kw={"autocomplete": "off"})


class SubscriptionForm(AdminForm):
    """Editing a subscription: its commune and service are fixed (end it and create another to change them)."""

    offer = SelectField("Offre Toodego", choices=[("", "— Sans objet (autre service) —")] + list(OFFERS.items()),
                        validators=[Optional()])
    starts_on = _date("Date de début", "Indiquez la date de début de l'adhésion.")
    ends_on = _date("Date de fin (facultatif)")


class NewSubscriptionForm(SubscriptionForm):
    commune = SelectField("Commune", validators=[_required("Choisissez une commune.")])
    service = SelectField("Service", validators=[_required("Choisissez un service.")])


class EndSubscriptionForm(AdminForm):
    ends_on = _date("Dernier jour de l'adhésion", "Indiquez le dernier jour de l'adhésion.")


class SchoolForm(AdminForm):
    uai = StringField("Code UAI", validators=[_required("Indiquez le code UAI."), Length(max=20)],
                      render_kw={"autocomplete": "off", "size": 9})
    name = StringField("Nom de l'établissement", validators=[_required("Indiquez le nom."), Length(max=200)])
    commune = SelectField("Commune", validators=[_required("Choisissez la commune.")])


class SchoolAdminForm(AdminForm):
    email = StringField("Adresse e-mail du compte", validators=[_required("Indiquez l'adresse e-mail."),
                                                                 Length(max=254)],
                        render_kw={"type": "email", "autocomplete": "off"})


class RoutingRuleForm(AdminForm):
    position = FrIntegerField("Position", validators=[_required("Indiquez la position.")],
                              render_kw=NUMBER)
    name = StringField("Nom", validators=[_required("Indiquez le nom de la règle."), Length(max=200)])
    service = SelectField("Service", validators=[Optional()])
    category_code = SelectField("Catégorie", validators=[Optional()])
    commune = SelectField("Commune", validators=[Optional()])
    offer = SelectField("Offre de la commune", choices=[("", "— Toutes —")] + list(RULE_OFFERS.items()),
                        validators=[Optional()])
    target = SelectField("Cible", choices=list(TARGETS.items()), validators=[_required("Choisissez la cible.")])
    target_organisation = SelectField("Organisation désignée", validators=[Optional()])
    level = SelectField("Niveau de support", choices=[("1", "Niveau 1"), ("2", "Niveau 2")],
                        validators=[_required("Choisissez le niveau.")])
    reason = TextAreaField("Motif affiché dans le routage du ticket", validators=[Optional(), Length(max=2000)],
                           render_kw={"rows": 3})
    is_active = BooleanField("Règle active", default=True)


class RoutingTestForm(AdminForm):
    """Read-only simulation (GET): nothing is created, so no CSRF token."""

    class Meta:
        csrf = False

    service = SelectField("Service", validators=[_required("Choisissez un service.")])
    category = SelectField("Catégorie", validators=[Optional()])
    commune = SelectField("Commune", validators=[Optional()])
    school = SelectField("Établissement", validators=[Optional()])


class MembershipForm(AdminForm):
    email = StringField("Adresse e-mail du compte", validators=[_required("Indiquez l'adresse e-mail."),
                                                                 Length(max=254)],
                        render_kw={"type": "email", "autocomplete": "off"})
    organisation = SelectField("Organisation", validators=[_required("Choisissez l'organisation.")])
    role = SelectField("Rôle", choices=[("", "— Choisissez —")] + list(ROLES.items()),
                       validators=[_required("Choisissez le rôle.")])
    service = SelectField("Service (facultatif, par exemple pour un référent)", validators=[Optional()])


class FaqForm(AdminForm):
    service = SelectField("Service", validators=[_required("Choisissez le service.")])
    question = StringField("Question", validators=[_required("Indiquez la question."), Length(max=300)])
    answer = TextAreaField("Réponse", validators=[_required("Indiquez la réponse."), Length(max=20_000)],
                           render_kw={"rows": 6})
    keywords = StringField("Mots-clés (facultatif, séparés par des espaces)", validators=[Optional(), Length(max=500)])
    is_published = BooleanField("Publiée (visible par les usagers)", default=True)
