"""Load reference data from a JSON file (idempotent: rows are matched on their natural keys).

Format (every key optional):
  communes_csv: file name of a CSV `insee_code,name,population,...` (relative to the JSON file or sau/data)
  organisations: [{kind, code, name, population}]
  services: [{code, name, description, has_sau, no_sau_reason, asks_commune, asks_school,
              categories: [{code, label, requires_commune}]}]
  subscriptions: [{commune, service, offer, starts_on, ends_on}]
  schools: [{uai, name, commune, administrators: [email]}]
  users: [{email, given_name, family_name, identities: [{issuer, sub}], memberships: [{organisation, role, service}]}]
  routing_rules: [{position, name, service, category, commune, offer, target, target_organisation, level, reason}]
  faq: [{service, question, answer, keywords}]
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sau.auth.models import Identity, Membership, User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.faq.models import FaqEntry
from sau.orgs.models import (
    METROPOLE_CODE,
    ORG_COMMUNE,
    Category,
    Organisation,
    School,
    SchoolAdministrator,
    Service,
    Subscription,
)
from sau.routing.models import RoutingRule

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class ReferenceError_(ValidationFailed):
    pass


def _one(model: Any, **where: Any) -> Any:
    return db.session.scalar(sa.select(model).filter_by(**where))


def _org(code: str) -> Organisation:
    org = _one(Organisation, code=code)
    if org is None:
        raise ReferenceError_(f"organisation inconnue : {code}")
    return org


def _service(code: str) -> Service:
    service = _one(Service, code=code)
    if service is None:
        raise ReferenceError_(f"service inconnu : {code}")
    return service


def _user_by_email(email: str) -> User:
    user = _one(User, email=email)
    if user is None:
        raise ReferenceError_(f"utilisateur inconnu : {email}")
    return user


def load_communes_csv(path: Path, counts: Counter[str]) -> None:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            upsert_organisation({"kind": ORG_COMMUNE, "code": row["insee_code"], "name": row["name"],
                                 "population": int(row["population"])}, counts)


def upsert_organisation(item: dict[str, Any], counts: Counter[str]) -> Organisation:
    org = _one(Organisation, code=item["code"])
    if org is None:
        org = Organisation(code=item["code"], kind=item.get("kind", ORG_COMMUNE), name=item["name"])
        db.session.add(org)
        counts["organisations"] += 1
    org.kind = item.get("kind", org.kind)
    org.name = item["name"]
    org.population = item.get("population", org.population)
    return org


def load(data: dict[str, Any], base_dir: Path, now: datetime) -> Counter[str]:
    """Apply the reference data; returns counts of rows created. Raises ValidationFailed on bad data."""
    counts: Counter[str] = Counter()
    if "communes_csv" in data:
        csv_path = base_dir / data["communes_csv"]
        if not csv_path.exists():
            csv_path = DATA_DIR / data["communes_csv"]
        load_communes_csv(csv_path, counts)
    for item in data.get("organisations", []):
        upsert_organisation(item, counts)
    db.session.flush()
    for item in data.get("services", []):
        service = _one(Service, code=item["code"])
        if service is None:
            service = Service(code=item["code"], name=item["name"])
            db.session.add(service)
            counts["services"] += 1
        for key in ("name", "description", "has_sau", "no_sau_reason", "asks_commune", "asks_school"):
            if key in item:
                setattr(service, key, item[key])
        for pos, cat in enumerate(item.get("categories", [])):
            existing = next((c for c in service.categories if c.code == cat["code"]), None)
            if existing is None:
                existing = Category(code=cat["code"], label=cat["label"])
                service.categories.append(existing)
                counts["categories"] += 1
            existing.label = cat["label"]
            existing.position = pos
            existing.requires_commune = cat.get("requires_commune", False)
    db.session.flush()
    for item in data.get("subscriptions", []):
        org, service = _org(item["commune"]), _service(item["service"])
        starts_on = date.fromisoformat(item["starts_on"])
        sub = _one(Subscription, organisation_id=org.id, service_id=service.id, starts_on=starts_on)
        if sub is None:
            sub = Subscription(organisation=org, service=service, starts_on=starts_on)
            db.session.add(sub)
            counts["subscriptions"] += 1
        sub.offer = item.get("offer")
        sub.ends_on = date.fromisoformat(item["ends_on"]) if item.get("ends_on") else None
    for item in data.get("users", []):
        user = _one(User, email=item["email"])
        if user is None:
            user = User(email=item["email"], created_at=now)
            db.session.add(user)
            counts["users"] += 1
        user.given_name = item.get("given_name", user.given_name or "")
        user.family_name = item.get("family_name", user.family_name or "")
        user.is_identity_certified = item.get("identity_certified", user.is_identity_certified or False)
        db.session.flush()
        for ident in item.get("identities", []):
            if _one(Identity, issuer=ident["issuer"], subject=ident["sub"]) is None:
                db.session.add(Identity(user=user, issuer=ident["issuer"], subject=ident["sub"], created_at=now))
        for m in item.get("memberships", []):
            org = _org(m["organisation"])
            service = _service(m["service"]) if m.get("service") else None
            if _one(Membership, user_id=user.id, organisation_id=org.id, role=m["role"],
                    service_id=service.id if service else None) is None:
                db.session.add(Membership(user=user, organisation=org, role=m["role"], service=service,
                                          created_at=now))
                counts["memberships"] += 1
    db.session.flush()
    for item in data.get("schools", []):
        school = _one(School, uai=item["uai"])
        if school is None:
            school = School(uai=item["uai"], name=item["name"], commune=_org(item["commune"]))
            db.session.add(school)
            counts["schools"] += 1
        school.name = item["name"]
        db.session.flush()
        for email in item.get("administrators", []):
            user = _user_by_email(email)
            if _one(SchoolAdministrator, school_id=school.id, user_id=user.id) is None:
                db.session.add(SchoolAdministrator(school=school, user=user, created_at=now))
    for item in data.get("routing_rules", []):
        rule = _one(RoutingRule, name=item["name"])
        if rule is None:
            rule = RoutingRule(name=item["name"], target=item["target"])
            db.session.add(rule)
            counts["routing_rules"] += 1
        rule.position = item.get("position", 100)
        rule.service = _service(item["service"]) if item.get("service") else None
        rule.category_code = item.get("category")
        rule.commune = _org(item["commune"]) if item.get("commune") else None
        rule.offer = item.get("offer")
        rule.target = item["target"]
        rule.target_organisation = _org(item["target_organisation"]) if item.get("target_organisation") else None
        rule.level = item.get("level", 1)
        rule.reason = item.get("reason", "")
        rule.is_active = item.get("is_active", True)
    for item in data.get("faq", []):
        service = _service(item["service"])
        entry = _one(FaqEntry, service_id=service.id, question=item["question"])
        if entry is None:
            entry = FaqEntry(service=service, question=item["question"], answer=item["answer"], updated_at=now)
            db.session.add(entry)
            counts["faq"] += 1
        entry.answer = item["answer"]
        entry.keywords = item.get("keywords", "")
    db.session.flush()
    return counts


def load_file(path: Path, now: datetime) -> Counter[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReferenceError_(f"{path} : JSON invalide ({exc})") from None
    return load(data, path.parent, now)


DEMO_FILE = DATA_DIR / "demo.json"
METROPOLE = {"kind": "metropole", "code": METROPOLE_CODE, "name": "Métropole de Lyon"}
