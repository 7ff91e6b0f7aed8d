"""Administration of reference data and memberships.

Every function takes the acting admin (`actor`) and the instant (`now`) explicitly, validates its input
(raising `ValidationFailed` with one French message per field, before changing anything), applies the
change, flushes, and writes an immutable `AuditEvent` with the state before and after. The caller (a view,
the CLI) commits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from sau.admin.models import AuditEvent
from sau.auth.models import ROLE_ADMIN, ROLES, Membership, User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.faq.models import FaqEntry
from sau.orgs.models import (
    OFFERS,
    ORG_COMMUNE,
    ORG_METROPOLE,
    Category,
    Organisation,
    School,
    SchoolAdministrator,
    Service,
    Subscription,
)
from sau.routing.models import TARGET_ORGANISATION, TARGETS, RoutingRule
from sau.routing.operations import NO_OFFER
from sau.tickets.models import Ticket

TOODEGO = "toodego"
LACLASSE = "laclasse"
INSEE_RE = re.compile(r"^[0-9]{5}$")
# UAI (unité administrative immatriculée): 7 digits and a letter, e.g. 0690900A.
UAI_RE = re.compile(r"^[0-9]{7}[A-Z]$")
CATEGORY_CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Offer criteria of a routing rule: the Toodego offers, "not subscribed", "subscribed without an offer".
RULE_OFFERS = {**OFFERS, NO_OFFER: "Commune non adhérente", "subscribed": "Adhérente (sans offre)"}
TEXT_MAX = 20_000
FORM_ERROR = "Le formulaire contient des erreurs : corrigez les champs signalés."


def _invalid(errors: dict[str, str], message: str = FORM_ERROR) -> ValidationFailed:
    return ValidationFailed(message, errors)


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: str | None) -> str:
    return (value or "").strip()


def _check_length(errors: dict[str, str], field: str, value: str, label: str, max_len: int,
                  required: bool = True) -> None:
    if required and not value:
        errors.setdefault(field, f"Indiquez {label}.")
    elif len(value) > max_len:
        errors.setdefault(field, f"{max_len} caractères au plus.")


def record(actor: User, now: datetime, action: str, object_type: str, object_id: int | None, object_label: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> AuditEvent:
    """Append an event to the administration journal (flushed) and return it."""
    event = AuditEvent(
        at=now, actor_id=actor.id, actor_label=actor.display_name[:200], action=action, object_type=object_type,
        object_id=object_id, object_label=object_label[:300], data={"before": before, "after": after},
    )
    db.session.add(event)
    db.session.flush()
    return event


# --- Organisations (communes) ----------------------------------------------------------------------------

def commune_snapshot(org: Organisation) -> dict[str, Any]:
    return {"code": org.code, "name": org.name, "population": org.population, "is_active": org.is_active}


def _validate_commune(code: str, name: str, population: int | None, current: Organisation | None) -> None:
    errors: dict[str, str] = {}
    if not INSEE_RE.match(code):
        errors["code"] = "Le code INSEE compte exactement 5 chiffres (par exemple 69081 pour Écully)."
    else:
        clash = db.session.scalar(sa.select(Organisation).where(Organisation.code == code))
        if clash is not None and clash is not current:
            errors["code"] = f"Le code INSEE {code} est déjà celui de {clash.name}."
    _check_length(errors, "name", name, "le nom de la commune", 200)
    if population is not None and population < 0:
        errors["population"] = "La population ne peut pas être négative."
    if errors:
        raise _invalid(errors)


def create_commune(actor: User, now: datetime, *, code: str, name: str, population: int | None) -> Organisation:
    """Create a commune. Raises ValidationFailed (code, name, population)."""
    code, name = _text(code), _text(name)
    _validate_commune(code, name, population, None)
    org = Organisation(kind=ORG_COMMUNE, code=code, name=name, population=population, is_active=True)
    db.session.add(org)
    db.session.flush()
    record(actor, now, "organisation.created", "organisation", org.id, f"{org.name} ({org.code})",
           after=commune_snapshot(org))
    return org


def update_commune(actor: User, now: datetime, org: Organisation, *, code: str, name: str,
                   population: int | None) -> Organisation:
    """Change a commune's INSEE code, name or population. Raises ValidationFailed."""
    code, name = _text(code), _text(name)
    _validate_commune(code, name, population, org)
    before = commune_snapshot(org)
    org.code, org.name, org.population = code, name, population
    db.session.flush()
    if commune_snapshot(org) != before:
        record(actor, now, "organisation.updated", "organisation", org.id, f"{org.name} ({org.code})",
               before, commune_snapshot(org))
    return org


