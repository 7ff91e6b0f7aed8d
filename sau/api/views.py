"""JSON API under /api/v1 (contract in DESIGN.md), described by /api/v1/openapi.json.

Every error is `{"error": {"code", "message", "fields"?}}` with a 4xx status; bad input never gives a 500.
Mutations require `Content-Type: application/json` (which a cross-site HTML form cannot send), so the
session-cookie API needs no CSRF token; the HTML forms keep theirs.
"""
from __future__ import annotations

import hmac
import json
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask_login import current_user
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm.exc import StaleDataError

from sau import refdata
from sau.api import idempotency, schemas
from sau.api.openapi import openapi_document
from sau.auth import policy
from sau.auth.models import User
from sau.clock import now_utc
from sau.errors import ConflictError, NotFound, PermissionDenied, SauError, ValidationFailed
from sau.extensions import commit_pending, csrf, db, limiter
from sau.forms import NUL_MESSAGE, has_nul
from sau.help import intake
from sau.help.views import public_timeline
from sau.orgs.models import Organisation
from sau.tickets import operations as ops
from sau.tickets.models import OPEN_STATUSES, STATUSES, Ticket
from sau.web import current_principal, json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
B = TypeVar("B", bound=BaseModel)


class BadRequest(SauError):
    status = 400
    code = "invalid_json"


