"""Incident and security alert forms. The values are checked by `sau.incidents.operations` (French messages
shared with the JSON API); the forms carry the CSRF token and the fields."""
from __future__ import annotations

from wtforms import SelectField, StringField, TextAreaField

from sau.forms import FrenchForm as FlaskForm


class IncidentForm(FlaskForm):
    commune = SelectField("Commune", validate_choice=False)
    service = SelectField("Service concerné", validate_choice=False)
    subject = StringField("Objet de l'incident")
    description = TextAreaField("Description de l'incident")


class SecurityAlertForm(IncidentForm):
    subject = StringField("Nature de l'attaque ou de la compromission")
    description = TextAreaField("Description (systèmes touchés, indices, mesures déjà prises)")
    detected_at = StringField("Date et heure de détection (heure de Paris)")
