"""« Mes données » (see, download, correct, delete), the agents' masking of personal data in a ticket, and the admin
import of GrandLyon Connect's deleted accounts. Views parse, ask the policy, call an operation, commit, render."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from sau.auth import policy
from sau.auth.models import User
from sau.clock import now_utc
from sau.errors import NotFound, SauError
from sau.extensions import db, login_manager
from sau.privacy import mydata
from sau.privacy.deleted_accounts import apply_reported, matching_users, parse_import
from sau.privacy.erasure import erase_account
from sau.privacy.forms import (
    CONFIRMATION_WORD,
    ConfirmImportForm,
    ContactForm,
    DeleteAccountForm,
    ImportForm,
    RedactForm,
)
from sau.privacy.models import SOURCE_GLC_IMPORT, SOURCE_USAGER, SOURCES, AccountDeletionWarning, DeletedAccount
from sau.privacy.redaction import FIELD_COMMENT, FIELD_DESCRIPTION, redact
from sau.tickets import operations as ops
from sau.web import EVENT_LABELS

bp = Blueprint("privacy", __name__)


# The timeline shows unknown event types through this table (sau/web.py).
EVENT_LABELS.setdefault("ticket.redacted", "Donnée personnelle masquée par un agent")


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")  # personal data: never in a shared cache
    return response


def _user() -> User:
    return current_user  # type: ignore[return-value]


def _page(contact: ContactForm | None = None, delete: DeleteAccountForm | None = None, status: int = 200) -> Any:
    user = _user()
    if contact is None:
        contact = ContactForm(formdata=None, given_name=user.given_name, family_name=user.family_name,
                              email=user.email or "")
    return render_template(
        "privacy/mes_donnees.html", user=user, tickets=mydata.requests_of(user), contact_form=contact,
        delete_form=delete or DeleteAccountForm(formdata=None), can_delete=policy.can_delete_own_account(user),
        warning=db.session.get(AccountDeletionWarning, user.id), confirmation_word=CONFIRMATION_WORD,
        notifications=mydata.notification_count(user),
    ), status


@bp.route("/mes-donnees")
@login_required
def my_data() -> Any:
    return _page()


@bp.route("/mes-donnees/export.json")
@login_required
def my_data_export() -> Any:
    from sau.privacy.access_log import log_access

    user, now = _user(), now_utc()
    data = mydata.export_for(user, now)
    log_access(user, "user.data_export", user.id, detail="téléchargement « Mes données » par la personne")
    db.session.commit()
    body = json.dumps(data, ensure_ascii=False, indent=2)
    filename = f"mes-donnees-sau-{now.date().isoformat()}.json"
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/mes-donnees/coordonnees", methods=["POST"])
@login_required
def my_data_contact() -> Any:
    form = ContactForm()
    if not form.validate_on_submit():
        return _page(contact=form, status=422)
    try:
        changed = mydata.update_contact(_user(), form.given_name.data or "", form.family_name.data or "",
                                        form.email.data or "", now_utc())
        db.session.commit()
    except SauError as exc:
        db.session.rollback()
        for name, message in (exc.fields or {}).items():
            if name in form:
                form[name].errors = [*form[name].errors, message]
        form._errors = None
        return _page(contact=form, status=422)
    flash("Vos coordonnées ont été corrigées (" + ", ".join(changed) + ")." if changed
          else "Aucune modification : vos coordonnées étaient déjà celles-ci.", "success")
    return redirect(url_for("privacy.my_data"), code=303)


@bp.route("/mes-donnees/supprimer", methods=["POST"])
@login_required
def my_data_delete() -> Any:
    from sau.auth.sessions import end_session

    user = _user()
    if not policy.can_delete_own_account(user):
        abort(403)
    form = DeleteAccountForm()
    if not form.validate_on_submit():
        return _page(delete=form, status=422)
    erase_account(user, now_utc(), source=SOURCE_USAGER, actor=user)
    end_session()
    db.session.commit()
    flash("Votre compte a été supprimé : votre nom et votre adresse e-mail ont été effacés de vos demandes.",
          "success")
    return redirect(url_for("main.index"), code=303)


# --- agents: masking personal data in a ticket --------------------------------------------------------------------


@bp.route("/agent/tickets/<reference>/masquer", methods=["POST"])
@login_required
def redact_ticket(reference: str) -> Any:
    user = _user()
    try:
        ticket = ops.get_ticket(reference)
    except NotFound:
        abort(404)
    if not policy.can_view_as_staff(user, ticket):
        abort(404)
    if not policy.can_redact(user, ticket):
        abort(403)
    form = RedactForm()
    back = redirect(url_for("agent.ticket", reference=reference) + "#masquer", code=303)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return back
    target = form.target.data or ""
    field, comment_id = FIELD_DESCRIPTION, None
    if target.startswith("comment-") and target[8:].isdigit():
        field, comment_id = FIELD_COMMENT, int(target[8:])
    elif target != FIELD_DESCRIPTION:
        field = target
    try:
        result = redact(ticket, user, now_utc(), field=field, comment_id=comment_id, span=form.span.data or "",
                        whole=bool(form.whole.data))
        db.session.commit()
    except SauError as exc:
        db.session.rollback()
        for message in (exc.fields or {}).values() or [exc.message]:
            flash(message, "error")
        return back
    flash(f"Texte masqué ({result.masked_chars} caractère(s)). Le masquage est inscrit à l'historique.", "success")
    return back


# --- admin: GrandLyon Connect's deleted accounts ------------------------------------------------------------------


def _require_admin() -> User:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()  # type: ignore[no-any-return]
    if not policy.can_report_deleted_accounts(_user()):
        abort(403)
    return _user()


def _import_page(form: ImportForm | None = None, preview: dict[str, Any] | None = None, status: int = 200) -> Any:
    recent = db.session.scalars(sa.select(DeletedAccount).order_by(DeletedAccount.deleted_at.desc(),
                                                                   DeletedAccount.id.desc()).limit(20)).all()
    total = db.session.scalar(sa.select(sa.func.count(DeletedAccount.id))) or 0
    return render_template("privacy/admin_deleted_accounts.html", form=form or ImportForm(formdata=None),
                           preview=preview, recent=recent, total=total, sources=SOURCES, section="deleted_accounts"), status


@bp.route("/admin/comptes-supprimes", methods=["GET"])
def admin_deleted_accounts() -> Any:
    refused = _require_admin()
    if not isinstance(refused, User):
        return refused
    return _import_page()


@bp.route("/admin/comptes-supprimes", methods=["POST"])
def admin_deleted_accounts_preview() -> Any:
    """Step 1: read the file and show what it would do (nothing is changed)."""
    refused = _require_admin()
    if not isinstance(refused, User):
        return refused
    form = ImportForm()
    if not form.validate_on_submit():
        return _import_page(form, status=422)
    upload = request.files.get(form.file.name)
    if upload is None or not upload.filename:
        form.file.errors = ["Choisissez un fichier CSV ou JSON."]
        return _import_page(form, status=422)
    try:
        pairs = parse_import(upload.read(), upload.filename)
    except SauError as exc:
        form.file.errors = list((exc.fields or {}).values()) or [exc.message]
        return _import_page(form, status=422)
    users, matched = matching_users(pairs)
    confirm = ConfirmImportForm(formdata=None, payload=json.dumps([{"issuer": i, "sub": s} for i, s in pairs]))
    return _import_page(form, preview={"reported": len(pairs), "local": len(users), "unknown": len(pairs) - matched,
                                       "form": confirm})


@bp.route("/admin/comptes-supprimes/confirmer", methods=["POST"])
def admin_deleted_accounts_confirm() -> Any:
    """Step 2: erase the matching local accounts (idempotent), journaled."""
    from sau.admin.operations import record
    from sau.privacy.deleted_accounts import normalise_pairs

    actor = _require_admin()
    if not isinstance(actor, User):
        return actor
    form = ConfirmImportForm()
    if not form.validate_on_submit():
        flash("Aucune liste à importer : recommencez l'envoi du fichier.", "error")
        return redirect(url_for("privacy.admin_deleted_accounts"), code=303)
    try:
        items = json.loads(form.payload.data or "[]")
        pairs = normalise_pairs(items if isinstance(items, list) else [])
    except (ValueError, SauError):
        flash("Liste illisible : recommencez l'envoi du fichier.", "error")
        return redirect(url_for("privacy.admin_deleted_accounts"), code=303)
    now = now_utc()
    result = apply_reported(pairs, now, source=SOURCE_GLC_IMPORT, actor=actor)
    record(actor, now, "deleted_accounts.imported", "deleted_accounts", None,
           f"Liste GrandLyon Connect : {result.reported} compte(s)",
           after={"reported": result.reported, "erased": result.erased, "unknown": result.unknown})
    db.session.commit()
    flash(f"{result.reported} compte(s) signalé(s) : {result.erased} compte(s) supprimé(s) ici, "
          f"{result.unknown} inconnu(s) ou déjà supprimé(s).", "success")
    return redirect(url_for("privacy.admin_deleted_accounts"), code=303)
