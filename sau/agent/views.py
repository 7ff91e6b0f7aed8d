"""The agent workspace: the queue of the agent's organisation(s) and the ticket page with its actions."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.orm.exc import StaleDataError

from sau.agent import forms as f
from sau.auth import policy
from sau.auth.models import ApiToken, Membership, User
from sau.clock import now_utc
from sau.errors import ConflictError, SauError, ValidationFailed
from sau.extensions import db
from sau.orgs.models import Organisation, SchoolAdministrator, Service
from sau.privacy.access_log import log_access
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import (
    OPEN_STATUSES,
    PRIORITIES,
    PRIORITY_DEFINITIONS,
    STATUSES,
    Ticket,
)

bp = Blueprint("agent", __name__, url_prefix="/agent")

SORTS: dict[str, Any] = {
    "recent": Ticket.created_at.desc(),
    "ancien": Ticket.created_at.asc(),
    "echeance": sa.nulls_last(Ticket.sla_deadline_at.asc()),
    "maj": Ticket.updated_at.desc(),
}
PAGE_SIZE = 50


def _require_staff() -> User:
    user: User = current_user  # type: ignore[assignment]
    if not policy.is_staff(user):
        abort(403)
    return user


@bp.route("/")
@login_required
def queue() -> Any:
    user = _require_staff()
    args = request.args
    stmt = sa.select(Ticket).where(policy.staff_ticket_filter(user))
    status = args.get("statut", "ouverts")
    if status == "ouverts":
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    elif status in STATUSES:
        stmt = stmt.where(Ticket.status == status)
    if args.get("service"):
        stmt = stmt.join(Service, Ticket.service_id == Service.id).where(Service.code == args["service"])
    if args.get("commune"):
        stmt = stmt.join(Organisation, Ticket.commune_id == Organisation.id).where(Organisation.code == args["commune"])
    priority = args.get("priorite", "")
    if priority == "aucune":
        stmt = stmt.where(Ticket.priority.is_(None))
    elif priority in PRIORITIES:
        stmt = stmt.where(Ticket.priority == priority)
    assignee = args.get("attribution", "")
    if assignee == "moi":
        stmt = stmt.where(Ticket.assignee_id == user.id)
    elif assignee == "personne":
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    sort = args.get("tri", "recent")
    stmt = stmt.order_by(SORTS.get(sort, SORTS["recent"]), Ticket.id.desc())
    page = max(1, args.get("page", 1, type=int) or 1)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery()))
    tickets = db.session.scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    services = db.session.scalars(sa.select(Service).where(Service.has_sau.is_(True)).order_by(Service.name)).all()
    communes = db.session.scalars(
        sa.select(Organisation).where(Organisation.kind == "commune").order_by(Organisation.name)
    ).all()
    now = now_utc()
    cal = ticket_sla.calendar()
    return render_template(
        "agent/queue.html", tickets=tickets, total=total, page=page, page_size=PAGE_SIZE, services=services,
        communes=communes, statuses=STATUSES, priorities=PRIORITIES, args=args, status=status, sort=sort,
        now=now, sla={t.id: ticket_sla.live(t, now, cal) for t in tickets}, duration=ticket_sla.format_duration,
    )


def _ticket_for_staff(reference: str) -> Ticket:
    try:
        ticket = ops.get_ticket(reference)
    except SauError:
        abort(404)
    if not policy.can_view_as_staff(current_user, ticket):  # type: ignore[arg-type]
        abort(404)
    return ticket


def _assignable_users(ticket: Ticket) -> list[User]:
    org_users = sa.select(Membership.user_id).where(
        Membership.organisation_id == ticket.organisation_id, Membership.role.in_(policy.WORK_ROLES)
    )
    ids = set(db.session.scalars(org_users))
    if ticket.school_id is not None and ticket.level == 1:
        ids |= set(db.session.scalars(
            sa.select(SchoolAdministrator.user_id).where(SchoolAdministrator.school_id == ticket.school_id)
        ))
    if not ids:
        return []
    # API tokens act through technical accounts: they are not people one assigns a ticket to.
    technical = sa.select(ApiToken.user_id)
    return list(db.session.scalars(
        sa.select(User).where(User.id.in_(ids), User.id.not_in(technical), User.is_active_account.is_(True))
        .order_by(User.family_name)
    ))


def _forms(ticket: Ticket) -> dict[str, Any]:
    v = ticket.version
    assign = f.AssignForm(version=v, prefix="assign")
    assign.assignee.choices = [("", "— Personne —")] + [(str(u.id), u.display_name) for u in _assignable_users(ticket)]
    transfer = f.TransferForm(version=v, prefix="transfer")
    orgs = db.session.scalars(
        sa.select(Organisation).where(Organisation.id != ticket.organisation_id).order_by(Organisation.kind.desc(),
                                                                                           Organisation.name)
    ).all()
    transfer.organisation.choices = [("", "— Choisissez —")] + [(o.code, o.name) for o in orgs]
    return {
        "take_form": f.TakeForm(version=v, prefix="take"),
        "assign_form": assign,
        "priority_form": f.PriorityForm(version=v, prefix="priority", priority=ticket.priority),
        "comment_form": f.CommentForm(version=v, prefix="comment"),
        "question_form": f.QuestionForm(version=v, prefix="question"),
        "resolve_form": f.ResolveForm(version=v, prefix="resolve"),
        "close_form": f.TakeForm(version=v, prefix="close"),
        "reject_form": f.ReasonForm(version=v, prefix="reject"),
        "duplicate_form": f.DuplicateForm(version=v, prefix="duplicate"),
        "escalate_form": f.ReasonForm(version=v, prefix="escalate"),
        "transfer_form": transfer,
        "reopen_form": f.ReasonForm(version=v, prefix="reopen"),
    }


@bp.route("/tickets/<reference>")
@login_required
def ticket(reference: str) -> Any:
    ticket = _ticket_for_staff(reference)
    can_work = policy.can_work(current_user, ticket)  # type: ignore[arg-type]
    comments = {c.id: c for c in ticket.comments}
    now = now_utc()
    html = render_template(
        "agent/ticket.html", ticket=ticket, can_work=can_work, comments=comments,
        sla_state=ticket_sla.compute(ticket, now), sla_live=ticket_sla.live(ticket, now),
        duration=ticket_sla.format_duration,
        priority_definitions=PRIORITY_DEFINITIONS, priorities=PRIORITIES, **_forms(ticket),
    )
    # The page shows the requester's personal data: one access-log entry per view (issue 8, point 5).
    log_access(current_user, "ticket.view", ticket.requester_id, commune_id=ticket.commune_id,  # type: ignore[arg-type]
               ticket_id=ticket.id, detail=ticket.reference)
    db.session.commit()
    return html


def _run(reference: str, form_cls: type[f.VersionedForm], prefix: str,
         action: Callable[[Ticket, User, Any, int], Any], success: str) -> Any:
    ticket = _ticket_for_staff(reference)
    form = form_cls(prefix=prefix)
    if isinstance(form, f.AssignForm):
        form.assignee.choices = [("", "")] + [(str(u.id), u.display_name) for u in _assignable_users(ticket)]
    if isinstance(form, f.TransferForm):
        form.organisation.choices = [(o.code, o.name) for o in db.session.scalars(sa.select(Organisation))]
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for message in errors:
                flash(message, "error")
        return redirect(url_for("agent.ticket", reference=reference), code=303)
    try:
        version = int(form.version.data)
    except (TypeError, ValueError):
        flash("Version du ticket invalide : rechargez la page.", "error")
        return redirect(url_for("agent.ticket", reference=reference), code=303)
    try:
        action(ticket, current_user, form, version)  # type: ignore[arg-type]
        db.session.commit()
        flash(success, "success")
    except ConflictError as exc:
        db.session.rollback()
        flash(exc.message, "conflict")
    except SauError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    except StaleDataError:
        db.session.rollback()
        flash(ops.CONFLICT_MESSAGE, "conflict")
    return redirect(url_for("agent.ticket", reference=reference), code=303)


@bp.post("/tickets/<reference>/prendre")
@login_required
def take(reference: str) -> Any:
    return _run(reference, f.TakeForm, "take", lambda t, u, form, v: ops.take(t, u, now_utc(), v),
                "Vous avez pris le ticket en charge.")


@bp.post("/tickets/<reference>/attribuer")
@login_required
def assign(reference: str) -> Any:
    def action(t: Ticket, u: User, form: Any, v: int) -> Any:
        assignee = db.session.get(User, int(form.assignee.data)) if form.assignee.data else None
        return ops.assign(t, u, assignee, now_utc(), v)

    return _run(reference, f.AssignForm, "assign", action, "Attribution enregistrée.")


@bp.post("/tickets/<reference>/priorite")
@login_required
def priority(reference: str) -> Any:
    return _run(reference, f.PriorityForm, "priority",
                lambda t, u, form, v: ops.set_priority(t, u, form.priority.data, now_utc(), v,
                                                       form.justification.data or ""),
                "Priorité enregistrée.")


@bp.post("/tickets/<reference>/commenter")
@login_required
def comment(reference: str) -> Any:
    return _run(reference, f.CommentForm, "comment",
                lambda t, u, form, v: ops.add_comment(t, u, form.body.data, now_utc(), internal=form.internal.data,
                                                      expected_version=v),
                "Message enregistré.")


@bp.post("/tickets/<reference>/question")
@login_required
def question(reference: str) -> Any:
    return _run(reference, f.QuestionForm, "question",
                lambda t, u, form, v: ops.request_information(t, u, form.body.data, now_utc(), v),
                "Question envoyée : le ticket est en attente du demandeur.")


@bp.post("/tickets/<reference>/resoudre")
@login_required
def resolve(reference: str) -> Any:
    return _run(reference, f.ResolveForm, "resolve",
                lambda t, u, form, v: ops.resolve(t, u, form.note.data, now_utc(), v), "Ticket résolu.")


@bp.post("/tickets/<reference>/clore")
@login_required
def close(reference: str) -> Any:
    return _run(reference, f.TakeForm, "close", lambda t, u, form, v: ops.close(t, u, now_utc(), v), "Ticket clos.")


@bp.post("/tickets/<reference>/rejeter")
@login_required
def reject(reference: str) -> Any:
    return _run(reference, f.ReasonForm, "reject",
                lambda t, u, form, v: ops.reject(t, u, form.reason.data, now_utc(), v), "Ticket rejeté.")


@bp.post("/tickets/<reference>/doublon")
@login_required
def duplicate(reference: str) -> Any:
    def action(t: Ticket, u: User, form: Any, v: int) -> Any:
        try:
            original = ops.get_ticket(form.duplicate_of.data.strip().upper())
        except SauError:
            raise ValidationFailed("Aucun ticket ne porte cette référence.", {"duplicate_of": "Inconnu."}) from None
        if not policy.can_view_as_staff(u, original):
            raise ValidationFailed("Aucun ticket ne porte cette référence.", {"duplicate_of": "Inconnu."})
        return ops.reject(t, u, form.reason.data, now_utc(), v, duplicate_of=original)

    return _run(reference, f.DuplicateForm, "duplicate", action, "Ticket marqué comme doublon.")


@bp.post("/tickets/<reference>/escalader")
@login_required
def escalate(reference: str) -> Any:
    return _run(reference, f.ReasonForm, "escalate",
                lambda t, u, form, v: ops.escalate(t, u, form.reason.data, now_utc(), v),
                "Ticket escaladé au niveau 2 (Métropole).")


@bp.post("/tickets/<reference>/transferer")
@login_required
def transfer(reference: str) -> Any:
    def action(t: Ticket, u: User, form: Any, v: int) -> Any:
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == form.organisation.data))
        if org is None:
            raise ValidationFailed("Organisation inconnue.", {"organisation": "Inconnue."})
        return ops.transfer(t, u, org, form.reason.data, now_utc(), v)

    return _run(reference, f.TransferForm, "transfer", action, "Ticket transféré.")


@bp.post("/tickets/<reference>/rouvrir")
@login_required
def reopen(reference: str) -> Any:
    return _run(reference, f.ReasonForm, "reopen",
                lambda t, u, form, v: ops.reopen_by_agent(t, u, form.reason.data, now_utc(), v), "Ticket rouvert.")
