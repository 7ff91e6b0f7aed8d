"""Routing: which organisation is competent for a request, at which support level, and why.

Convention art. 3: help is given "by the Métropole or by the Commune, according to the competence the
service falls under". Rules are data (admins edit them); the first active rule by position whose every
criterion matches decides. Nothing matches → the Métropole's triage queue.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from sau import refdata
from sau.extensions import db
from sau.orgs.models import METROPOLE_CODE, Organisation
from sau.refdata import OrgInfo
from sau.routing.models import (
    TARGET_COMMUNE,
    TARGET_METROPOLE,
    TARGET_ORGANISATION,
    TARGET_SCHOOL,
)

NO_OFFER = "none"


@dataclass(frozen=True)
class RoutingRequest:
    """What routing looks at. `service`, `commune` and `school` are read by id only: ORM objects or the
    reference snapshot's records (sau.refdata) both do."""

    service: Any
    category_code: str | None
    commune: Any | None
    school: Any | None
    on: date


@dataclass(frozen=True)
class RoutingDecision:
    organisation: OrgInfo
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


def _metropole_info(snap: refdata.Snapshot) -> OrgInfo:
    if snap.metropole is None:
        raise RuntimeError("the Métropole organisation is missing from the reference data")
    return snap.metropole


def commune_offer(commune: Any | None, service: Any, on: date, snap: refdata.Snapshot | None = None) -> str | None:
    """The commune's offer for the service on that day: an offer code, "none" if not subscribed."""
    if commune is None:
        return None
    sub = (snap or refdata.current()).subscription(commune.id, service.id, on)
    if sub is None:
        return NO_OFFER
    return sub.offer or "subscribed"


def _matches(rule: refdata.RuleInfo, req: RoutingRequest, offer: str | None) -> bool:
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
    if rule.target == TARGET_ORGANISATION and rule.target_organisation_id is None:  # noqa: SIM103 (a guard per target)
        return False
    return True


def route(req: RoutingRequest, snap: refdata.Snapshot | None = None) -> RoutingDecision:
    """Return the routing decision for a request. Never raises for an unroutable request."""
    snap = snap or refdata.current()
    offer = commune_offer(req.commune, req.service, req.on, snap)
    for rule in snap.rules:
        if not _matches(rule, req, offer):
            continue
        if rule.target == TARGET_COMMUNE:
            assert req.commune is not None
            org = snap.organisations[req.commune.id]
        elif rule.target == TARGET_SCHOOL:
            assert req.school is not None
            org = snap.organisations[req.school.commune_id]
        elif rule.target == TARGET_ORGANISATION:
            assert rule.target_organisation_id is not None
            org = snap.organisations[rule.target_organisation_id]
        else:
            org = _metropole_info(snap)
        reason = f"Règle « {rule.name} »" + (f" : {rule.reason}" if rule.reason else "")
        return RoutingDecision(org, rule.level, reason, rule.id, False, offer)
    return RoutingDecision(
        _metropole_info(snap), 1, "Aucune règle ne s'applique : file de tri de la Métropole.", None, True, offer
    )


__all__ = ["TARGET_METROPOLE", "RoutingDecision", "RoutingRequest", "commune_offer", "metropole", "route"]
