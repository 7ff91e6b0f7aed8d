"""Administration of API tokens (/admin/jetons): create (shown once), list, revoke. Métropole admins only,
through the one policy layer; every creation and revocation is written to the administration journal."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, widgets
from wtforms.validators import InputRequired, Length

from sau.auth import policy
from sau.auth.models import API_SCOPES, ApiToken, User
from sau.auth.tokens import CreatedToken, create_token, revoke_token
from sau.clock import now_utc
from sau.errors import SauError
from sau.extensions import db, login_manager
from sau.orgs.models import Organisation

bp = Blueprint("admin_tokens", __name__, url_prefix="/admin/jetons")


class TokenForm(FlaskForm):
    organisation = SelectField("Organisation", validators=[InputRequired(message="Choisissez une organisation.")])
    name = StringField("Nom du jeton (le logiciel qui l'utilisera)", validators=[
        InputRequired(message="Donnez un nom au jeton."), Length(max=100, message="100 caractères au plus.")])
    scopes = SelectMultipleField(
        "Autorisations", choices=list(API_SCOPES.items()),
        option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False),
        validators=[InputRequired(message="Choisissez au moins une autorisation.")])


@bp.before_request
def _check_access() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not policy.can_manage_api_tokens(current_user):  # type: ignore[arg-type]
        abort(403)
    return None


@bp.after_request
def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"  # the page may show a secret
    return response


def _form() -> TokenForm:
    form = TokenForm()
    orgs = db.session.scalars(sa.select(Organisation).order_by(Organisation.kind.desc(), Organisation.name)).all()
    form.organisation.choices = [("", "— Choisissez —")] + [(o.code, o.name) for o in orgs]
    return form


def _page(form: TokenForm, created: CreatedToken | None = None, status: int = 200) -> Any:
    tokens = db.session.scalars(sa.select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id)).all()
    return render_template("auth/api_tokens.html", form=form, tokens=tokens, created=created), status


@bp.get("")
def index() -> Any:
    return _page(_form())


@bp.post("")
def create() -> Any:
    form = _form()
    if not form.validate_on_submit():
        return _page(form, status=422)
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == form.organisation.data))
    if org is None:
        abort(400)
    actor: User = current_user  # type: ignore[assignment]
    try:
        created = create_token(actor, org, form.name.data or "", list(form.scopes.data or []), now_utc())
    except SauError as exc:
        db.session.rollback()
        for name, message in (exc.fields or {}).items():
            if name in form:
                form[name].errors = [message]
        return _page(form, status=exc.status)
    db.session.commit()
    return _page(_form(), created=created)


@bp.post("/<int:token_id>/revoquer")
def revoke(token_id: int) -> Any:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    revoke_token(current_user, token, now_utc())  # type: ignore[arg-type]
    db.session.commit()
    flash(f"Le jeton « {token.name} » est révoqué.", "success")
    return redirect(url_for("admin_tokens.index"), code=303)
