"""Administration of reference data (Métropole admins): communes, services and categories, subscriptions,
schools and their administrators, routing rules (with a routing simulator), memberships, the FAQ (also
maintained by Métropole agents) and the audit journal. Every change goes through sau.admin.operations,
which writes an audit event; these views parse, check access (once, in `_check_access`), commit and render.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from sau.admin import forms as f
from sau.admin import operations as ops
from sau.admin.models import ACTION_LABELS, FIELD_LABELS, AuditEvent
from sau.auth import policy
from sau.auth.models import ROLES, Membership, User
from sau.clock import now_utc
from sau.errors import SauError, ValidationFailed
from sau.extensions import db, login_manager
from sau.faq.models import FaqEntry
from sau.help import intake
from sau.orgs.models import (
    ORG_COMMUNE,
    ORG_METROPOLE,
    Category,
    Organisation,
    School,
    SchoolAdministrator,
    Service,
    Subscription,
)
from sau.privacy.access_log import log_access
from sau.routing.models import TARGET_ORGANISATION, TARGETS, RoutingRule
from sau.routing.operations import RoutingRequest, route

bp = Blueprint("admin", __name__, url_prefix="/admin")

# The FAQ is "maintained by Métropole agents" (issue 2, point 3): these pages follow policy.can_manage_faq;
# every other page of the blueprint is for Métropole admins only.
FAQ_ENDPOINTS = frozenset({"admin.faq_list", "admin.faq_new", "admin.faq_edit", "admin.faq_publish",
                           "admin.faq_unpublish", "admin.faq_delete"})
JOURNAL_PAGE_SIZE = 50
OBJECT_TYPES = {
    "organisation": "Communes", "service": "Services", "category": "Catégories", "subscription": "Adhésions",
    "school": "Établissements", "routing_rule": "Règles de routage", "membership": "Habilitations", "faq": "FAQ",
}


@bp.before_request
def _check_access() -> Any:
    """The one access check of the administration: anonymous → sign-in, not allowed → 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    user: User = current_user  # type: ignore[assignment]
    allowed = policy.can_manage_faq(user) if request.endpoint in FAQ_ENDPOINTS else policy.is_admin(user)
    if not allowed:
        abort(403)
    return None


@bp.after_request
def _no_store(response: Any) -> Any:
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# --- helpers ----------------------------------------------------------------------------------------------

def _actor() -> User:
    return current_user  # type: ignore[return-value]