def set_commune_active(actor: User, now: datetime, org: Organisation, is_active: bool) -> Organisation:
    """Deactivate (no longer offered in the help form) or reactivate a commune. Its history is kept."""
    if org.kind != ORG_COMMUNE:
        raise ValidationFailed("Seules les communes peuvent être désactivées.")
    if org.is_active == is_active:
        return org
    before = commune_snapshot(org)
    org.is_active = is_active
    db.session.flush()
    record(actor, now, "organisation.reactivated" if is_active else "organisation.deactivated", "organisation",
           org.id, f"{org.name} ({org.code})", before, commune_snapshot(org))
    return org


# --- Services and their categories ------------------------------------------------------------------------

def service_snapshot(service: Service) -> dict[str, Any]:
    return {"name": service.name, "description": service.description, "has_sau": service.has_sau,
            "no_sau_reason": service.no_sau_reason, "asks_commune": service.asks_commune,
            "asks_school": service.asks_school}


def update_service(actor: User, now: datetime, service: Service, *, name: str, description: str, has_sau: bool,
                   no_sau_reason: str, asks_commune: bool, asks_school: bool) -> Service:
    """Edit a service (its code is part of the contract and never changes). Raises ValidationFailed."""
    name, description, no_sau_reason = _text(name), _text(description), _text(no_sau_reason)
    errors: dict[str, str] = {}
    _check_length(errors, "name", name, "le nom du service", 200)
    _check_length(errors, "description", description, "", 5000, required=False)
    _check_length(errors, "no_sau_reason", no_sau_reason, "", 5000, required=False)
    if not has_sau and not no_sau_reason:
        errors["no_sau_reason"] = "Expliquez aux usagers pourquoi ce service n'a pas de SAU."
    if errors:
        raise _invalid(errors)
    before = service_snapshot(service)
    service.name, service.description, service.has_sau = name, description, has_sau
    service.no_sau_reason, service.asks_commune, service.asks_school = no_sau_reason, asks_commune, asks_school
    db.session.flush()
    if service_snapshot(service) != before:
        record(actor, now, "service.updated", "service", service.id, service.name, before, service_snapshot(service))
    return service


def category_snapshot(category: Category) -> dict[str, Any]:
    return {"service": category.service.code, "code": category.code, "label": category.label,
            "position": category.position, "requires_commune": category.requires_commune}


def _validate_category(label: str, position: int | None, errors: dict[str, str]) -> None:
    _check_length(errors, "label", label, "le libellé", 200)
    if position is None:
        errors["position"] = "Indiquez l'ordre d'affichage (un nombre entier)."
    elif not 0 <= position <= 1000:
        errors["position"] = "L'ordre d'affichage est compris entre 0 et 1000."


def create_category(actor: User, now: datetime, service: Service, *, code: str, label: str, position: int | None,
                    requires_commune: bool) -> Category:
    """Add a category to a service. Raises ValidationFailed (code, label, position)."""
    code, label = _text(code).lower(), _text(label)
    errors: dict[str, str] = {}
    if not CATEGORY_CODE_RE.match(code):
        errors["code"] = "Le code se compose de lettres minuscules sans accent, de chiffres et de tirets (40 au plus)."
    elif any(c.code == code for c in service.categories):
        errors["code"] = f"Le service {service.name} a déjà une catégorie « {code} »."
    _validate_category(label, position, errors)
    if errors:
        raise _invalid(errors)
    category = Category(code=code, label=label, position=position or 0, requires_commune=requires_commune)
    service.categories.append(category)
    db.session.flush()
    record(actor, now, "category.created", "category", category.id, f"{service.name} — {label}",
           after=category_snapshot(category))
    return category


