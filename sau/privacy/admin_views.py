"""Administration pages of personal data (Métropole admins, through sau.auth.policy):

- /admin/journal-acces: the access log (issue 8, point 5), filtered by period, actor, action and commune,
  paginated, with a CSV export;
- /admin/export-commune: a commune's full export as a ZIP (convention art. 12.3), written to a temporary file
  while the tables are read in batches, then sent; logged to the access log and to the administration journal.
"""
from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    render_template,
    request,
    send_file,
    stream_with_context,
)
from flask_login import current_user
from wtforms import SelectField
from wtforms.validators import InputRequired

from sau.auth import policy
from sau.auth.models import User
from sau.clock import now_utc
from sau.extensions import db, login_manager
from sau.forms import FrenchForm
from sau.orgs.models import ORG_COMMUNE, Organisation
from sau.privacy import commune_export
from sau.privacy.access_log import ACTION_LABELS, AccessLogEntry, log_access
from sau.reports.periods import PARIS, PeriodError, parse_period
from sau.tickets.models import Ticket

bp = Blueprint("privacy_admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50
CSV_COLUMNS = ("date_utc", "date_paris", "auteur_id", "auteur", "action", "libelle_action", "compte_concerne_id",
               "commune_code_insee", "commune", "ticket", "detail")
ENDPOINT_POLICIES = {
    "privacy_admin.access_log": policy.can_view_access_log,
    "privacy_admin.access_log_csv": policy.can_view_access_log,
    "privacy_admin.commune_export": policy.can_export_commune,
}


@bp.before_request
def _check_access() -> Any:
    """Anonymous → sign-in; not allowed by the policy → 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    allowed = ENDPOINT_POLICIES.get(request.endpoint or "")
    if allowed is None or not allowed(current_user):  # type: ignore[arg-type]
        abort(403)
    return None


@bp.after_request
def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"  # personal data
    return response


def _actor() -> User:
    return current_user  # type: ignore[return-value]


def _communes() -> list[Organisation]:
    return list(db.session.scalars(sa.select(Organisation).where(Organisation.kind == ORG_COMMUNE)
                                   .order_by(Organisation.name)))


# --- the access log -------------------------------------------------------------------------------------------

def _filters() -> tuple[sa.Select[Any], dict[str, Any]]:
    """The filtered statement (entry, commune, ticket reference) and the page's context (filters, errors)."""
    args = request.args
    errors: dict[str, str] = {}
    commune_org, ticket = sa.orm.aliased(Organisation), sa.orm.aliased(Ticket)
    stmt = (sa.select(AccessLogEntry, commune_org.code, commune_org.name, ticket.reference)
            .outerjoin(commune_org, commune_org.id == AccessLogEntry.commune_id)
            .outerjoin(ticket, ticket.id == AccessLogEntry.ticket_id))
    start = end = None
    if any(args.get(k) for k in ("period", "start", "end")):
        try:
            start, end = parse_period(args, now_utc())
            stmt = stmt.where(AccessLogEntry.at >= start, AccessLogEntry.at < end)
        except PeriodError as exc:
            errors.update(exc.fields)
    actor = (args.get("acteur") or "").strip()
    if actor:
        if actor.isdigit():
            stmt = stmt.where(AccessLogEntry.actor_id == int(actor))
        elif actor == "systeme":
            stmt = stmt.where(AccessLogEntry.actor_id.is_(None))
        else:
            errors["acteur"] = "Auteur inconnu : choisissez-le dans la liste."
    action = (args.get("action") or "").strip()
    if action:
        if len(action) > 60:
            errors["action"] = "Action inconnue."
        else:
            stmt = stmt.where(AccessLogEntry.action == action)
    commune_code = (args.get("commune") or "").strip()
    if commune_code:
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune_code,
                                                              Organisation.kind == ORG_COMMUNE))
        if org is None:
            errors["commune"] = "Commune inconnue : choisissez-la dans la liste."
        else:
            stmt = stmt.where(AccessLogEntry.commune_id == org.id)
    return stmt, {"errors": errors, "start": start, "end": end, "actor": actor, "action": action,
                  "commune": commune_code}


def _filter_args(ctx: dict[str, Any]) -> dict[str, str]:
    """The current filters as query parameters (for pagination and the CSV link)."""
    keep = {k: request.args.get(k, "") for k in ("period", "start", "end")}
    keep.update(acteur=ctx["actor"], action=ctx["action"], commune=ctx["commune"])
    return {k: v for k, v in keep.items() if v}


