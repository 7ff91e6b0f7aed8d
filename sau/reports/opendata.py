"""Open data (issue 7, point 6): the SAU's "données de service" (convention-cadre, art. 7.1: « Les données de
service ne sont pas des données à caractère personnel […] Les données de service produites par et pour chaque
service permettent de collecter, pour l'utilisateur, les informations utiles à la connaissance et à la
transparence des politiques publiques ; l'objectif étant de répondre aux obligations de la loi sur l'ouverture
des données publiques. »), published under the Licence Ouverte / Open Licence 2.0 (Etalab).

Two resources, each as CSV (comma, UTF-8, decimal point: the rules of schema.data.gouv.fr) and JSON, described
by a Frictionless Table Schema (and a Data Package listing both):

* `sau-tickets`: commune × service × local month — tickets created, committed (bloquant and majeur tickets whose
  resolution deadline falls in the month), met, breached, still open, compliance, target, conforme. The
  committed/met/breached figures are those of the SLA dashboard (`sau.reports.compliance.compliance_by_commune`,
  same rule, same code).
* `sau-disponibilite`: service × local month — availability against the 99.9 % target (`sla.availability`,
  the figures of the availability report and of the status page).

Only complete months are published (the last OPENDATA_MONTHS of them): a month's figures are published once it
is over. Rows: only commune × service × month combinations with at least one ticket created or committed (an
absent combination means zero); tickets without a commune are not in `sau-tickets`.

No personal data: only counts and ratios per commune, service and month — no reference, subject, text, person,
school, category or day. Small counts are published as they are (not suppressed): a count says how the service
performed, nothing about who asked what; granularity is the month and the commune, the steering committee's own
(convention art. 11); and suppressing cells would make the published compliance unverifiable from the counts.

The snapshot is stored in `opendata_snapshots` (see sau/reports/models.py for why a table) and rebuilt by the
scheduler when older than OPENDATA_REFRESH_HOURS, or by `sau opendata-refresh`; the public endpoints serve the
last snapshot and build it on the first request if there is none.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sau.extensions import db
from sau.orgs.models import Organisation, Service
from sau.reports.availability_report import availability_report, month_code, percent
from sau.reports.compliance import compliance_by_commune
from sau.reports.models import OpenDataSnapshot
from sau.reports.workload import NO_COMMUNE, volumes
from sla import DEFAULT_COMPLIANCE_TARGET
from sla.availability import AVAILABILITY_TARGET, PARIS, month_bounds

TICKETS = "sau-tickets"
AVAILABILITY = "sau-disponibilite"
RESOURCES = (TICKETS, AVAILABILITY)
DEFAULT_MONTHS = 24

LICENCE = {
    "name": "etalab-2.0",
    "title": "Licence Ouverte / Open Licence version 2.0",
    "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}
PUBLISHER = "Métropole de Lyon — Service d'Assistance à l'Utilisateur (SAU)"
ART_7_1 = ("Les données de service ne sont pas des données à caractère personnel et, à ce titre, ne sont pas "
           "soumises au RGPD. Les données de service produites par et pour chaque service permettent de collecter, "
           "pour l'utilisateur, les informations utiles à la connaissance et à la transparence des politiques "
           "publiques ; l'objectif étant de répondre aux obligations de la loi sur l'ouverture des données publiques.")

_MONTH = {"name": "mois", "type": "yearmonth", "title": "Mois",
          "description": "Mois civil à l'heure de Paris (Europe/Paris), au format AAAA-MM.",
          "constraints": {"required": True}}
_SERVICE_CODE = {"name": "service_code", "type": "string", "title": "Code du service",
                 "description": "Identifiant stable du service numérique (toodego, laclasse…).",
                 "constraints": {"required": True}}
_SERVICE = {"name": "service", "type": "string", "title": "Service",
            "description": "Nom du service numérique."}
_BOOL = {"trueValues": ["oui"], "falseValues": ["non"]}

SCHEMAS: dict[str, dict[str, Any]] = {
    TICKETS: {
        "title": "Tickets d'assistance et respect des délais par commune, service et mois",
        "description": "Tickets du SAU par commune, service numérique et mois : tickets créés, tickets engagés "
                       "(priorité bloquant ou majeur, échéance de résolution dans le mois), respectés, dépassés, "
                       "encore ouverts, et taux de respect des délais comparé à l'objectif de 95 % par commune "
                       "(annexe Toodego § 6.1.a). Une combinaison absente signifie zéro ticket.",
        "fields": [
            _MONTH,
            {"name": "code_insee", "type": "string", "title": "Code INSEE de la commune",
             "description": "Code officiel géographique de la commune (5 caractères).",
             "constraints": {"required": True, "pattern": "^[0-9][0-9AB][0-9]{3}$"}},
            {"name": "commune", "type": "string", "title": "Commune", "description": "Nom de la commune."},
            _SERVICE_CODE, _SERVICE,
            {"name": "tickets", "type": "integer", "title": "Tickets créés", "unit": "ticket",
             "description": "Demandes d'aide et incidents créés dans le mois pour la commune et le service.",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "engages", "type": "integer", "title": "Tickets engagés", "unit": "ticket",
             "description": "Tickets bloquants ou majeurs dont l'échéance de résolution (heures ouvrées) tombe dans "
                            "le mois.", "constraints": {"required": True, "minimum": 0}},
            {"name": "respectes", "type": "integer", "title": "Délais respectés", "unit": "ticket",
             "description": "Tickets engagés résolus avant leur échéance.", "constraints": {"required": True, "minimum": 0}},
            {"name": "depasses", "type": "integer", "title": "Délais dépassés", "unit": "ticket",
             "description": "Tickets engagés résolus après leur échéance, ou encore ouverts après elle.",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "en_cours", "type": "integer", "title": "Engagés encore en cours", "unit": "ticket",
             "description": "Tickets engagés ni respectés ni dépassés à la date de génération (horloge suspendue).",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "conformite_pourcent", "type": "number", "title": "Taux de respect des délais", "unit": "%",
             "description": "respectes ÷ (respectes + depasses) × 100, arrondi à 2 décimales ; vide quand aucun "
                            "ticket engagé n'est décidé.", "constraints": {"minimum": 0, "maximum": 100}},
            {"name": "objectif_pourcent", "type": "number", "title": "Objectif", "unit": "%",
             "description": "Objectif de la convention : 95 % des délais respectés pour chaque commune.",
             "constraints": {"required": True}},
            {"name": "conforme", "type": "boolean", "title": "Conforme à l'objectif", **_BOOL,
             "description": "oui si le taux atteint l'objectif (ou si aucun ticket engagé n'est décidé), non sinon.",
             "constraints": {"required": True}},
        ],
        "primaryKey": ["mois", "code_insee", "service_code"],
        "missingValues": [""],
    },
    AVAILABILITY: {
        "title": "Disponibilité des services numériques par mois",
        "description": "Disponibilité mensuelle de chaque service numérique comparée à l'objectif de 99,9 % "
                       "(annexe Toodego § 6.1.a) ; les interruptions programmées (maintenances annoncées) sont "
                       "exclues, une indisponibilité partielle compte pour une fraction de sa durée.",
        "fields": [
            _MONTH, _SERVICE_CODE, _SERVICE,
            {"name": "disponibilite_pourcent", "type": "number", "title": "Disponibilité", "unit": "%",
             "description": "1 − indisponibilité comptée ÷ durée du mois, en %, tronquée à 3 décimales.",
             "constraints": {"required": True, "minimum": 0, "maximum": 100}},
            {"name": "objectif_pourcent", "type": "number", "title": "Objectif", "unit": "%",
             "description": "Objectif de disponibilité de la convention.", "constraints": {"required": True}},
            {"name": "indisponibilite_minutes", "type": "number", "title": "Indisponibilité comptée", "unit": "min",
             "description": "Indisponibilité non programmée du mois, en minutes (partielle pondérée).",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "indisponibilite_admise_minutes", "type": "number", "title": "Indisponibilité admise",
             "unit": "min", "description": "0,1 % de la durée du mois, en minutes.", "constraints": {"required": True}},
            {"name": "indisponibilites_non_programmees", "type": "integer", "title": "Indisponibilités",
             "unit": "indisponibilité", "description": "Indisponibilités non programmées ayant touché le mois.",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "conforme", "type": "boolean", "title": "Conforme à l'objectif", **_BOOL,
             "constraints": {"required": True}},
        ],
        "primaryKey": ["mois", "service_code"],
        "missingValues": [""],
    },
}


def field_names(resource: str) -> list[str]:
    return [f["name"] for f in SCHEMAS[resource]["fields"]]


def complete_months(now: datetime, count: int) -> list[tuple[int, int]]:
    """The `count` local months before the current one, oldest first."""
    local = now.astimezone(PARIS)
    index = local.year * 12 + local.month - 1
    return [((index - i) // 12, (index - i) % 12 + 1) for i in range(count, 0, -1)]


# --- building ------------------------------------------------------------------------------------------------

def ticket_rows(months: Sequence[tuple[int, int]], now: datetime) -> list[dict[str, Any]]:
    if not months:
        return []
    target = float(DEFAULT_COMPLIANCE_TARGET) * 100
    services = list(db.session.execute(sa.select(Service.id, Service.code, Service.name).order_by(Service.code)))
    communes = {o.id: o.code for o in db.session.execute(
        sa.select(Organisation.id, Organisation.code).where(Organisation.kind == "commune"))}
    start, end = month_bounds(*months[0])[0], month_bounds(*months[-1])[1]
    created = volumes(start, end)  # (commune, service, month index) -> tickets created
    rows = []
    for index, month in enumerate(months):
        m_start, m_end = month_bounds(*month)
        for s in services:
            per_code = {c.code: c for c in compliance_by_commune(m_start, m_end, now, service=s.code)}
            for commune_id, code in communes.items():
                c = per_code.get(code)
                n = created.counts.get((commune_id, s.id, index), 0)
                f = c.figures if c is not None else None
                if not n and (f is None or not f.committed):
                    continue
                assert c is not None and f is not None
                rows.append({
                    "mois": month_code(month), "code_insee": code, "commune": c.name, "service_code": s.code,
                    "service": s.name, "tickets": n, "engages": f.committed, "respectes": f.met,
                    "depasses": f.breached, "en_cours": f.open,
                    "conformite_pourcent": None if f.compliance is None else round(f.compliance * 100, 2),
                    "objectif_pourcent": target, "conforme": f.is_conforme,
                })
    assert NO_COMMUNE not in communes
    rows.sort(key=lambda r: (r["mois"], r["code_insee"], r["service_code"]))
    return rows


def availability_rows(months: Sequence[tuple[int, int]], now: datetime, partial_weight: float) -> list[dict[str, Any]]:
    rows = []
    for s in availability_report(list(months), now, partial_weight=partial_weight):
        for m in s.months:
            f = m.figure
            rows.append({
                "mois": m.code, "service_code": s.code, "service": s.name,
                "disponibilite_pourcent": float(percent(f)), "objectif_pourcent": round(AVAILABILITY_TARGET * 100, 3),
                "indisponibilite_minutes": round(f.downtime.total_seconds() / 60, 2),
                "indisponibilite_admise_minutes": round(f.allowed.total_seconds() / 60, 2),
                "indisponibilites_non_programmees": sum(1 for o in m.outages if not o.is_planned),
                "conforme": f.met,
            })
    rows.sort(key=lambda r: (r["mois"], r["service_code"]))
    return rows


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value)


def to_csv(resource: str, rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = field_names(resource)
    writer.writerow(names)
    for row in rows:
        writer.writerow([_csv_value(row[n]) for n in names])
    return out.getvalue()


def to_json(resource: str, rows: Sequence[dict[str, Any]], generated_at: datetime, schema_url: str) -> str:
    document = {
        "ressource": resource, "titre": SCHEMAS[resource]["title"], "producteur": PUBLISHER,
        "genere_le": iso(generated_at), "licence": LICENCE, "schema": schema_url,
        "champs": field_names(resource), "nombre_lignes": len(rows), "donnees": list(rows),
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def digest(rows: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(list(rows), ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def build(now: datetime, *, months: int = DEFAULT_MONTHS,
          partial_weight: float = 0.5) -> dict[str, list[dict[str, Any]]]:
    wanted = complete_months(now, months)
    return {TICKETS: ticket_rows(wanted, now), AVAILABILITY: availability_rows(wanted, now, partial_weight)}


def refresh(now: datetime, *, months: int = DEFAULT_MONTHS, partial_weight: float = 0.5) -> dict[str, int]:
    """Rebuild every resource and store it (one row per resource, replaced). The caller commits. Returns the
    number of rows per resource."""
    built = build(now, months=months, partial_weight=partial_weight)
    counts = {}
    for name, rows in built.items():
        snap = db.session.get(OpenDataSnapshot, name)
        values = {"generated_at": now, "row_count": len(rows), "csv": to_csv(name, rows),
                  "json": to_json(name, rows, now, f"{name}.schema.json"), "sha256": digest(rows)}
        if snap is None:
            db.session.add(OpenDataSnapshot(name=name, **values))
        else:
            for key, value in values.items():
                setattr(snap, key, value)
        counts[name] = len(rows)
    db.session.flush()
    return counts


def last_generated(session: Any = None) -> datetime | None:
    return (session or db.session).scalar(sa.select(sa.func.min(OpenDataSnapshot.generated_at)))


def is_stale(now: datetime, max_age: timedelta) -> bool:
    """True when a resource is missing or its snapshot is older than `max_age`."""
    present = db.session.scalar(sa.select(sa.func.count()).select_from(OpenDataSnapshot)
                                .where(OpenDataSnapshot.name.in_(RESOURCES)))
    oldest = last_generated()
    return present != len(RESOURCES) or oldest is None or now - oldest >= max_age


@dataclass(frozen=True)
class Settings:
    months: int
    partial_weight: float
    max_age: timedelta


def settings(config: Any) -> Settings:
    return Settings(int(config.get("OPENDATA_MONTHS", DEFAULT_MONTHS)),
                    float(config.get("AVAILABILITY_PARTIAL_WEIGHT", 0.5)),
                    timedelta(hours=float(config.get("OPENDATA_REFRESH_HOURS", 24))))


def refresh_if_stale(now: datetime, s: Settings) -> bool:
    """The scheduler's job (hourly): rebuild and commit when the snapshot is missing or older than the setting,
    so that the data is rebuilt at most once per OPENDATA_REFRESH_HOURS however often the job runs."""
    if not is_stale(now, s.max_age):
        return False
    refresh(now, months=s.months, partial_weight=s.partial_weight)
    db.session.commit()
    return True


def snapshot(name: str, now: datetime, s: Settings) -> OpenDataSnapshot:
    """The stored snapshot of `name`, built (and committed) first when none was ever generated."""
    snap = db.session.get(OpenDataSnapshot, name)
    if snap is not None:
        return snap
    try:
        refresh(now, months=s.months, partial_weight=s.partial_weight)
        db.session.commit()
    except IntegrityError:  # another request built it at the same time: use theirs
        db.session.rollback()
    snap = db.session.get(OpenDataSnapshot, name)
    assert snap is not None
    return snap