def update_category(actor: User, now: datetime, category: Category, *, label: str, position: int | None,
                    requires_commune: bool) -> Category:
    """Edit a category's label, order and whether it requires a commune (its code is referenced by rules)."""
    label = _text(label)
    errors: dict[str, str] = {}
    _validate_category(label, position, errors)
    if errors:
        raise _invalid(errors)
    before = category_snapshot(category)
    category.label, category.position, category.requires_commune = label, position or 0, requires_commune
    db.session.flush()
    if category_snapshot(category) != before:
        record(actor, now, "category.updated", "category", category.id, f"{category.service.name} — {label}",
               before, category_snapshot(category))
    return category


def category_usage(category: Category) -> tuple[int, int]:
    """(tickets filed under the category, routing rules naming its code for its service or any service)."""
    tickets = db.session.scalar(sa.select(sa.func.count(Ticket.id)).where(Ticket.category_id == category.id)) or 0
    rules = db.session.scalar(
        sa.select(sa.func.count(RoutingRule.id)).where(
            RoutingRule.category_code == category.code,
            sa.or_(RoutingRule.service_id.is_(None), RoutingRule.service_id == category.service_id),
        )
    ) or 0
    return tickets, rules


def delete_category(actor: User, now: datetime, category: Category) -> None:
    """Remove a category nobody uses. Raises ValidationFailed when tickets or routing rules refer to it."""
    tickets, rules = category_usage(category)
    if tickets or rules:
        parts = []
        if tickets:
            parts.append(f"{tickets} demande{'s' if tickets > 1 else ''}")
        if rules:
            parts.append(f"{rules} règle{'s' if rules > 1 else ''} de routage")
        raise ValidationFailed(
            f"La catégorie « {category.label} » est utilisée ({' et '.join(parts)}) : elle ne peut pas être "
            "supprimée. Modifiez plutôt son libellé."
        )
    before = category_snapshot(category)
    label = f"{category.service.name} — {category.label}"
    category_id = category.id
    category.service.categories.remove(category)
    db.session.flush()
    record(actor, now, "category.deleted", "category", category_id, label, before, None)


# --- Subscriptions (adhésions) -----------------------------------------------------------------------------

def subscription_snapshot(sub: Subscription) -> dict[str, Any]:
    return {"commune": sub.organisation.code, "service": sub.service.code, "offer": sub.offer,
            "starts_on": _iso(sub.starts_on), "ends_on": _iso(sub.ends_on)}


def _subscription_label(sub: Subscription) -> str:
    return f"{sub.organisation.name} — {sub.service.name}"


def _validate_subscription(commune: Organisation | None, service: Service | None, offer: str | None,
                           starts_on: date | None, ends_on: date | None, current: Subscription | None) -> None:
    errors: dict[str, str] = {}
    if commune is None or commune.kind != ORG_COMMUNE:
        errors["commune"] = "Choisissez une commune."
    if service is None:
        errors["service"] = "Choisissez un service."
    elif service.code == TOODEGO and offer not in OFFERS:
        errors["offer"] = "Choisissez l'offre Toodego de la commune : Partenaire, Connecté ou Abonné."
    elif service.code != TOODEGO and offer:
        errors["offer"] = f"Les offres Partenaire, Connecté et Abonné ne concernent que Toodego, pas {service.name}."
    if starts_on is None:
        errors["starts_on"] = "Indiquez la date de début de l'adhésion."
    elif ends_on is not None and ends_on < starts_on:
        errors["ends_on"] = "La date de fin ne peut pas précéder la date de début."
    if not errors and commune is not None and service is not None and starts_on is not None:
        overlap = sa.select(Subscription).where(
            Subscription.organisation_id == commune.id,
            Subscription.service_id == service.id,
            sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= starts_on),
        )
        if ends_on is not None:
            overlap = overlap.where(Subscription.starts_on <= ends_on)
        if current is not None:
            overlap = overlap.where(Subscription.id != current.id)
        clash = db.session.scalars(overlap.order_by(Subscription.starts_on)).first()
        if clash is not None:
            period = f"depuis le {clash.starts_on:%d/%m/%Y}" + (
                f" jusqu'au {clash.ends_on:%d/%m/%Y}" if clash.ends_on else ", sans date de fin")
            errors["starts_on"] = (
                f"{commune.name} adhère déjà à {service.name} sur cette période ({period}) : "
                "terminez d'abord l'adhésion en cours ou choisissez d'autres dates."
            )
    if errors:
        raise _invalid(errors)