@bp.get("/journal-acces")
def access_log() -> Any:
    stmt, ctx = _filters()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    if ctx["errors"]:
        total, rows = 0, []
    else:
        total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0
        rows = db.session.execute(stmt.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
                                  .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    actors = db.session.execute(sa.select(AccessLogEntry.actor_id, sa.func.max(AccessLogEntry.actor_label))
                                .where(AccessLogEntry.actor_id.is_not(None)).group_by(AccessLogEntry.actor_id)
                                .order_by(sa.func.max(AccessLogEntry.actor_label))).all()
    present = set(db.session.scalars(sa.select(AccessLogEntry.action).distinct()))
    actions = {**ACTION_LABELS, **{a: a for a in sorted(present - set(ACTION_LABELS))}}
    return render_template(
        "privacy/access_log.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE, actors=actors,
        actions=actions, communes=_communes(), args=request.args, filter_args=_filter_args(ctx), **ctx,
    ), 422 if ctx["errors"] else 200


@bp.get("/journal-acces.csv")
def access_log_csv() -> Any:
    stmt, ctx = _filters()
    if ctx["errors"]:
        return render_template(
            "privacy/access_log.html", rows=[], total=0, page=1, page_size=PAGE_SIZE, actors=[],
            actions=ACTION_LABELS, communes=_communes(), args=request.args, filter_args=_filter_args(ctx), **ctx,
        ), 422
    filters = ", ".join(f"{k}={v}" for k, v in _filter_args(ctx).items()) or "sans filtre"
    log_access(_actor(), "access_log.export", detail=f"Journal des accès ({filters})")
    db.session.commit()
    now = now_utc()

    def generate() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield "\ufeff" + out.getvalue()
        # Core execution (plain rows, no ORM objects piling up in the session), a server-side cursor on PostgreSQL.
        result = db.session.connection().execute(stmt.order_by(AccessLogEntry.at.desc(), AccessLogEntry.id.desc())
                                                 .execution_options(yield_per=1000))
        for partition in result.partitions():
            out.seek(0)
            out.truncate()
            for row in partition:
                m = row._mapping
                writer.writerow([m["at"].isoformat(), m["at"].astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S"),
                                 m["actor_id"] or "", m["actor_label"], m["action"],
                                 ACTION_LABELS.get(m["action"], m["action"]), m["subject_user_id"] or "",
                                 m["code"] or "", m["name"] or "", m["reference"] or "", m["detail"]])
            yield out.getvalue()

    name = f"journal-acces-{now.astimezone(PARIS):%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- a commune's full export ----------------------------------------------------------------------------------

class CommuneExportForm(FrenchForm):
    commune = SelectField("Commune", validators=[InputRequired(message="Choisissez la commune à exporter.")])


def _export_form() -> CommuneExportForm:
    form = CommuneExportForm()
    form.commune.choices = [("", "— Choisissez —")] + [
        (o.code, f"{o.name} ({o.code})" + ("" if o.is_active else " — désactivée")) for o in _communes()]
    return form


def _export_page(form: CommuneExportForm, status: int = 200, error: str | None = None) -> Any:
    return render_template("privacy/commune_export.html", form=form, error=error,
                           datasets=commune_export.DATASETS, schema_version=commune_export.SCHEMA_VERSION), status


@bp.route("/export-commune", methods=["GET", "POST"], endpoint="commune_export")
def commune_export_view() -> Any:
    form = _export_form()
    if request.method == "GET":
        return _export_page(form)
    if not form.validate_on_submit():
        return _export_page(form, 422)
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == form.commune.data,
                                                          Organisation.kind == ORG_COMMUNE))
    if org is None:  # the choices already refuse an unknown value; kept for a commune removed meanwhile
        form.commune.errors = ["Commune inconnue."]
        return _export_page(form, 422)
    now: datetime = now_utc()
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response) — unlinked at once: removed when closed, after the response is sent
    try:
        result = commune_export.write_export(org, tmp, now)
    except OSError:
        tmp.close()
        db.session.rollback()
        return _export_page(form, 503, "L'export n'a pas pu être écrit (espace disque ?). Réessayez plus tard ; "
                                        "si le problème persiste, prévenez l'exploitation.")
    try:
        commune_export.record_export(_actor(), org, result, now)
        db.session.commit()
    except Exception:
        tmp.close()
        raise
    tmp.seek(0)
    return send_file(tmp, mimetype="application/zip", as_attachment=True,
                     download_name=commune_export.export_filename(org, now), etag=False, max_age=0)