class UnsupportedMediaType(SauError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(SauError):
    status = 413
    code = "payload_too_large"


class Unauthorized(SauError):
    status = 401
    code = "unauthorized"


def parse(model: type[B]) -> B:
    """Read and validate the JSON body. Raises 415, 413, 400 or 422 SauErrors."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Le corps de la requête doit être du JSON (Content-Type: application/json).")
    limit = current_app.config["MAX_JSON_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Le corps de la requête dépasse {limit} octets.")
    raw = request.get_data(cache=True)  # kept: an optimistic view may run twice (sau.refdata)
    if len(raw) > limit:
        raise PayloadTooLarge(f"Le corps de la requête dépasse {limit} octets.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"JSON invalide : {exc}.") from None
    if not isinstance(data, dict):
        raise ValidationFailed("Le corps de la requête doit être un objet JSON.", {"body": "Un objet JSON est attendu."})
    if nul := [key for key, value in data.items() if has_nul(key) or has_nul(value)]:
        raise ValidationFailed.for_fields({key: NUL_MESSAGE for key in nul})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed.for_fields(schemas.translate(exc)) from None


def _user() -> User | None:
    return current_user if current_user.is_authenticated else None  # type: ignore[return-value]


def _require_user() -> User:
    user = _user()
    if user is None:
        raise Unauthorized("Authentification requise.")
    return user


def _org(org: Any) -> dict[str, Any] | None:
    if org is None:
        return None
    return {"kind": org.kind, "code": org.code, "name": org.name}


def serialize(ticket: Ticket, *, staff: bool, snap: refdata.Snapshot | None = None) -> dict[str, Any]:
    # Names of the service, category, communes and school come from the reference snapshot (sau.refdata): no
    # query per related row, and none at all for a ticket just created.
    snap = snap or refdata.current()
    service = snap.services_by_id[ticket.service_id]
    category = next((c for c in service.categories if c.id == ticket.category_id), None)
    school = snap.schools_by_id.get(ticket.school_id) if ticket.school_id is not None else None
    data: dict[str, Any] = {
        "reference": ticket.reference,
        "kind": ticket.kind,
        "status": ticket.status,
        "status_label": ticket.status_label,
        "service": {"code": service.code, "name": service.name},
        "category": category.code if category else None,
        "commune": _org(snap.organisations.get(ticket.commune_id)) if ticket.commune_id is not None else None,
        "school": {"uai": school.uai, "name": school.name} if school else None,
        "routed_to": _org(snap.organisations[ticket.organisation_id]),
        "level": ticket.level,
        "subject": ticket.subject,
        "description": ticket.description,
        "page_url": ticket.page_url,
        "priority": ticket.priority,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        "resolution_note": ticket.resolution_note,
        "version": ticket.version,
        "sla": {
            "deadline_at": ticket.sla_deadline_at.isoformat() if ticket.sla_deadline_at else None,
            "state": ticket.sla_state,
            "met": ticket.sla_met,
        },
        "url": url_for("help.track", reference=ticket.reference, _external=False),
    }
    if staff:
        data["routing_reason"] = ticket.routing_reason
        data["needs_triage"] = ticket.needs_triage
        data["assignee"] = {"id": ticket.assignee.id, "name": ticket.assignee.display_name} if ticket.assignee else None
        data["requester"] = {"name": ticket.requester_label, "email": ticket.requester_contact}
        data["events"] = [
            {"at": e.at.isoformat(), "type": e.type, "actor": e.actor_label, "public": e.is_public, "data": e.data}
            for e in ticket.events
        ]
        data["comments"] = [
            {"id": c.id, "at": c.created_at.isoformat(), "author": c.author_label, "internal": c.is_internal,
             "from_requester": c.is_from_requester, "body": c.body}
            for c in ticket.comments
        ]
    else:
        data["events"] = [
            {"at": item["at"].isoformat(), "type": item["type"], "actor": item["actor"],
             "body": item["comment"].body if item.get("comment") else None}
            for item in public_timeline(ticket)
        ]
    return data


def _created_response(ticket: Ticket, token: str | None) -> Response:
    body = serialize(ticket, staff=False)
    if token:
        body["tracking_url"] = current_app.config["PUBLIC_URL"].rstrip("/") + url_for(
            "help.track", reference=ticket.reference, jeton=token
        )
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_request", reference=ticket.reference)
    response.headers["ETag"] = f'"{ticket.version}"'
    return response


def _help_limit() -> str:
    return str(current_app.config["RATELIMIT_HELP_FORM"])


@bp.post("/requests")
@limiter.limit(_help_limit)
@idempotency.in_statement  # PostgreSQL: the key, the ticket and the answer in one statement
@refdata.optimistic  # no version read: the statement checks the snapshot (sau.refdata)
def create_request() -> Any:
    body = parse(schemas.NewRequestBody)
    user = _user()
    if user is None and not body.email:
        raise ValidationFailed.for_fields({"email": "Champ obligatoire lorsque vous n'êtes pas connecté."})
    service = intake.require_sau_service(body.service)
    now = now_utc()
    category, commune, school = intake.resolve_fields(service, body.category, body.commune, body.school, now.date())
    call = idempotency.claim()
    created = ops.create_request(
        ops.NewRequest(service=service, subject=body.subject, description=body.description, category=category,
                       commune=commune, school=school, email=body.email, page_url=body.page_url),
        user, now, standalone=True, record_with=call.record_with(_created_response) if call else None,
    )
    if call is not None:  # the answer committed with the ticket (PostgreSQL)
        return call.stored_answer(created.reference)
    # Built before the commit: nothing reads the database after it, so an outage right after the commit cannot
    # turn an accepted request into an error (sau.resilience).
    response = _created_response(created.view, created.tracking_token)
    # The resource and the answer commit with the ticket (one UPDATE of the record): no second transaction.
    idempotency.set_resource("request", created.reference, 201)
    idempotency.set_response(response)
    commit_pending()
    return response


@idempotency.rebuilder("request")
def _rebuild_created(reference: str, status: int) -> Response:
    """The answer to a creation that committed without storing its answer: the ticket as it stands now (its
    tracking link is not repeated — only its hash is kept; the receipt e-mail carries it)."""
    response = _created_response(ops.get_ticket(reference), None)
    response.status_code = status
    return response


def _visible(reference: str) -> Ticket:
    try:
        ticket = ops.get_ticket(reference)
    except NotFound:
        raise NotFound("Aucune demande visible ne porte cette référence.") from None
    principal = current_principal()
    token = request.headers.get("X-Tracking-Token")
    if token and ticket.tracking_token_hash and hmac.compare_digest(ticket.tracking_token_hash, ops.hash_token(token)):
        return ticket
    if not policy.can_view(principal, ticket):
        raise NotFound("Aucune demande visible ne porte cette référence.")
    return ticket


@bp.get("/requests/<reference>")
def get_request(reference: str) -> Any:
    ticket = _visible(reference)
    staff = policy.can_view_as_staff(_user(), ticket)
    response = jsonify(serialize(ticket, staff=staff))
    response.headers["ETag"] = f'"{ticket.version}"'
    if staff and not policy.is_requester(current_principal(), ticket):  # a staff read of personal data (issue 8)
        from sau.privacy.access_log import log_access

        log_access(_user(), "ticket.view", ticket.requester_id, commune_id=ticket.commune_id, ticket_id=ticket.id,
                   detail=f"{ticket.reference} (API)")
        db.session.commit()
    return response


@bp.get("/tickets")
def list_tickets() -> Any:
    user = _require_user()
    if not policy.is_staff(user):
        raise PermissionDenied("Réservé aux agents.")
    stmt = sa.select(Ticket).where(policy.staff_ticket_filter(user))
    status = request.args.get("status")
    if status == "open" or status is None:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    elif status in STATUSES:
        stmt = stmt.where(Ticket.status == status)
    elif status != "all":
        raise ValidationFailed.for_fields({"status": "Statut inconnu."})
    limit = min(max(request.args.get("limit", 50, type=int) or 50, 1), 200)
    offset = max(request.args.get("offset", 0, type=int) or 0, 0)
    tickets = db.session.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit).offset(offset))
    snap = refdata.current()
    return jsonify({"tickets": [serialize(t, staff=False, snap=snap) | {"assignee_id": t.assignee_id} for t in tickets],
                    "limit": limit, "offset": offset})


def _staff_ticket(reference: str) -> tuple[Ticket, User, int | None]:
    user = _require_user()
    try:
        ticket = ops.get_ticket(reference)
    except NotFound:
        raise NotFound("Aucun ticket visible ne porte cette référence.") from None
    if not policy.can_view_as_staff(user, ticket):
        raise NotFound("Aucun ticket visible ne porte cette référence.")
    if not policy.can_work(user, ticket):
        raise PermissionDenied("Vous n'êtes pas habilité à traiter ce ticket.")
    return ticket, user, _if_match()


def _if_match() -> int | None:
    header = request.headers.get("If-Match")
    if not header:
        return None
    try:
        return int(header.strip().strip('W/').strip('"'))
    except ValueError:
        raise ValidationFailed.for_fields({"If-Match": "Version attendue sous la forme \"3\"."}) from None


def _commit_and_show(ticket: Ticket, status: int = 200) -> Response:
    idempotency.set_resource("ticket", ticket.reference, status)  # commits with the action
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise ConflictError(ops.CONFLICT_MESSAGE) from None
    return _show(ticket, status)


def _show(ticket: Ticket, status: int = 200) -> Response:
    response = jsonify(serialize(ticket, staff=True))
    response.status_code = status
    response.headers["ETag"] = f'"{ticket.version}"'
    return response


@idempotency.rebuilder("ticket")
def _rebuild_action(reference: str, status: int) -> Response:
    """The answer to an agent action that committed without storing its answer: the ticket as it stands now."""
    return _show(ops.get_ticket(reference), status)


def _version(body_version: int | None, header_version: int | None) -> int | None:
    return body_version if body_version is not None else header_version


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except StaleDataError:
        db.session.rollback()
        raise ConflictError(ops.CONFLICT_MESSAGE) from None


@bp.post("/tickets/<reference>/priority")
def set_priority(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.PriorityBody)
    _guard(lambda: ops.set_priority(ticket, user, body.priority, now_utc(), _version(body.version, header_v),
                                    body.justification))
    return _commit_and_show(ticket)


@bp.post("/tickets/<reference>/comments")
def add_comment(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.CommentBody)
    _guard(lambda: ops.add_comment(ticket, user, body.body, now_utc(), internal=body.internal,
                                   expected_version=_version(body.version, header_v)))
    return _commit_and_show(ticket, 201)


@bp.post("/tickets/<reference>/assign")
def assign(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.AssignBody)
    assignee = None
    if body.assignee_id is not None:
        assignee = db.session.get(User, body.assignee_id)
        if assignee is None:
            raise ValidationFailed.for_fields({"assignee_id": "Utilisateur inconnu."})
    _guard(lambda: ops.assign(ticket, user, assignee, now_utc(), _version(body.version, header_v)))
    return _commit_and_show(ticket)


@bp.post("/tickets/<reference>/status")
def change_status(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.StatusBody)
    version = _version(body.version, header_v)
    now = now_utc()
    message = body.message or ""

    def run() -> Any:
        if body.status == "en_cours":
            if ticket.status == "resolu":
                return ops.reopen_by_agent(ticket, user, message, now, version)
            return ops.take(ticket, user, now, version)
        if body.status == "en_attente":
            return ops.request_information(ticket, user, message, now, version)
        if body.status == "resolu":
            return ops.resolve(ticket, user, message, now, version)
        if body.status == "clos":
            return ops.close(ticket, user, now, version)
        if body.status == "rejete":
            return ops.reject(ticket, user, message, now, version)
        if not body.duplicate_of:
            raise ValidationFailed.for_fields({"duplicate_of": "Référence du ticket d'origine obligatoire."})
        try:
            original = ops.get_ticket(body.duplicate_of)
        except NotFound:
            raise ValidationFailed.for_fields({"duplicate_of": "Ticket inconnu."}) from None
        if not policy.can_view_as_staff(user, original):
            raise ValidationFailed.for_fields({"duplicate_of": "Ticket inconnu."})
        return ops.reject(ticket, user, message, now, version, duplicate_of=original)

    _guard(run)
    return _commit_and_show(ticket)


@bp.post("/tickets/<reference>/escalate")
def escalate(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.EscalateBody)
    _guard(lambda: ops.escalate(ticket, user, body.reason, now_utc(), _version(body.version, header_v)))
    return _commit_and_show(ticket)


@bp.post("/tickets/<reference>/transfer")
def transfer(reference: str) -> Any:
    ticket, user, header_v = _staff_ticket(reference)
    body = parse(schemas.TransferBody)
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == body.organisation))
    if org is None:
        raise ValidationFailed.for_fields({"organisation": "Organisation inconnue."})
    _guard(lambda: ops.transfer(ticket, user, org, body.reason, now_utc(), _version(body.version, header_v)))
    return _commit_and_show(ticket)


@bp.get("/me")
def me() -> Any:
    user = _require_user()
    return jsonify({
        "id": user.id,
        "identities": [{"issuer": i.issuer, "sub": i.subject} for i in user.identities],
        "given_name": user.given_name,
        "family_name": user.family_name,
        "email": user.email,
        "email_verified": user.is_email_verified,
        "identity_certified": user.is_identity_certified,
        "memberships": [
            {"organisation": m.organisation.code, "organisation_name": m.organisation.name, "role": m.role,
             "service": m.service.code if m.service else None}
            for m in user.memberships
        ],
    })


@bp.get("/services")
def services() -> Any:
    from sau.orgs.models import Service

    rows = db.session.scalars(sa.select(Service).order_by(Service.code))
    return jsonify({"services": [
        {"code": s.code, "name": s.name, "has_sau": s.has_sau,
         "categories": [{"code": c.code, "label": c.label, "requires_commune": c.requires_commune}
                        for c in s.categories],
         **({"no_sau_reason": s.no_sau_reason} if not s.has_sau else {})}
        for s in rows
    ]})


@bp.get("/reports/sla")
def sla_report() -> Any:
    """Compliance per commune over a period (default: the current month, Paris time)."""
    from sau.reports.compliance import compliance_by_commune
    from sau.reports.periods import PeriodError, parse_period

    user = _require_user()
    if not policy.can_view_reports(user):
        raise PermissionDenied("Réservé aux responsables.")
    now = now_utc()
    try:
        start, end = parse_period(request.args, now)
    except PeriodError as exc:
        raise ValidationFailed.for_fields(exc.fields) from None
    service = request.args.get("service") or None
    if service and intake.service_by_code(service) is None:
        raise ValidationFailed.for_fields({"service": "Service inconnu."})
    priority = request.args.get("priority") or None
    if priority not in (None, "bloquant", "majeur"):
        raise ValidationFailed.for_fields({"priority": "bloquant ou majeur attendu (mineur : pas d'engagement)."})
    kind = request.args.get("kind") or None
    if kind not in (None, "demande", "incident"):
        raise ValidationFailed.for_fields({"kind": "demande ou incident attendu."})
    rows = compliance_by_commune(start, end, now, service=service, priority=priority, kind=kind,
                                 communes=policy.report_commune_ids(user))
    return jsonify({
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "as_of": now.isoformat(),
        "target": 0.95,
        "communes": [
            {"code": r.code, "name": r.name, "committed": r.figures.committed, "met": r.figures.met,
             "breached": r.figures.breached, "open": r.figures.open, "compliance": r.figures.compliance,
             "target": r.figures.target, "is_conforme": r.figures.is_conforme, "error_budget": r.figures.error_budget}
            for r in rows
        ],
    })


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.errorhandler(404)
def api_not_found(_exc: Any) -> Any:
    return json_error(404, "not_found", "Ressource introuvable.")