def create_subscription(actor: User, now: datetime, *, commune: Organisation | None, service: Service | None,
                        offer: str | None, starts_on: date | None, ends_on: date | None) -> Subscription:
    """A commune subscribes to a service. The offer is required for Toodego and forbidden otherwise; two
    subscriptions of a commune to the same service never overlap. Raises ValidationFailed."""
    offer = offer or None
    _validate_subscription(commune, service, offer, starts_on, ends_on, None)
    assert commune is not None and service is not None and starts_on is not None
    sub = Subscription(organisation=commune, service=service, offer=offer, starts_on=starts_on, ends_on=ends_on)
    db.session.add(sub)
    db.session.flush()
    record(actor, now, "subscription.created", "subscription", sub.id, _subscription_label(sub),
           after=subscription_snapshot(sub))
    return sub


def update_subscription(actor: User, now: datetime, sub: Subscription, *, offer: str | None, starts_on: date | None,
                        ends_on: date | None) -> Subscription:
    """Correct a subscription's offer or dates (the commune and the service do not change)."""
    offer = offer or None
    _validate_subscription(sub.organisation, sub.service, offer, starts_on, ends_on, sub)
    assert starts_on is not None
    before = subscription_snapshot(sub)
    sub.offer, sub.starts_on, sub.ends_on = offer, starts_on, ends_on
    db.session.flush()
    if subscription_snapshot(sub) != before:
        record(actor, now, "subscription.updated", "subscription", sub.id, _subscription_label(sub), before,
               subscription_snapshot(sub))
    return sub


def end_subscription(actor: User, now: datetime, sub: Subscription, ends_on: date | None) -> Subscription:
    """End a subscription on `ends_on` (included). Raises ValidationFailed (ends_on)."""
    if ends_on is None:
        raise _invalid({"ends_on": "Indiquez la date de fin de l'adhésion."})
    if sub.ends_on is not None and sub.ends_on < now.date():
        raise _invalid({"ends_on": f"Cette adhésion est déjà terminée depuis le {sub.ends_on:%d/%m/%Y}."})
    if ends_on < sub.starts_on:
        raise _invalid({"ends_on": f"La date de fin ne peut pas précéder le début de l'adhésion "
                                   f"({sub.starts_on:%d/%m/%Y})."})
    before = subscription_snapshot(sub)
    sub.ends_on = ends_on
    db.session.flush()
    record(actor, now, "subscription.ended", "subscription", sub.id, _subscription_label(sub), before,
           subscription_snapshot(sub))
    return sub


# --- Schools and their administrators ----------------------------------------------------------------------

def school_snapshot(school: School) -> dict[str, Any]:
    return {"uai": school.uai, "name": school.name, "commune": school.commune.code}


def _laclasse_subscribed(commune: Organisation, on: date) -> bool:
    return db.session.scalar(
        sa.select(sa.func.count(Subscription.id))
        .join(Service, Subscription.service_id == Service.id)
        .where(
            Service.code == LACLASSE,
            Subscription.organisation_id == commune.id,
            sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= on),
        )
    ) > 0


def _validate_school(uai: str, name: str, commune: Organisation | None, current: School | None, on: date) -> None:
    errors: dict[str, str] = {}
    if not UAI_RE.match(uai):
        errors["uai"] = "Le code UAI compte 7 chiffres suivis d'une lettre (par exemple 0690900A)."
    else:
        clash = db.session.scalar(sa.select(School).where(School.uai == uai))
        if clash is not None and clash is not current:
            errors["uai"] = f"Le code UAI {uai} est déjà celui de l'établissement « {clash.name} »."
    _check_length(errors, "name", name, "le nom de l'établissement", 200)
    if commune is None or commune.kind != ORG_COMMUNE:
        errors["commune"] = "Choisissez la commune de l'établissement."
    elif not _laclasse_subscribed(commune, on):
        errors["commune"] = f"{commune.name} n'adhère pas à laclasse.com : créez d'abord son adhésion."
    if errors:
        raise _invalid(errors)


