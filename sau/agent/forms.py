"""Forms of the agent workspace. Each carries the ticket version read by the agent (optimistic locking)."""
from __future__ import annotations

from wtforms import BooleanField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from sau.forms import FrenchForm as FlaskForm
from sau.tickets.models import PRIORITIES

TEXT_MAX = 20_000


class VersionedForm(FlaskForm):
    version = HiddenField(validators=[InputRequired(message="Version du ticket manquante : rechargez la page.")])


class TakeForm(VersionedForm):
    pass


class AssignForm(VersionedForm):
    assignee = SelectField("Attribuer à", validators=[Optional()])


class PriorityForm(VersionedForm):
    priority = RadioField(
        "Priorité après diagnostic",
        choices=list(PRIORITIES.items()),
        validators=[InputRequired(message="Choisissez une priorité.")],
    )
    justification = TextAreaField("Diagnostic (facultatif)", validators=[Optional(), Length(max=TEXT_MAX)])


class CommentForm(VersionedForm):
    body = TextAreaField(
        "Message",
        validators=[InputRequired(message="Saisissez un message."), Length(max=TEXT_MAX, message="Message trop long.")],
    )
    internal = BooleanField("Note interne (invisible pour le demandeur)")


class QuestionForm(VersionedForm):
    body = TextAreaField(
        "Question au demandeur",
        validators=[InputRequired(message="Saisissez votre question."), Length(max=TEXT_MAX)],
    )


class ResolveForm(VersionedForm):
    note = TextAreaField(
        "Note de résolution (visible par le demandeur)",
        validators=[InputRequired(message="Saisissez la note de résolution."), Length(max=TEXT_MAX)],
    )


class ReasonForm(VersionedForm):
    reason = TextAreaField(
        "Motif", validators=[InputRequired(message="Indiquez le motif."), Length(max=TEXT_MAX)]
    )


class DuplicateForm(ReasonForm):
    duplicate_of = StringField(
        "Référence du ticket d'origine",
        validators=[InputRequired(message="Indiquez la référence du ticket d'origine."), Length(max=20)],
    )


class TransferForm(ReasonForm):
    organisation = SelectField("Transférer à", validators=[InputRequired(message="Choisissez une organisation.")])
