"""The public side: the help form reachable from any page of a service, the embeddable "Besoin d'aide ?"
button, FAQ suggestions, and the tracking page of a request (convention art. 3: form, workflow, follow-up).
"""
from __future__ import annotations

import hmac
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from sau import refdata
from sau.auth import policy
from sau.clock import now_utc
from sau.errors import SauError, ValidationFailed
from sau.extensions import commit_pending, db, limiter
from sau.faq.operations import search as faq_search
from sau.help import intake
from sau.help.forms import HelpRequestForm, ReopenForm, ReplyForm
from sau.tickets import attachments as att
from sau.tickets import operations as ops
from sau.tickets.models import RESOLU, Attachment, Ticket
from sau.web import current_principal, remember_tracked_ticket

bp = Blueprint("help", __name__)
NEW_TOKEN_KEY = "new_tracking_token"


def _help_limit() -> str:
    return str(current_app.config["RATELIMIT_HELP_FORM"])


def _fill_choices(form: HelpRequestForm, service: Any, on: Any) -> None:
    form.category.choices = [("", "— Choisissez —")] + [(c.code, c.label) for c in service.categories]
    form.commune.choices = [("", "— Aucune / je ne sais pas —")] + [(c.code, c.name) for c in intake.communes()]
    form.school.choices = [("", "— Choisissez —")] + [
        (s.uai, f"{s.name} ({s.commune.name})") for s in intake.schools_for(service, on)
    ]


@bp.route("/aide", methods=["GET", "POST"])
@limiter.limit(_help_limit, methods=["POST"])
@refdata.optimistic  # no version read: the request's write checks the snapshot (issue 9)
def help_form() -> Any:
    code = request.values.get("service", "")
    snap = refdata.current()
    info = snap.services.get(code)
    if info is None:
        status = 404 if code else 200
        return render_template("help/choose_service.html", services=intake.sau_services(), unknown=code,
                               page_url=request.args.get("page", "")), status
    if not info.has_sau:
        return render_template("help/no_sau.html", service=intake.service_by_code(code),
                               services=intake.sau_services()), 422
    now = now_utc()
    form = HelpRequestForm()
    if request.method == "GET":
        form.service.data = info.code
        form.page_url.data = request.args.get("page", "")[:2000]
        if current_user.is_authenticated:
            form.email.data = current_user.email
    is_valid = request.method == "POST" and form.validate_on_submit()
    if request.method == "POST" and not current_user.is_authenticated and not (form.email.data or "").strip():
        # Checked with the other fields so that every error shows at once.
        form.email.errors = [*form.email.errors, "Indiquez votre adresse e-mail pour être tenu informé."]
        is_valid = False
    if is_valid:
        try:
            reference, token = _submit(form, info, now, snap)
        except ValidationFailed as exc:
            for field, message in exc.fields.items():
                getattr(form, field, form.subject).errors = [message]  # type: ignore[union-attr]
            db.session.rollback()
        else:
            if token:
                session[NEW_TOKEN_KEY] = {"reference": reference, "token": token}
            return redirect(url_for("help.thanks", reference=reference), code=303)
    # Only a page that is shown needs the service's full record, the choices and the FAQ suggestions (the select
    # fields do not validate against their choices): an accepted request reads none of them.
    service = intake.service_by_code(code)
    _fill_choices(form, service, now.date())
    query = request.args.get("q", "") or (form.subject.data or "")
    faq = faq_search(service, query)
    status = 422 if request.method == "POST" else 200
    from sau.status.operations import under_way  # the maintenance banner (issue 6, point 3)

    return render_template("help/form.html", form=form, service=service, faq=faq, query=query,
                           maintenance_now=under_way(service, now),
                           max_size=att.size_label(current_app.config["MAX_ATTACHMENT_BYTES"]),
                           max_files=current_app.config["MAX_ATTACHMENTS"], allowed=att.ALLOWED_LABEL), status


def _submit(form: HelpRequestForm, service: refdata.ServiceInfo, now: Any,
            snap: refdata.Snapshot) -> tuple[str, str | None]:
    """Create the request and commit; returns its reference and tracking token. Nothing reads the database after
    the commit, so an outage right after it cannot turn an accepted request into an error (sau.resilience)."""
    user = current_user if current_user.is_authenticated else None
    if user is None and not form.email.data:
        raise ValidationFailed("Adresse e-mail requise.", {"email": "Indiquez votre adresse e-mail pour être tenu informé."})
    uploads = att.read_uploads(request.files.getlist(form.attachments.name))
    category, commune, school = intake.resolve_fields(
        service, form.category.data or None, form.commune.data or None, form.school.data or None, now.date(), snap
    )
    created = ops.create_request(
        ops.NewRequest(
            service=service, subject=form.subject.data.strip(), description=form.description.data.strip(),
            category=category, commune=commune, school=school, email=(form.email.data or "").strip() or None,
            page_url=(form.page_url.data or "").strip() or None,
        ),
        user, now, standalone=not uploads,
    )
    if uploads:
        ticket = created.ticket
        stored = att.store(ticket, uploads, now)
        ops.record_event(ticket, "attachment.added", now, user, {"files": [a.filename for a in stored]},
                         actor_label=user.display_name if user else ticket.requester_label)
    commit_pending()
    remember_tracked_ticket(created.ticket_id)
    return created.reference, created.tracking_token


@bp.route("/aide/merci/<reference>")
def thanks(reference: str) -> Any:
    ticket = _visible_ticket(reference)
    new = session.pop(NEW_TOKEN_KEY, None)
    tracking_url = None
    if new and new.get("reference") == reference:
        tracking_url = url_for("help.track", reference=reference, jeton=new["token"], _external=False)
    return render_template("help/thanks.html", ticket=ticket, tracking_url=tracking_url,
                           public_url=current_app.config["PUBLIC_URL"])