def create_school(actor: User, now: datetime, *, uai: str, name: str, commune: Organisation | None) -> School:
    """Create a school of a commune subscribed to laclasse.com. Raises ValidationFailed (uai, name, commune)."""
    uai, name = _text(uai).upper(), _text(name)
    _validate_school(uai, name, commune, None, now.date())
    school = School(uai=uai, name=name, commune=commune)
    db.session.add(school)
    db.session.flush()
    record(actor, now, "school.created", "school", school.id, f"{name} ({uai})", after=school_snapshot(school))
    return school


def update_school(actor: User, now: datetime, school: School, *, uai: str, name: str,
                  commune: Organisation | None) -> School:
    uai, name = _text(uai).upper(), _text(name)
    _validate_school(uai, name, commune, school, now.date())
    assert commune is not None
    before = school_snapshot(school)
    school.uai, school.name, school.commune = uai, name, commune
    db.session.flush()
    if school_snapshot(school) != before:
        record(actor, now, "school.updated", "school", school.id, f"{name} ({uai})", before, school_snapshot(school))
    return school


def user_by_email(email: str, field: str = "email") -> User:
    """The one account with that e-mail (case-insensitive). Raises ValidationFailed naming `field`."""
    email = _text(email).lower()
    if not email or "@" not in email or len(email) > 254:
        raise _invalid({field: "Indiquez une adresse e-mail valide."})
    users = db.session.scalars(sa.select(User).where(sa.func.lower(User.email) == email).limit(2)).all()
    if not users:
        raise _invalid({field: f"Aucun compte n'utilise l'adresse {email} : la personne doit s'être connectée "
                               "une première fois au SAU."})
    if len(users) > 1:
        raise _invalid({field: f"Plusieurs comptes utilisent l'adresse {email} : contactez le support technique."})
    return users[0]


def add_school_administrator(actor: User, now: datetime, school: School, email: str) -> SchoolAdministrator:
    """Name an existing user administrator of the school (laclasse.com level-1 support). Raises ValidationFailed."""
    user = user_by_email(email)
    if any(a.user_id == user.id for a in school.administrators):
        raise _invalid({"email": f"{user.display_name} administre déjà cet établissement."})
    admin = SchoolAdministrator(school=school, user=user, created_at=now)
    db.session.add(admin)
    db.session.flush()
    record(actor, now, "school_administrator.added", "school", school.id, f"{school.name} ({school.uai})",
           None, {"school": school.uai, "user": user.email, "user_id": user.id})
    return admin


def remove_school_administrator(actor: User, now: datetime, admin: SchoolAdministrator) -> None:
    school, user = admin.school, admin.user
    before = {"school": school.uai, "user": user.email, "user_id": user.id}
    school.administrators.remove(admin)
    db.session.flush()
    record(actor, now, "school_administrator.removed", "school", school.id, f"{school.name} ({school.uai})",
           before, None)


# --- Routing rules -----------------------------------------------------------------------------------------

@dataclass
class RuleData:
    name: str
    position: int | None
    service: Service | None
    category_code: str | None
    commune: Organisation | None
    offer: str | None
    target: str
    target_organisation: Organisation | None
    level: int | None
    reason: str
    is_active: bool


def rule_snapshot(rule: RoutingRule) -> dict[str, Any]:
    return {
        "position": rule.position, "name": rule.name, "service": rule.service.code if rule.service else None,
        "category": rule.category_code, "commune": rule.commune.code if rule.commune else None, "offer": rule.offer,
        "target": rule.target,
        "target_organisation": rule.target_organisation.code if rule.target_organisation else None,
        "level": rule.level, "reason": rule.reason, "is_active": rule.is_active,
    }


