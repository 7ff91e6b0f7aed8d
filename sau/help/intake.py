"""Turn the codes a form or an API client sends into reference objects, with French field errors.

Shared by the HTML help form and `POST /api/v1/requests` so both validate the same way.
"""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from sau import refdata
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.orgs.models import ORG_COMMUNE, Organisation, School, Service, Subscription


def service_by_code(code: str | None) -> Service | None:
    if not code:
        return None
    return db.session.scalar(sa.select(Service).where(Service.code == code))


def sau_services() -> list[Service]:
    return list(db.session.scalars(sa.select(Service).where(Service.has_sau.is_(True)).order_by(Service.name)))


def communes() -> list[Organisation]:
    return list(
        db.session.scalars(
            sa.select(Organisation)
            .where(Organisation.kind == ORG_COMMUNE, Organisation.is_active.is_(True))
            .order_by(Organisation.name)
        )
    )


def schools_for(service: Service, on: date) -> list[School]:
    """Schools of the communes subscribed to the service on that day (laclasse.com)."""
    subscribed = (
        sa.select(Subscription.organisation_id)
        .where(
            Subscription.service_id == service.id,
            Subscription.starts_on <= on,
            sa.or_(Subscription.ends_on.is_(None), Subscription.ends_on >= on),
        )
        .scalar_subquery()
    )
    return list(db.session.scalars(sa.select(School).where(School.commune_id.in_(subscribed)).order_by(School.name)))


def require_sau_service(code: str | None, snap: refdata.Snapshot | None = None) -> refdata.ServiceInfo:
    """The service a request is for, from the reference snapshot; ValidationFailed in French otherwise."""
    if not code:
        raise ValidationFailed("Choisissez le service concerné.", {"service": "Champ obligatoire."})
    service = (snap or refdata.current()).services.get(code)
    if service is None:
        raise ValidationFailed(f"Service inconnu : « {code} ».", {"service": "Service inconnu."})
    if not service.has_sau:
        raise ValidationFailed(
            f"Le service {service.name} ne dispose pas du SAU. {service.no_sau_reason}".strip(),
            {"service": "Ce service n'a pas d'assistance SAU."},
        )
    return service


def resolve_fields(
    service: refdata.ServiceInfo, category_code: str | None, commune_code: str | None, school_uai: str | None,
    on: date, snap: refdata.Snapshot | None = None,
) -> tuple[refdata.CategoryInfo | None, refdata.OrgInfo | None, refdata.SchoolInfo | None]:
    """Return (category, commune, school) from the reference snapshot. Raises ValidationFailed naming every bad
    field."""
    snap = snap or refdata.current()
    errors: dict[str, str] = {}
    category = None
    if category_code:
        category = service.category(category_code)
        if category is None:
            errors["category"] = "Catégorie inconnue pour ce service."
    elif service.categories:
        errors["category"] = "Choisissez une catégorie."
    commune = None
    if commune_code:
        commune = snap.communes_by_code.get(commune_code)
        if commune is None:
            errors["commune"] = "Commune inconnue (code INSEE attendu, par exemple 69081 pour Écully)."
    elif category is not None and category.requires_commune:
        errors["commune"] = "Indiquez la commune concernée par ce téléservice."
    school = None
    if school_uai:
        school = snap.schools.get(school_uai.upper())
        # A school is offered when its commune subscribes to the service that day (laclasse.com), as schools_for().
        if school is None or snap.subscription(school.commune_id, service.id, on) is None:
            errors["school"] = "Établissement inconnu pour ce service."
            school = None
        elif commune is None:
            commune = snap.organisations[school.commune_id]
        elif school.commune_id != commune.id:
            errors["school"] = "Cet établissement n'est pas dans la commune choisie."
    elif service.asks_school:
        errors["school"] = "Choisissez votre établissement scolaire."
    if errors:
        raise ValidationFailed.for_fields(errors)
    return category, commune, school