@bp.route("/aide/faq.json")
def faq_json() -> Response:
    service = intake.service_by_code(request.args.get("service"))
    if service is None or not service.has_sau:
        return jsonify({"entries": []})
    entries = faq_search(service, request.args.get("q", "")[:200])
    return jsonify({"entries": [{"id": e.id, "question": e.question, "answer": e.answer} for e in entries]})


@bp.route("/faq")
def faq_index() -> Any:
    service = intake.service_by_code(request.args.get("service"))
    query = request.args.get("q", "")[:200]
    entries = faq_search(service, query, limit=50) if service is not None and service.has_sau else []
    return render_template("help/faq.html", services=intake.sau_services(), service=service, entries=entries,
                           query=query)


@bp.route("/aide/embed.js")
def embed_js() -> Response:
    """The snippet a service puts on its pages: a "Besoin d'aide ?" link carrying the page URL."""
    body = render_template("help/embed.js", base=current_app.config["PUBLIC_URL"].rstrip("/"))
    response = Response(body, mimetype="text/javascript")
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/demo/service/<code>")
def demo_service_page(code: str) -> Any:
    """A stand-in page of a shared service carrying the embeddable help button (for demos and tests)."""
    service = intake.service_by_code(code)
    if service is None:
        abort(404)
    return render_template("help/demo_service.html", service=service)


# --- tracking -----------------------------------------------------------------------------------


def _visible_ticket(reference: str) -> Ticket:
    try:
        ticket = ops.get_ticket(reference)
    except SauError:
        abort(404)
    if not policy.can_view(current_principal(), ticket):
        abort(404)  # same answer as an unknown reference: no enumeration
    return ticket


@bp.route("/suivi/<reference>")
def track(reference: str) -> Any:
    token = request.args.get("jeton")
    if token is not None:
        try:
            ticket = ops.get_ticket(reference)
        except SauError:
            abort(404)
        if ticket.tracking_token_hash is None or not hmac.compare_digest(
            ticket.tracking_token_hash, ops.hash_token(token)
        ):
            abort(404)
        remember_tracked_ticket(ticket.id)
        return redirect(url_for("help.track", reference=reference), code=303)
    ticket = _visible_ticket(reference)
    principal = current_principal()
    if not policy.is_requester(principal, ticket) and policy.can_view_as_staff(principal.user, ticket):
        return redirect(url_for("agent.ticket", reference=reference))
    reply_form = ReplyForm(version=ticket.version)
    reopen_form = ReopenForm(version=ticket.version)
    window = current_app.config["REOPEN_WINDOW_DAYS"]
    reopen_until = ops.reopen_window_ends_at(ticket, window)
    can_reopen = ticket.status == RESOLU and reopen_until is not None and now_utc() <= reopen_until
    return render_template("help/track.html", ticket=ticket, timeline=public_timeline(ticket),
                           reply_form=reply_form, reopen_form=reopen_form, can_reopen=can_reopen,
                           reopen_until=reopen_until)


def public_timeline(ticket: Ticket) -> list[dict[str, Any]]:
    """What the requester sees: public events and public comments, no internal notes."""
    comments = {c.id: c for c in ticket.comments if not c.is_internal}
    items = []
    for ev in ticket.events:
        if not ev.is_public:
            continue
        item: dict[str, Any] = {"at": ev.at, "type": ev.type, "actor": ev.actor_label, "data": ev.data}
        cid = ev.data.get("comment_id")
        if cid is not None:
            item["comment"] = comments.get(cid)
        items.append(item)
    return items


@bp.route("/suivi/<reference>/repondre", methods=["POST"])
@limiter.limit(_help_limit)
def reply(reference: str) -> Any:
    ticket = _visible_ticket(reference)
    form = ReplyForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return redirect(url_for("help.track", reference=reference), code=303)
    now = now_utc()
    try:
        uploads = att.read_uploads(request.files.getlist(form.attachments.name))
        comment = ops.requester_reply(ticket, current_principal(), form.body.data or "", now, _version(form))
        if uploads:
            stored = att.store(ticket, uploads, now)
            for a in stored:
                a.comment_id = comment.id
            ops.record_event(ticket, "attachment.added", now, current_principal().user,
                             {"files": [a.filename for a in stored]}, actor_label=comment.author_label)
        db.session.commit()
        flash("Votre réponse a été envoyée.", "success")
    except SauError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("help.track", reference=reference), code=303)


@bp.route("/suivi/<reference>/rouvrir", methods=["POST"])
def reopen(reference: str) -> Any:
    ticket = _visible_ticket(reference)
    form = ReopenForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return redirect(url_for("help.track", reference=reference), code=303)
    try:
        ops.reopen_by_requester(ticket, current_principal(), form.reason.data or "", now_utc(),
                                current_app.config["REOPEN_WINDOW_DAYS"], _version(form))
        db.session.commit()
        flash("Votre demande a été rouverte.", "success")
    except SauError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("help.track", reference=reference), code=303)


@bp.route("/pieces-jointes/<int:attachment_id>/<path:filename>")
def download(attachment_id: int, filename: str) -> Any:
    from flask import send_file

    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or attachment.filename != filename:
        abort(404)
    ticket = attachment.ticket
    principal = current_principal()
    allowed = policy.can_view_as_staff(principal.user, ticket) or (
        policy.is_requester(principal, ticket) and not attachment.is_internal
    )
    if not allowed:
        abort(404)
    return send_file(att.path_of(attachment), mimetype=attachment.content_type, as_attachment=True,
                     download_name=attachment.filename)


def _version(form: Any) -> int | None:
    try:
        return int(form.version.data) if form.version.data else None
    except (TypeError, ValueError):
        return None