def _validate_rule(data: RuleData, current: RoutingRule | None) -> RuleData:
    data.name, data.reason = _text(data.name), _text(data.reason)
    data.category_code = _text(data.category_code) or None
    data.offer = data.offer or None
    errors: dict[str, str] = {}
    _check_length(errors, "name", data.name, "le nom de la règle", 200)
    if "name" not in errors:
        clash = db.session.scalar(sa.select(RoutingRule).where(RoutingRule.name == data.name))
        if clash is not None and clash is not current:
            errors["name"] = "Une autre règle porte déjà ce nom."
    if data.position is None:
        errors["position"] = "Indiquez la position de la règle (un nombre entier)."
    elif not 0 <= data.position <= 10_000:
        errors["position"] = "La position est comprise entre 0 et 10 000."
    if data.category_code is not None:
        if data.service is not None:
            if not any(c.code == data.category_code for c in data.service.categories):
                errors["category_code"] = f"Le service {data.service.name} n'a pas de catégorie « {data.category_code} »."
        elif db.session.scalar(sa.select(sa.func.count(Category.id)).where(Category.code == data.category_code)) == 0:
            errors["category_code"] = f"Aucun service n'a de catégorie « {data.category_code} »."
    if data.commune is not None and data.commune.kind != ORG_COMMUNE:
        errors["commune"] = "Choisissez une commune."
    if data.offer is not None and data.offer not in RULE_OFFERS:
        errors["offer"] = "Offre inconnue."
    if data.target not in TARGETS:
        errors["target"] = "Choisissez la cible de la règle."
    elif data.target == TARGET_ORGANISATION and data.target_organisation is None:
        errors["target_organisation"] = "Choisissez l'organisation qui recevra les demandes."
    elif data.target != TARGET_ORGANISATION and data.target_organisation is not None:
        errors["target_organisation"] = "Ne choisissez une organisation que pour la cible « Organisation désignée »."
    if data.level not in (1, 2):
        errors["level"] = "Le niveau de support est 1 ou 2."
    _check_length(errors, "reason", data.reason, "", 2000, required=False)
    if errors:
        raise _invalid(errors)
    return data


def _apply_rule(rule: RoutingRule, data: RuleData) -> None:
    rule.name, rule.position, rule.service = data.name, data.position or 0, data.service
    rule.category_code, rule.commune, rule.offer = data.category_code, data.commune, data.offer
    rule.target, rule.target_organisation, rule.level = data.target, data.target_organisation, data.level or 1
    rule.reason, rule.is_active = data.reason, data.is_active


def create_routing_rule(actor: User, now: datetime, data: RuleData) -> RoutingRule:
    """Create a routing rule (the first active rule by position that matches decides). Raises ValidationFailed."""
    data = _validate_rule(data, None)
    rule = RoutingRule(name=data.name, target=data.target)
    _apply_rule(rule, data)
    db.session.add(rule)
    db.session.flush()
    record(actor, now, "routing_rule.created", "routing_rule", rule.id, rule.name, after=rule_snapshot(rule))
    return rule


def update_routing_rule(actor: User, now: datetime, rule: RoutingRule, data: RuleData) -> RoutingRule:
    data = _validate_rule(data, rule)
    before = rule_snapshot(rule)
    _apply_rule(rule, data)
    db.session.flush()
    if rule_snapshot(rule) != before:
        record(actor, now, "routing_rule.updated", "routing_rule", rule.id, rule.name, before, rule_snapshot(rule))
    return rule


def set_routing_rule_active(actor: User, now: datetime, rule: RoutingRule, is_active: bool) -> RoutingRule:
    if rule.is_active == is_active:
        return rule
    before = rule_snapshot(rule)
    rule.is_active = is_active
    db.session.flush()
    record(actor, now, "routing_rule.activated" if is_active else "routing_rule.deactivated", "routing_rule",
           rule.id, rule.name, before, rule_snapshot(rule))
    return rule


# --- Memberships (roles) -----------------------------------------------------------------------------------

def membership_snapshot(m: Membership) -> dict[str, Any]:
    return {"user_id": m.user_id, "user": m.user.email, "organisation": m.organisation.code, "role": m.role,
            "service": m.service.code if m.service else None}


def _membership_label(m: Membership) -> str:
    scope = f" ({m.service.name})" if m.service else ""
    return f"{m.user.display_name} — {m.role_label}{scope} — {m.organisation.name}"


def grant_membership(actor: User, now: datetime, *, email: str, organisation: Organisation | None, role: str,
                     service: Service | None) -> Membership:
    """Give an existing user a role in an organisation (optionally for one service). Raises ValidationFailed."""
    errors: dict[str, str] = {}
    user: User | None = None
    try:
        user = user_by_email(email)
    except ValidationFailed as exc:
        errors.update(exc.fields)
    if organisation is None:
        errors["organisation"] = "Choisissez l'organisation."
    if role not in ROLES:
        errors["role"] = "Choisissez le rôle."
    if not errors and user is not None and organisation is not None:
        service_id = service.id if service else None
        if any(m.organisation_id == organisation.id and m.role == role and m.service_id == service_id
               for m in user.memberships):
            errors["role"] = f"{user.display_name} a déjà ce rôle dans {organisation.name}."
    if errors:
        raise _invalid(errors)
    assert user is not None and organisation is not None
    membership = Membership(user=user, organisation=organisation, role=role, service=service, created_at=now)
    db.session.add(membership)
    db.session.flush()
    record(actor, now, "membership.granted", "membership", membership.id, _membership_label(membership),
           None, membership_snapshot(membership))
    return membership


