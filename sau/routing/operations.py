"""Routing: which organisation is competent for a request, at which support level, and why.

Convention art. 3: help is given "by the Métropole or by the Commune, according to the competence the
service falls under". Rules are data (admins edit them); the first active rule by position whose every
criterion matches decides. Nothing matches → the Métropole's triage queue.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from sau.extensions import db
from sau.orgs.models import METROPOLE_CODE, Organisation, School, Service
from sau.routing.models import (
    TARGET_COMMUNE,
    TARGET_METROPOLE,
    TARGET_ORGANISATION,
    TARGET_SCHOOL,
    RoutingRule,
)

NO_OFFER = "none"


@dataclass(frozen=True)
class RoutingRequest:
    service: Service
    category_code: str | None
    commune: Organisation | None
    school: School | None
    on: date


@dataclass(frozen=True)
class RoutingDecision:
    organisation: Organisation
    level: int
    reason: str
    rule_id: int | None
    needs_triage: bool
    offer: str | None


def metropole() -> Organisation:
    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == METROPOLE_CODE))
    if org is None:
        raise RuntimeError("the Métropole organisation is missing from the reference data")
    return org


def commune_offer(commune: Organisation | None, service: Service, on: date) -> str | None:
    """The commune's offer for the service on that day: an offer code, "none" if not subscribed."""
    if commune is None:
        return None
    sub = commune.active_subscription(service, on)
    if sub is None:
        return NO_OFFER
    return sub.offer or "subscribed"


def _matches(rule: RoutingRule, req: RoutingRequest, offer: str | None) -> bool:
    if rule.service_id is not None and rule.service_id != req.service.id:
        return False
    if rule.category_code is not None and rule.category_code != req.category_code:
        return False
    if rule.commune_id is not None and (req.commune is None or rule.commune_id != req.commune.id):
        return False
    if rule.offer is not None and rule.offer != offer:
        return False
    if rule.target == TARGET_COMMUNE and req.commune is None:
        return False
    if rule.target == TARGET_SCHOOL and req.school is None:
        return False
    if rule.target == TARGET_ORGANISATION and rule.target_organisation is None:
        return False
    return True


def route(req: RoutingRequest) -> RoutingDecision:
    """Return the routing decision for a request. Never raises for an unroutable request."""
    offer = commune_offer(req.commune, req.service, req.on)
    rules = db.session.scalars(
        sa.select(RoutingRule).where(RoutingRule.is_active.is_(True)).order_by(RoutingRule.position, RoutingRule.id)
    )
    for rule in rules:
        if not _matches(rule, req, offer):
            continue
        if rule.target == TARGET_COMMUNE:
            assert req.commune is not None
            org = req.commune
        elif rule.target == TARGET_SCHOOL:
            assert req.school is not None
            org = req.school.commune
        elif rule.target == TARGET_ORGANISATION:
            assert rule.target_organisation is not None
            org = rule.target_organisation
        else:
            org = metropole()
        reason = f"Règle « {rule.name} »" + (f" : {rule.reason}" if rule.reason else "")
        return RoutingDecision(org, rule.level, reason, rule.id, False, offer)
    return RoutingDecision(
        metropole(), 1, "Aucune règle ne s'applique : file de tri de la Métropole.", None, True, offer
    )


__all__ = ["TARGET_METROPOLE", "RoutingDecision", "RoutingRequest", "commune_offer", "metropole", "route"]
