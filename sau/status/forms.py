"""Forms of the status administration. Dates and times are entered in Paris local time."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from wtforms import BooleanField, Field, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional
from wtforms.widgets import DateTimeLocalInput

from sau.forms import FrenchForm
from sau.status.models import OUTAGE_KINDS

PARIS = ZoneInfo("Europe/Paris")
FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M", "%d/%m/%Y à %H:%M")


class DateTimeLocalField(Field):
    """A `datetime-local` input read as Paris local time; empty means none."""

    widget = DateTimeLocalInput()

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        return self.data.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M") if self.data else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        raw = str(valuelist[0]).strip() if valuelist else ""
        self.data = None
        if not raw:
            return
        for fmt in FORMATS:
            try:
                self.data = datetime.strptime(raw, fmt).replace(tzinfo=PARIS)
                return
            except ValueError:
                continue
        raise ValueError("Date et heure invalides : saisissez par exemple 12/03/2026 22:00.")


class OutageForm(FrenchForm):
    service = SelectField("Service")
    started_at = DateTimeLocalField("Début (heure de Paris)")
    ended_at = DateTimeLocalField("Fin (heure de Paris)")
    kind = SelectField("Étendue", choices=list(OUTAGE_KINDS.items()))
    is_planned = BooleanField("Interruption programmée (exclue du calcul de disponibilité)")
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    tickets = StringField("Tickets liés", validators=[Optional(), Length(max=2000)])


class MaintenanceForm(FrenchForm):
    service = SelectField("Service")
    starts_at = DateTimeLocalField("Début (heure de Paris)")
    ends_at = DateTimeLocalField("Fin (heure de Paris)")
    impact = TextAreaField("Impact prévu", validators=[Optional(), Length(max=5000)])