def revoke_membership(actor: User, now: datetime, membership: Membership) -> None:
    """Withdraw a role. An admin cannot revoke their own last Métropole admin membership (someone must
    always be able to administer, and only another admin may remove an admin). Raises ValidationFailed."""
    if membership.user_id == actor.id and membership.role == ROLE_ADMIN \
            and membership.organisation.kind == ORG_METROPOLE:
        others = [m for m in actor.memberships if m.id != membership.id and m.role == ROLE_ADMIN
                  and m.organisation.kind == ORG_METROPOLE]
        if not others:
            raise ValidationFailed(
                "Vous ne pouvez pas retirer votre propre et dernière habilitation d'administrateur de la "
                "Métropole : demandez-le à un autre administrateur."
            )
    before = membership_snapshot(membership)
    label = _membership_label(membership)
    membership_id = membership.id
    membership.user.memberships.remove(membership)
    db.session.flush()
    record(actor, now, "membership.revoked", "membership", membership_id, label, before, None)


# --- FAQ ---------------------------------------------------------------------------------------------------

def faq_snapshot(entry: FaqEntry) -> dict[str, Any]:
    return {"service": entry.service.code, "question": entry.question, "answer": entry.answer,
            "keywords": entry.keywords, "is_published": entry.is_published}


def _validate_faq(service: Service | None, question: str, answer: str, keywords: str) -> None:
    errors: dict[str, str] = {}
    if service is None or not service.has_sau:
        errors["service"] = "Choisissez un service disposant du SAU."
    _check_length(errors, "question", question, "la question", 300)
    _check_length(errors, "answer", answer, "la réponse", TEXT_MAX)
    _check_length(errors, "keywords", keywords, "", 500, required=False)
    if errors:
        raise _invalid(errors)


def create_faq(actor: User, now: datetime, *, service: Service | None, question: str, answer: str, keywords: str,
               is_published: bool) -> FaqEntry:
    question, answer, keywords = _text(question), _text(answer), _text(keywords)
    _validate_faq(service, question, answer, keywords)
    entry = FaqEntry(service=service, question=question, answer=answer, keywords=keywords,
                     is_published=is_published, updated_at=now)
    db.session.add(entry)
    db.session.flush()
    record(actor, now, "faq.created", "faq", entry.id, question, after=faq_snapshot(entry))
    return entry


def update_faq(actor: User, now: datetime, entry: FaqEntry, *, service: Service | None, question: str, answer: str,
               keywords: str, is_published: bool) -> FaqEntry:
    question, answer, keywords = _text(question), _text(answer), _text(keywords)
    _validate_faq(service, question, answer, keywords)
    before = faq_snapshot(entry)
    entry.service, entry.question, entry.answer = service, question, answer  # type: ignore[assignment]
    entry.keywords, entry.is_published = keywords, is_published
    if faq_snapshot(entry) != before:
        entry.updated_at = now
        db.session.flush()
        record(actor, now, "faq.updated", "faq", entry.id, question, before, faq_snapshot(entry))
    return entry


def set_faq_published(actor: User, now: datetime, entry: FaqEntry, is_published: bool) -> FaqEntry:
    if entry.is_published == is_published:
        return entry
    before = faq_snapshot(entry)
    entry.is_published, entry.updated_at = is_published, now
    db.session.flush()
    record(actor, now, "faq.published" if is_published else "faq.unpublished", "faq", entry.id, entry.question,
           before, faq_snapshot(entry))
    return entry


def delete_faq(actor: User, now: datetime, entry: FaqEntry) -> None:
    before = faq_snapshot(entry)
    entry_id, label = entry.id, entry.question
    db.session.delete(entry)
    db.session.flush()
    record(actor, now, "faq.deleted", "faq", entry_id, label, before, None)
