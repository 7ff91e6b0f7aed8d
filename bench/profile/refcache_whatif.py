"""What-if (bench only, never installed by the app): reference data cached per process, to measure what a real
cache with invalidation would save on a submission. Monkeypatches service lookup, commune lookup, routing rules,
the Métropole, and the business calendar; cached ORM objects are detached and attached to the request's session
with `Session.merge(load=False)` (no SQL). No invalidation at all: do not use outside this benchmark."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import selectinload


def install() -> None:
    import sau.routing.operations as routing
    import sau.tickets.operations as ops
    from sau.extensions import db
    from sau.help import intake
    from sau.orgs.models import ORG_COMMUNE, Organisation, Service
    from sau.routing.models import RoutingRule
    from sau.tickets import sla

    services: dict[str, Any] = {}
    communes: dict[str, Any] = {}
    state: dict[str, Any] = {}

    def _detach(obj: Any) -> Any:
        db.session.expunge(obj)
        return obj

    def service_by_code(code: str | None) -> Service | None:
        if not code:
            return None
        if code not in services:
            svc = db.session.scalar(sa.select(Service).options(selectinload(Service.categories))
                                    .where(Service.code == code))
            if svc is None:
                return None
            services[code] = _detach(svc)
        return db.session.merge(services[code], load=False)

    orig_scalar = db.session.scalar

    def commune_by_code(code: str) -> Organisation | None:
        if code not in communes:
            org = db.session.scalar(sa.select(Organisation).options(selectinload(Organisation.subscriptions))
                                    .where(Organisation.code == code, Organisation.kind == ORG_COMMUNE))
            if org is None:
                return None
            communes[code] = _detach(org)
        return db.session.merge(communes[code], load=False)

    orig_resolve = intake.resolve_fields

    def resolve_fields(service: Any, category_code: Any, commune_code: Any, school_uai: Any, on: Any) -> Any:
        if school_uai or not commune_code:
            return orig_resolve(service, category_code, commune_code, school_uai, on)
        category = next((c for c in service.categories if c.code == category_code), None)
        commune = commune_by_code(commune_code)
        if category is None or commune is None:
            return orig_resolve(service, category_code, commune_code, school_uai, on)
        return category, commune, None

    def metropole() -> Organisation:
        if "metropole" not in state:
            state["metropole"] = _detach(db.session.scalar(sa.select(Organisation).where(
                Organisation.code == routing.METROPOLE_CODE)))
        return db.session.merge(state["metropole"], load=False)

    def rules() -> list[Any]:
        if "rules" not in state:
            found = list(db.session.scalars(sa.select(RoutingRule).options(
                selectinload(RoutingRule.target_organisation)).where(RoutingRule.is_active.is_(True))
                .order_by(RoutingRule.position, RoutingRule.id)))
            for r in found:
                db.session.expunge(r)
                if r.target_organisation is not None:
                    db.session.expunge(r.target_organisation)
            state["rules"] = found
        return state["rules"]

    def route(req: Any) -> Any:
        offer = routing.commune_offer(req.commune, req.service, req.on)
        for rule in rules():
            if not routing._matches(rule, req, offer):
                continue
            if rule.target == routing.TARGET_COMMUNE:
                org = req.commune
            elif rule.target == routing.TARGET_SCHOOL:
                org = req.school.commune
            elif rule.target == routing.TARGET_ORGANISATION:
                org = db.session.merge(rule.target_organisation, load=False)
            else:
                org = metropole()
            reason = f"Règle « {rule.name} »" + (f" : {rule.reason}" if rule.reason else "")
            return routing.RoutingDecision(org, rule.level, reason, rule.id, False, offer)
        return routing.RoutingDecision(metropole(), 1, "Aucune règle ne s'applique : file de tri de la Métropole.",
                                       None, True, offer)

    def calendar() -> Any:
        if "calendar" not in state:
            state["calendar"] = orig_calendar()
        return state["calendar"]

    orig_calendar = sla.calendar
    intake.service_by_code = service_by_code
    intake.resolve_fields = resolve_fields
    routing.route = route
    ops.route = route
    routing.metropole = metropole
    ops.metropole = metropole
    sla.calendar = calendar
    del orig_scalar
