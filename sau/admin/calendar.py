"""Administration of the SLA settings: the business calendar's extra closures and exceptional opening hours,
and per-service resolution targets. Routes of the `admin` blueprint (its access check applies).

Toodego annex § 6.1.a: support on business days, Monday to Friday 9:00–17:00; bloquant 8 h, majeur 24 h.
A change moves the deadlines of open tickets, so they are recomputed at once; each change is audited.
"""
from __future__ import annotations

from datetime import date, time
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import InputRequired, Length, Optional

from sau.admin.forms import ActionForm, AdminForm, _date
from sau.admin.operations import record
from sau.admin.views import bp
from sau.clock import now_utc
from sau.extensions import db
from sau.orgs.models import CalendarClosure, Service
from sau.tickets import sla as ticket_sla

TIME_INPUT = {"autocomplete": "off", "size": 6, "placeholder": "HH:MM"}


class ClosureForm(AdminForm):
    day = _date("Date (JJ/MM/AAAA)", "Indiquez la date.")
    label = StringField("Motif", validators=[InputRequired(message="Indiquez le motif (ex. : pont de l'Ascension)."),
                                             Length(max=200)])
    opens_at = StringField("Ouverture exceptionnelle (facultatif)", validators=[Optional(), Length(max=5)],
                           render_kw=TIME_INPUT)
    closes_at = StringField("Fermeture exceptionnelle (facultatif)", validators=[Optional(), Length(max=5)],
                            render_kw=TIME_INPUT)


class TargetsForm(AdminForm):
    bloquant = StringField("Bloquant (heures ouvrées)", validators=[Optional(), Length(max=6)],
                           render_kw={"inputmode": "decimal", "size": 6})
    majeur = StringField("Majeur (heures ouvrées)", validators=[Optional(), Length(max=6)],
                         render_kw={"inputmode": "decimal", "size": 6})


def _parse_time(value: str | None, field: str, errors: dict[str, str]) -> time | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        hours, minutes = value.replace("h", ":").split(":") if ":" in value or "h" in value else (value, "0")
        return time(int(hours), int(minutes or 0))
    except ValueError:
        errors[field] = "Heure invalide : utilisez le format HH:MM (ex. 09:00)."
        return None


def _parse_hours(value: str | None, field: str, errors: dict[str, str]) -> float | None:
    value = (value or "").strip().replace(",", ".")
    if not value:
        return None
    try:
        hours = float(value)
    except ValueError:
        errors[field] = "Saisissez un nombre d'heures (ex. 8 ou 7,5)."
        return None
    if not 0 < hours <= 400:
        errors[field] = "Entre 0 et 400 heures ouvrées."
        return None
    return hours


def _page(closure_form: ClosureForm | None = None, status: int = 200) -> Any:
    closures = db.session.scalars(sa.select(CalendarClosure).order_by(CalendarClosure.day.desc())).all()
    services = db.session.scalars(sa.select(Service).where(Service.has_sau.is_(True)).order_by(Service.name)).all()
    target_forms = {s.id: TargetsForm(prefix=f"s{s.id}", bloquant=_fmt(s.sla_bloquant_hours),
                                      majeur=_fmt(s.sla_majeur_hours)) for s in services}
    return render_template("admin/calendar.html", section="calendar", closures=closures, services=services,
                           closure_form=closure_form or ClosureForm(), target_forms=target_forms,
                           delete_form=ActionForm()), status


def _fmt(hours: float | None) -> str:
    if hours is None:
        return ""
    return f"{hours:g}".replace(".", ",")


def _closure_snapshot(c: CalendarClosure) -> dict[str, Any]:
    return {"day": c.day.isoformat(), "label": c.label,
            "opens_at": c.opens_at.isoformat("minutes") if c.opens_at else None,
            "closes_at": c.closes_at.isoformat("minutes") if c.closes_at else None}


def _apply(action: str, object_type: str, object_id: int, label: str, before: dict[str, Any] | None,
           after: dict[str, Any] | None, message: str) -> Any:
    """Audit a settings change, recompute the open tickets' deadlines it moves, commit, confirm."""
    now = now_utc()
    record(current_user, now, action, object_type, object_id, label, before, after)  # type: ignore[arg-type]
    count = ticket_sla.recompute_open(now)
    db.session.commit()
    flash(f"{message} ; échéances de {count} ticket(s) ouvert(s) recalculées.", "success")
    return redirect(url_for("admin.calendar_settings"), code=303)


@bp.route("/calendrier")
def calendar_settings() -> Any:
    return _page()


@bp.post("/calendrier/jours")
def calendar_add_day() -> Any:
    form = ClosureForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    errors: dict[str, str] = {}
    opens = _parse_time(form.opens_at.data, "opens_at", errors)
    closes = _parse_time(form.closes_at.data, "closes_at", errors)
    if (opens is None) != (closes is None) and not errors:
        errors["closes_at" if opens else "opens_at"] = "Indiquez l'ouverture et la fermeture, ou aucune des deux."
    elif opens is not None and closes is not None and closes <= opens:
        errors["closes_at"] = "La fermeture doit suivre l'ouverture."
    day: date = form.day.data
    if db.session.scalar(sa.select(CalendarClosure).where(CalendarClosure.day == day)) is not None:
        errors["day"] = "Cette date est déjà dans le calendrier : supprimez-la d'abord pour la modifier."
    if errors:
        for name, message in errors.items():
            getattr(form, name).errors = [message]
        return _page(form, 422)
    closure = CalendarClosure(day=day, label=form.label.data.strip(), opens_at=opens, closes_at=closes)
    db.session.add(closure)
    db.session.flush()
    return _apply("calendar.day_added", "calendar", closure.id, closure.label, None, _closure_snapshot(closure),
                  "Jour ajouté au calendrier")


@bp.post("/calendrier/jours/<int:closure_id>/supprimer")
def calendar_remove_day(closure_id: int) -> Any:
    closure = db.session.get(CalendarClosure, closure_id)
    if closure is None:
        return _page(status=404)
    if not ActionForm().validate_on_submit():
        return _page(status=400)
    before = _closure_snapshot(closure)
    db.session.delete(closure)
    db.session.flush()
    return _apply("calendar.day_removed", "calendar", closure_id, before["label"], before, None,
                  "Jour retiré du calendrier")


@bp.post("/calendrier/services/<int:service_id>")
def calendar_service_targets(service_id: int) -> Any:
    service = db.session.get(Service, service_id)
    if service is None:
        return _page(status=404)
    form = TargetsForm(prefix=f"s{service.id}")
    errors: dict[str, str] = {}
    if not form.validate_on_submit():
        return _page(status=422)
    bloquant = _parse_hours(form.bloquant.data, "bloquant", errors)
    majeur = _parse_hours(form.majeur.data, "majeur", errors)
    if errors:
        flash(f"{service.name} : " + " ".join(errors.values()), "error")
        return _page(status=422)
    before = {"bloquant_hours": service.sla_bloquant_hours, "majeur_hours": service.sla_majeur_hours}
    service.sla_bloquant_hours, service.sla_majeur_hours = bloquant, majeur
    db.session.flush()
    after = {"bloquant_hours": bloquant, "majeur_hours": majeur}
    if after == before:
        flash("Aucun changement.", "info")
        return redirect(url_for("admin.calendar_settings"), code=303)
    return _apply("service.sla_targets", "service", service.id, service.name, before, after,
                  f"Délais de {service.name} enregistrés")