def _commit() -> None:
    """Commit the request's transaction; a unique constraint hit by a concurrent request becomes a 422."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed(
            "L'enregistrement est impossible : une donnée identique vient d'être créée ou est encore utilisée. "
            "Rechargez la page et vérifiez."
        ) from None


def _apply_errors(form: FlaskForm, exc: SauError) -> None:
    """Show an operation's field errors on the form's fields; other messages as an alert."""
    shown = False
    for name, message in exc.fields.items():
        if name in form:
            form[name].errors = [*form[name].errors, message]
            shown = True
        else:
            flash(message, "error")
            shown = True
    if not shown or not exc.fields:
        flash(exc.message, "error")
    form._errors = None  # the `errors` summary is cached by WTForms


def _save(form: FlaskForm, action: Any, success: str) -> bool:
    """Run `action` (an operation call) when the form is valid, commit, flash `success`. True on success."""
    if not form.validate_on_submit():
        return False
    try:
        action()
        _commit()
    except SauError as exc:
        db.session.rollback()
        _apply_errors(form, exc)
        return False
    flash(success, "success")
    return True


def _page(template: str, **context: Any) -> Any:
    """Render a form page: 422 when a submitted form was refused, 200 otherwise."""
    status = 422 if request.method == "POST" else 200
    return render_template(template, **context), status


def _action(action: Any, success: str, back: str, refused: Any) -> Any:
    """A button (POST with only a CSRF token): run, commit and go back; on refusal re-render `refused()`."""
    form = f.ActionForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        action()
        _commit()
    except SauError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return refused(), 422
    flash(success, "success")
    return redirect(back, code=303)


def _communes(active_only: bool = False) -> list[Organisation]:
    stmt = sa.select(Organisation).where(Organisation.kind == ORG_COMMUNE)
    if active_only:
        stmt = stmt.where(Organisation.is_active.is_(True))
    return list(db.session.scalars(stmt.order_by(Organisation.name)))


def _organisations() -> list[Organisation]:
    return list(db.session.scalars(
        sa.select(Organisation).order_by(sa.case((Organisation.kind == ORG_METROPOLE, 0), else_=1), Organisation.name)
    ))


def _services(sau_only: bool = False) -> list[Service]:
    stmt = sa.select(Service)
    if sau_only:
        stmt = stmt.where(Service.has_sau.is_(True))
    return list(db.session.scalars(stmt.order_by(Service.name)))


def _by_code(model: Any, code: str | None, **where: Any) -> Any:
    if not code:
        return None
    return db.session.scalar(sa.select(model).filter_by(code=code, **where))


def _log_read(detail: str, org: Organisation | None) -> None:
    """A page listing accounts with their e-mail addresses was shown: write it to the access log and commit
    (issue 8, point 5)."""
    log_access(_actor(), "user.list", commune_id=org.id if org is not None and org.kind == ORG_COMMUNE else None,
               detail=detail)
    db.session.commit()


def _commune_choices(placeholder: str = "— Choisissez —") -> list[tuple[str, str]]:
    return [("", placeholder)] + [(c.code, f"{c.name} ({c.code})" + ("" if c.is_active else " — désactivée"))
                                  for c in _communes()]


def _service_choices(placeholder: str = "— Choisissez —", sau_only: bool = False) -> list[tuple[str, str]]:
    return [("", placeholder)] + [(s.code, s.name) for s in _services(sau_only)]


def _category_choices(placeholder: str) -> list[tuple[str, str]]:
    """Distinct category codes, each with the services that use it (codes may repeat across services)."""
    rows = db.session.execute(
        sa.select(Category.code, Service.name).join(Service, Category.service_id == Service.id)
        .order_by(Category.code, Service.name)
    ).all()
    grouped: dict[str, list[str]] = {}
    for code, service_name in rows:
        grouped.setdefault(code, []).append(service_name)
    return [("", placeholder)] + [(code, f"{code} ({', '.join(names)})") for code, names in grouped.items()]


# --- dashboard --------------------------------------------------------------------------------------------

@bp.route("/")
def dashboard() -> Any:
    def count(model: Any, *where: Any) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

    today = now_utc().date()
    counts = {
        "communes": count(Organisation, Organisation.kind == ORG_COMMUNE, Organisation.is_active.is_(True)),
        "services": count(Service),
        "subscriptions": count(Subscription, Subscription.starts_on <= today,
                               sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= today)),
        "schools": count(School),
        "rules": count(RoutingRule, RoutingRule.is_active.is_(True)),
        "memberships": count(Membership),
        "faq": count(FaqEntry),
        "events": count(AuditEvent),
    }
    latest = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(5))
    return render_template("admin/dashboard.html", counts=counts, latest=list(latest))


# --- communes ---------------------------------------------------------------------------------------------

def _commune_or_404(org_id: int) -> Organisation:
    org = db.get_or_404(Organisation, org_id)
    if org.kind != ORG_COMMUNE:
        abort(404)
    return org


@bp.route("/communes")
def communes() -> Any:
    query = request.args.get("q", "").strip()[:100]
    stmt = (sa.select(Organisation).where(Organisation.kind == ORG_COMMUNE)
            .options(selectinload(Organisation.subscriptions).selectinload(Subscription.service))
            .order_by(Organisation.name))
    if query:
        stmt = stmt.where(sa.or_(Organisation.name.ilike(f"%{query}%"), Organisation.code.startswith(query)))
    metropole = db.session.scalar(sa.select(Organisation).where(Organisation.kind == ORG_METROPOLE))
    return render_template("admin/communes.html", communes=list(db.session.scalars(stmt)), query=query,
                           metropole=metropole, today=now_utc().date())


@bp.route("/communes/nouvelle", methods=["GET", "POST"])
def commune_new() -> Any:
    form = f.CommuneForm()
    created: list[Organisation] = []
    if _save(form, lambda: created.append(ops.create_commune(
            _actor(), now_utc(), code=form.code.data, name=form.name.data, population=form.population.data)),
            "Commune créée."):
        return redirect(url_for("admin.commune_edit", org_id=created[0].id), code=303)
    return _page("admin/commune_form.html", form=form, commune=None)


def _commune_page(org: Organisation, form: f.CommuneForm | None = None) -> Any:
    memberships = db.session.scalars(
        sa.select(Membership).where(Membership.organisation_id == org.id).order_by(Membership.role)
    ).all()
    subscriptions = sorted(org.subscriptions, key=lambda s: (s.service.name, s.starts_on))
    return render_template("admin/commune_form.html", form=form or f.CommuneForm(obj=org), commune=org,
                           subscriptions=subscriptions, memberships=memberships, action_form=f.ActionForm(),
                           today=now_utc().date())


@bp.route("/communes/<int:org_id>", methods=["GET", "POST"])
def commune_edit(org_id: int) -> Any:
    org = _commune_or_404(org_id)
    form = f.CommuneForm(obj=org)
    if _save(form, lambda: ops.update_commune(_actor(), now_utc(), org, code=form.code.data, name=form.name.data,
                                              population=form.population.data), "Commune enregistrée."):
        return redirect(url_for("admin.commune_edit", org_id=org.id), code=303)
    return _commune_page(org, form), 422 if request.method == "POST" else 200


@bp.post("/communes/<int:org_id>/desactiver")
def commune_deactivate(org_id: int) -> Any:
    org = _commune_or_404(org_id)
    return _action(lambda: ops.set_commune_active(_actor(), now_utc(), org, False),
                   f"{org.name} est désactivée : elle n'est plus proposée dans le formulaire d'aide.",
                   url_for("admin.commune_edit", org_id=org.id), lambda: _commune_page(_commune_or_404(org_id)))


@bp.post("/communes/<int:org_id>/reactiver")
def commune_reactivate(org_id: int) -> Any:
    org = _commune_or_404(org_id)
    return _action(lambda: ops.set_commune_active(_actor(), now_utc(), org, True), f"{org.name} est réactivée.",
                   url_for("admin.commune_edit", org_id=org.id), lambda: _commune_page(_commune_or_404(org_id)))


# --- services and categories ------------------------------------------------------------------------------

@bp.route("/services")
def services() -> Any:
    faq_counts = dict(db.session.execute(
        sa.select(FaqEntry.service_id, sa.func.count(FaqEntry.id)).group_by(FaqEntry.service_id)).all())
    return render_template("admin/services.html", services=_services(), faq_counts=faq_counts)


def _service_page(service: Service, form: f.ServiceForm | None = None,
                  category_form: f.NewCategoryForm | None = None) -> Any:
    usage = {c.id: ops.category_usage(c) for c in service.categories}
    return render_template("admin/service_form.html", service=service, form=form or f.ServiceForm(obj=service),
                           category_form=category_form or f.NewCategoryForm(prefix="category"), usage=usage,
                           action_form=f.ActionForm())


@bp.route("/services/<int:service_id>", methods=["GET", "POST"])
def service_edit(service_id: int) -> Any:
    service = db.get_or_404(Service, service_id)
    form = f.ServiceForm(obj=service)
    if _save(form, lambda: ops.update_service(
            _actor(), now_utc(), service, name=form.name.data, description=form.description.data or "",
            has_sau=form.has_sau.data, no_sau_reason=form.no_sau_reason.data or "",
            asks_commune=form.asks_commune.data, asks_school=form.asks_school.data), "Service enregistré."):
        return redirect(url_for("admin.service_edit", service_id=service.id), code=303)
    return _service_page(service, form=form), 422 if request.method == "POST" else 200


@bp.post("/services/<int:service_id>/categories")
def category_new(service_id: int) -> Any:
    service = db.get_or_404(Service, service_id)
    form = f.NewCategoryForm(prefix="category")
    if _save(form, lambda: ops.create_category(
            _actor(), now_utc(), service, code=form.code.data or "", label=form.label.data,
            position=form.position.data, requires_commune=form.requires_commune.data), "Catégorie ajoutée."):
        return redirect(url_for("admin.service_edit", service_id=service.id) + "#categories", code=303)
    return _service_page(db.get_or_404(Service, service_id), category_form=form), 422


@bp.route("/categories/<int:category_id>", methods=["GET", "POST"])
def category_edit(category_id: int) -> Any:
    category = db.get_or_404(Category, category_id)
    form = f.CategoryForm(obj=category)
    if _save(form, lambda: ops.update_category(
            _actor(), now_utc(), category, label=form.label.data, position=form.position.data,
            requires_commune=form.requires_commune.data), "Catégorie enregistrée."):
        return redirect(url_for("admin.service_edit", service_id=category.service_id) + "#categories", code=303)
    return _page("admin/category_form.html", form=form, category=category)


@bp.post("/categories/<int:category_id>/supprimer")
def category_delete(category_id: int) -> Any:
    category = db.get_or_404(Category, category_id)
    service_id = category.service_id
    return _action(lambda: ops.delete_category(_actor(), now_utc(), category), "Catégorie supprimée.",
                   url_for("admin.service_edit", service_id=service_id) + "#categories",
                   lambda: _service_page(db.get_or_404(Service, service_id)))


# --- subscriptions (adhésions) ----------------------------------------------------------------------------

@bp.route("/adhesions")
def subscriptions() -> Any:
    args = request.args
    today = now_utc().date()
    stmt = (sa.select(Subscription)
            .join(Organisation, Subscription.organisation_id == Organisation.id)
            .join(Service, Subscription.service_id == Service.id)
            .order_by(Organisation.name, Service.name, Subscription.starts_on))
    if args.get("service"):
        stmt = stmt.where(Service.code == args["service"])
    if args.get("commune"):
        stmt = stmt.where(Organisation.code == args["commune"])
    state = args.get("etat", "")
    if state == "en-cours":
        stmt = stmt.where(Subscription.starts_on <= today,
                          sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= today))
    elif state == "terminees":
        stmt = stmt.where(Subscription.ends_on < today)
    elif state == "a-venir":
        stmt = stmt.where(Subscription.starts_on > today)
    return render_template("admin/subscriptions.html", subscriptions=list(db.session.scalars(stmt)), args=args,
                           state=state, services=_services(), communes=_communes(), today=today)


def _new_subscription_form() -> f.NewSubscriptionForm:
    form = f.NewSubscriptionForm()
    form.commune.choices = _commune_choices()
    form.service.choices = _service_choices()
    if request.method == "GET":
        form.commune.data = request.args.get("commune", "")
        form.service.data = request.args.get("service", "")
    return form


def _subscription_form(sub: Subscription) -> f.SubscriptionForm:
    form = f.SubscriptionForm(obj=sub)
    if request.method == "GET":
        form.offer.data = sub.offer or ""
    return form


@bp.route("/adhesions/nouvelle", methods=["GET", "POST"])
def subscription_new() -> Any:
    form = _new_subscription_form()
    created: list[Subscription] = []
    if _save(form, lambda: created.append(ops.create_subscription(
            _actor(), now_utc(), commune=_by_code(Organisation, form.commune.data, kind=ORG_COMMUNE),
            service=_by_code(Service, form.service.data), offer=form.offer.data or None,
            starts_on=form.starts_on.data, ends_on=form.ends_on.data)), "Adhésion créée."):
        return redirect(url_for("admin.subscriptions", commune=created[0].organisation.code), code=303)
    return _page("admin/subscription_form.html", form=form, subscription=None)


def _subscription_page(sub: Subscription, form: f.SubscriptionForm | None = None,
                       end_form: f.EndSubscriptionForm | None = None) -> Any:
    if end_form is None:
        end_form = f.EndSubscriptionForm(prefix="end")
        end_form.ends_on.data = now_utc().date()
    return render_template("admin/subscription_form.html", form=form or _subscription_form(sub), subscription=sub,
                           end_form=end_form, today=now_utc().date())


@bp.route("/adhesions/<int:sub_id>", methods=["GET", "POST"])
def subscription_edit(sub_id: int) -> Any:
    sub = db.get_or_404(Subscription, sub_id)
    form = _subscription_form(sub)
    if _save(form, lambda: ops.update_subscription(_actor(), now_utc(), sub, offer=form.offer.data or None,
                                                   starts_on=form.starts_on.data, ends_on=form.ends_on.data),
             "Adhésion enregistrée."):
        return redirect(url_for("admin.subscription_edit", sub_id=sub.id), code=303)
    return _subscription_page(sub, form=form), 422 if request.method == "POST" else 200


@bp.post("/adhesions/<int:sub_id>/terminer")
def subscription_end(sub_id: int) -> Any:
    sub = db.get_or_404(Subscription, sub_id)
    end_form = f.EndSubscriptionForm(prefix="end")
    if _save(end_form, lambda: ops.end_subscription(_actor(), now_utc(), sub, end_form.ends_on.data),
             "Adhésion terminée."):
        return redirect(url_for("admin.subscription_edit", sub_id=sub.id), code=303)
    return _subscription_page(db.get_or_404(Subscription, sub_id), end_form=end_form), 422


# --- schools ----------------------------------------------------------------------------------------------

@bp.route("/etablissements")
def schools() -> Any:
    stmt = (sa.select(School).join(Organisation, School.commune_id == Organisation.id)
            .options(selectinload(School.administrators).selectinload(SchoolAdministrator.user))
            .order_by(Organisation.name, School.name))
    return render_template("admin/schools.html", schools=list(db.session.scalars(stmt)))


def _laclasse_commune_choices() -> list[tuple[str, str]]:
    laclasse = _by_code(Service, ops.LACLASSE)
    if laclasse is None:
        return [("", "— Choisissez —")]
    today = now_utc().date()
    subscribed = {s.organisation_id for s in db.session.scalars(sa.select(Subscription).where(
        Subscription.service_id == laclasse.id,
        sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= today)))}
    return [("", "— Choisissez —")] + [(c.code, f"{c.name} ({c.code})") for c in _communes() if c.id in subscribed]


def _school_form(school: School | None = None) -> f.SchoolForm:
    form = f.SchoolForm(obj=school)
    form.commune.choices = _laclasse_commune_choices()
    if school is not None:
        if request.method == "GET":
            form.commune.data = school.commune.code
        if all(code != school.commune.code for code, _ in form.commune.choices):
            form.commune.choices.append((school.commune.code, f"{school.commune.name} (adhésion terminée)"))
    return form


@bp.route("/etablissements/nouveau", methods=["GET", "POST"])
def school_new() -> Any:
    form = _school_form()
    created: list[School] = []
    if _save(form, lambda: created.append(ops.create_school(
            _actor(), now_utc(), uai=form.uai.data, name=form.name.data,
            commune=_by_code(Organisation, form.commune.data, kind=ORG_COMMUNE))), "Établissement créé."):
        return redirect(url_for("admin.school_edit", school_id=created[0].id), code=303)
    return _page("admin/school_form.html", form=form, school=None)


def _school_page(school: School, form: f.SchoolForm | None = None, admin_form: f.SchoolAdminForm | None = None) -> Any:
    return render_template("admin/school_form.html", school=school, form=form or _school_form(school),
                           admin_form=admin_form or f.SchoolAdminForm(prefix="admin"), action_form=f.ActionForm())


@bp.route("/etablissements/<int:school_id>", methods=["GET", "POST"])
def school_edit(school_id: int) -> Any:
    school = db.get_or_404(School, school_id)
    form = _school_form(school)
    if _save(form, lambda: ops.update_school(_actor(), now_utc(), school, uai=form.uai.data, name=form.name.data,
                                             commune=_by_code(Organisation, form.commune.data, kind=ORG_COMMUNE)),
             "Établissement enregistré."):
        return redirect(url_for("admin.school_edit", school_id=school.id), code=303)
    page = _school_page(school, form=form)
    if request.method == "GET" and school.administrators:
        _log_read(f"Administrateurs de l'établissement {school.uai}", school.commune)
    return page, 422 if request.method == "POST" else 200


@bp.post("/etablissements/<int:school_id>/administrateurs")
def school_admin_add(school_id: int) -> Any:
    school = db.get_or_404(School, school_id)
    form = f.SchoolAdminForm(prefix="admin")
    if _save(form, lambda: ops.add_school_administrator(_actor(), now_utc(), school, form.email.data),
             "Administrateur ajouté."):
        return redirect(url_for("admin.school_edit", school_id=school.id) + "#administrateurs", code=303)
    return _school_page(db.get_or_404(School, school_id), admin_form=form), 422


@bp.post("/etablissements/<int:school_id>/administrateurs/<int:admin_id>/retirer")
def school_admin_remove(school_id: int, admin_id: int) -> Any:
    admin = db.get_or_404(SchoolAdministrator, admin_id)
    if admin.school_id != school_id:
        abort(404)
    return _action(lambda: ops.remove_school_administrator(_actor(), now_utc(), admin), "Administrateur retiré.",
                   url_for("admin.school_edit", school_id=school_id) + "#administrateurs",
                   lambda: _school_page(db.get_or_404(School, school_id)))


# --- routing rules ----------------------------------------------------------------------------------------

def _routing_test_form(formdata: Any = None) -> f.RoutingTestForm:
    form = f.RoutingTestForm(formdata=formdata)
    form.service.choices = _service_choices(sau_only=True)
    form.category.choices = _category_choices("— Aucune —")
    form.commune.choices = _commune_choices("— Aucune —")
    form.school.choices = [("", "— Aucun —")] + [
        (s.uai, f"{s.name} ({s.uai}, {s.commune.name})")
        for s in db.session.scalars(sa.select(School).order_by(School.name))
    ]
    return form


def _rules() -> list[RoutingRule]:
    return list(db.session.scalars(sa.select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)))


@bp.route("/routage")
def routing_rules() -> Any:
    return render_template("admin/routing_rules.html", rules=_rules(), offers=ops.RULE_OFFERS, targets=TARGETS,
                           action_form=f.ActionForm(), test_form=_routing_test_form(formdata=None))


@bp.route("/routage/tester")
def routing_test() -> Any:
    """Simulate the routing of a request (service, category, commune, school) without creating anything."""
    form = _routing_test_form(formdata=request.args if request.args else None)
    decision = None
    status = 200
    if request.args:
        if form.validate():
            try:
                service = intake.require_sau_service(form.service.data)
                on = now_utc().date()
                category, commune, school = intake.resolve_fields(
                    service, form.category.data or None, form.commune.data or None, form.school.data or None, on)
                decision = route(RoutingRequest(service, category.code if category else None, commune, school, on))
            except ValidationFailed as exc:
                _apply_errors(form, exc)
                status = 422
        else:
            status = 422
    return render_template("admin/routing_test.html", form=form, decision=decision, offers=ops.RULE_OFFERS), status


def _rule_form(rule: RoutingRule | None = None) -> f.RoutingRuleForm:
    form = f.RoutingRuleForm(obj=rule)
    form.service.choices = _service_choices("— Tous les services —")
    form.category_code.choices = _category_choices("— Toutes les catégories —")
    form.commune.choices = _commune_choices("— Toutes les communes —")
    form.target_organisation.choices = [("", "— Aucune —")] + [(o.code, o.name) for o in _organisations()]
    if request.method == "GET":
        if rule is not None:
            form.service.data = rule.service.code if rule.service else ""
            form.category_code.data = rule.category_code or ""
            form.commune.data = rule.commune.code if rule.commune else ""
            form.offer.data = rule.offer or ""
            form.target_organisation.data = rule.target_organisation.code if rule.target_organisation else ""
            form.level.data = str(rule.level)
        else:
            last = db.session.scalar(sa.select(sa.func.max(RoutingRule.position))) or 0
            form.position.data = last + 10
            form.level.data = "1"
    return form


def _rule_data(form: f.RoutingRuleForm) -> ops.RuleData:
    return ops.RuleData(
        name=form.name.data or "", position=form.position.data, service=_by_code(Service, form.service.data),
        category_code=form.category_code.data or None,
        commune=_by_code(Organisation, form.commune.data, kind=ORG_COMMUNE), offer=form.offer.data or None,
        target=form.target.data or "", target_organisation=_by_code(Organisation, form.target_organisation.data),
        level=int(form.level.data) if (form.level.data or "").isdigit() else None, reason=form.reason.data or "",
        is_active=form.is_active.data,
    )


@bp.route("/routage/nouvelle", methods=["GET", "POST"])
def routing_rule_new() -> Any:
    form = _rule_form()
    if _save(form, lambda: ops.create_routing_rule(_actor(), now_utc(), _rule_data(form)), "Règle créée."):
        return redirect(url_for("admin.routing_rules"), code=303)
    return _page("admin/routing_rule_form.html", form=form, rule=None, target_organisation=TARGET_ORGANISATION)


@bp.route("/routage/<int:rule_id>", methods=["GET", "POST"])
def routing_rule_edit(rule_id: int) -> Any:
    rule = db.get_or_404(RoutingRule, rule_id)
    form = _rule_form(rule)
    if _save(form, lambda: ops.update_routing_rule(_actor(), now_utc(), rule, _rule_data(form)),
             "Règle enregistrée."):
        return redirect(url_for("admin.routing_rules"), code=303)
    return _page("admin/routing_rule_form.html", form=form, rule=rule, target_organisation=TARGET_ORGANISATION)


def _rules_page() -> Any:
    return routing_rules()


@bp.post("/routage/<int:rule_id>/activer")
def routing_rule_activate(rule_id: int) -> Any:
    rule = db.get_or_404(RoutingRule, rule_id)
    return _action(lambda: ops.set_routing_rule_active(_actor(), now_utc(), rule, True), "Règle activée.",
                   url_for("admin.routing_rules"), _rules_page)


@bp.post("/routage/<int:rule_id>/desactiver")
def routing_rule_deactivate(rule_id: int) -> Any:
    rule = db.get_or_404(RoutingRule, rule_id)
    return _action(lambda: ops.set_routing_rule_active(_actor(), now_utc(), rule, False), "Règle désactivée.",
                   url_for("admin.routing_rules"), _rules_page)


# --- memberships ------------------------------------------------------------------------------------------

def _memberships_page() -> Any:
    code = request.args.get("organisation", "")
    stmt = (sa.select(Membership)
            .join(Organisation, Membership.organisation_id == Organisation.id)
            .join(User, Membership.user_id == User.id)
            .options(selectinload(Membership.user), selectinload(Membership.service))
            .order_by(sa.case((Organisation.kind == ORG_METROPOLE, 0), else_=1), Organisation.name,
                      Membership.role, User.family_name, User.given_name))
    if code:
        stmt = stmt.where(Organisation.code == code)
    groups: dict[int, tuple[Organisation, list[Membership]]] = {}
    for m in db.session.scalars(stmt):
        groups.setdefault(m.organisation_id, (m.organisation, []))[1].append(m)
    return render_template("admin/memberships.html", groups=list(groups.values()), organisations=_organisations(),
                           selected=code, action_form=f.ActionForm())


@bp.route("/habilitations")
def memberships() -> Any:
    page = _memberships_page()
    org = _by_code(Organisation, request.args.get("organisation") or None)
    _log_read(f"Habilitations : {org.name if org else 'toutes les organisations'}", org)
    return page


@bp.route("/habilitations/nouvelle", methods=["GET", "POST"])
def membership_new() -> Any:
    form = f.MembershipForm()
    form.organisation.choices = [("", "— Choisissez —")] + [(o.code, o.name) for o in _organisations()]
    form.service.choices = _service_choices("— Tous les services —")
    if request.method == "GET":
        form.organisation.data = request.args.get("organisation", "")
    created: list[Membership] = []
    if _save(form, lambda: created.append(ops.grant_membership(
            _actor(), now_utc(), email=form.email.data, organisation=_by_code(Organisation, form.organisation.data),
            role=form.role.data, service=_by_code(Service, form.service.data))),
            "Habilitation accordée."):
        return redirect(url_for("admin.memberships", organisation=created[0].organisation.code), code=303)
    return _page("admin/membership_form.html", form=form, roles=ROLES)


@bp.post("/habilitations/<int:membership_id>/retirer")
def membership_revoke(membership_id: int) -> Any:
    membership = db.get_or_404(Membership, membership_id)
    org_code = membership.organisation.code
    return _action(lambda: ops.revoke_membership(_actor(), now_utc(), membership), "Habilitation retirée.",
                   url_for("admin.memberships", organisation=org_code), _memberships_page)


# --- journal ----------------------------------------------------------------------------------------------

@bp.route("/journal")
def journal() -> Any:
    object_type = request.args.get("objet", "")
    page = max(1, request.args.get("page", 1, type=int) or 1)
    stmt = sa.select(AuditEvent)
    if object_type in OBJECT_TYPES:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery())) or 0
    events = db.session.scalars(stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                .limit(JOURNAL_PAGE_SIZE).offset((page - 1) * JOURNAL_PAGE_SIZE)).all()
    return render_template("admin/journal.html", events=events, total=total, page=page, page_size=JOURNAL_PAGE_SIZE,
                           object_types=OBJECT_TYPES, object_type=object_type, action_labels=ACTION_LABELS,
                           field_labels=FIELD_LABELS)


# --- FAQ (admins and Métropole agents) --------------------------------------------------------------------

def _faq_page() -> Any:
    code = request.args.get("service", "")
    stmt = (sa.select(FaqEntry).join(Service, FaqEntry.service_id == Service.id)
            .order_by(Service.name, FaqEntry.question))
    if code:
        stmt = stmt.where(Service.code == code)
    return render_template("admin/faq.html", entries=list(db.session.scalars(stmt)), services=_services(True),
                           selected=code, action_form=f.ActionForm())


@bp.route("/faq")
def faq_list() -> Any:
    return _faq_page()


def _faq_form(entry: FaqEntry | None = None) -> f.FaqForm:
    form = f.FaqForm(obj=entry)
    form.service.choices = _service_choices(sau_only=True)
    if request.method == "GET":
        form.service.data = entry.service.code if entry is not None else request.args.get("service", "")
    return form


@bp.route("/faq/nouvelle", methods=["GET", "POST"])
def faq_new() -> Any:
    form = _faq_form()
    created: list[FaqEntry] = []
    if _save(form, lambda: created.append(ops.create_faq(
            _actor(), now_utc(), service=_by_code(Service, form.service.data), question=form.question.data,
            answer=form.answer.data, keywords=form.keywords.data or "", is_published=form.is_published.data)),
            "Question ajoutée."):
        return redirect(url_for("admin.faq_list", service=created[0].service.code), code=303)
    return _page("admin/faq_form.html", form=form, entry=None, action_form=f.ActionForm())


@bp.route("/faq/<int:entry_id>", methods=["GET", "POST"])
def faq_edit(entry_id: int) -> Any:
    entry = db.get_or_404(FaqEntry, entry_id)
    form = _faq_form(entry)
    if _save(form, lambda: ops.update_faq(
            _actor(), now_utc(), entry, service=_by_code(Service, form.service.data), question=form.question.data,
            answer=form.answer.data, keywords=form.keywords.data or "", is_published=form.is_published.data),
            "Question enregistrée."):
        return redirect(url_for("admin.faq_list", service=entry.service.code), code=303)
    return _page("admin/faq_form.html", form=form, entry=entry, action_form=f.ActionForm())


@bp.post("/faq/<int:entry_id>/publier")
def faq_publish(entry_id: int) -> Any:
    entry = db.get_or_404(FaqEntry, entry_id)
    return _action(lambda: ops.set_faq_published(_actor(), now_utc(), entry, True), "Question publiée.",
                   url_for("admin.faq_list", service=entry.service.code), _faq_page)


@bp.post("/faq/<int:entry_id>/depublier")
def faq_unpublish(entry_id: int) -> Any:
    entry = db.get_or_404(FaqEntry, entry_id)
    return _action(lambda: ops.set_faq_published(_actor(), now_utc(), entry, False),
                   "Question retirée de la FAQ publique.", url_for("admin.faq_list", service=entry.service.code),
                   _faq_page)


@bp.post("/faq/<int:entry_id>/supprimer")
def faq_delete(entry_id: int) -> Any:
    entry = db.get_or_404(FaqEntry, entry_id)
    code = entry.service.code
    return _action(lambda: ops.delete_faq(_actor(), now_utc(), entry), "Question supprimée.",
                   url_for("admin.faq_list", service=code), _faq_page)


from sau.admin import calendar as _calendar  # noqa: F401  (its routes belong to this blueprint)
