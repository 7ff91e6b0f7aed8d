"""A commune's full export: one ZIP of JSON Lines and CSV files with a manifest and a documented schema.

Convention-cadre, art. 12.3 « Effets de la résiliation vis-à-vis des données » : « En cas de résiliation de la
présente convention, ou de fin de la mise à disposition d'un service spécifique, pour quelles causes que ce soit,
la Métropole s'engage à permettre à la Commune de récupérer l'ensemble des données qui lui sont propres. »

What belongs to a commune: its tickets (`commune_id` = the commune, or in its queue: `organisation_id` = the
commune) with their events, comments, attachments (metadata and the files themselves) and the notifications
sent about them (outbox rows); its subscriptions, schools and their administrators, the memberships of its
staff, the routing rules that name it, its webhook endpoints (without their secret) and its security alerts.

Streaming: every table is read with `yield_per` (a server-side cursor on PostgreSQL) as plain column rows (no
ORM identity map), and each row is written at once to the ZIP entry (JSON Lines) and to a temporary CSV file
that is then copied into the ZIP; sizes and SHA-256 are computed while writing. Memory stays bounded whatever
the number of tickets (bench/commune_export.py); only the manifest's list of files grows, with one small entry
per attachment file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from sau.admin.models import AuditEvent
from sau.auth.models import Membership, User
from sau.extensions import db
from sau.incidents.models import SecurityAlert
from sau.notify.models import Notification, WebhookEndpoint
from sau.orgs.models import Category, Organisation, School, SchoolAdministrator, Service, Subscription
from sau.privacy.access_log import log_access
from sau.routing.models import RoutingRule
from sau.tickets.models import Attachment, Comment, Ticket, TicketEvent

SCHEMA_VERSION = 1
PARIS = ZoneInfo("Europe/Paris")
BATCH_SIZE = 1000
CHUNK = 64 * 1024
CSV_DIALECT = {"delimiter": ";", "quoting": csv.QUOTE_MINIMAL, "lineterminator": "\r\n"}


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # integer | string | text | boolean | datetime | date | json
    description: str


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    columns: tuple[Col, ...]
    query: Callable[[int], sa.Select[Any]]


# --- the datasets ----------------------------------------------------------------------------------------------

def _ticket_scope(org_id: int) -> sa.ColumnElement[bool]:
    """The commune's tickets: those about the commune, and those in its queue."""
    return sa.or_(Ticket.commune_id == org_id, Ticket.organisation_id == org_id)


def _tickets(org_id: int) -> sa.Select[Any]:
    commune, queue = aliased(Organisation), aliased(Organisation)
    requester, assignee = aliased(User), aliased(User)
    duplicate = aliased(Ticket)
    return (
        sa.select(
            Ticket.id, Ticket.reference, Ticket.kind, Service.code.label("service"),
            Category.code.label("category"), commune.code.label("commune"), School.uai.label("school_uai"),
            queue.code.label("organisation"), Ticket.level, Ticket.routing_reason, Ticket.needs_triage,
            Ticket.subject, Ticket.description, Ticket.page_url, Ticket.requester_id,
            requester.given_name.label("requester_given_name"), requester.family_name.label("requester_family_name"),
            sa.func.coalesce(requester.email, Ticket.requester_email).label("requester_email"),
            Ticket.status, Ticket.status_reason, duplicate.reference.label("duplicate_of"), Ticket.priority,
            Ticket.assignee_id, assignee.given_name.label("assignee_given_name"),
            assignee.family_name.label("assignee_family_name"), Ticket.resolution_note, Ticket.created_at,
            Ticket.updated_at, Ticket.first_response_at, Ticket.resolved_at, Ticket.closed_at,
            Ticket.priority_set_at, Ticket.sla_deadline_at, Ticket.sla_at_risk_at, Ticket.sla_breach_at,
            Ticket.sla_state, Ticket.sla_met, Ticket.sla_paused,
        )
        .join(Service, Service.id == Ticket.service_id)
        .outerjoin(Category, Category.id == Ticket.category_id)
        .outerjoin(commune, commune.id == Ticket.commune_id)
        .outerjoin(School, School.id == Ticket.school_id)
        .join(queue, queue.id == Ticket.organisation_id)
        .outerjoin(requester, requester.id == Ticket.requester_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .outerjoin(duplicate, duplicate.id == Ticket.duplicate_of_id)
        .where(_ticket_scope(org_id))
        .order_by(Ticket.id)
    )


def _events(org_id: int) -> sa.Select[Any]:
    return (sa.select(TicketEvent.id, TicketEvent.ticket_id, Ticket.reference.label("ticket_reference"),
                      TicketEvent.type, TicketEvent.at, TicketEvent.actor_id, TicketEvent.actor_label,
                      TicketEvent.is_public, TicketEvent.data)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id).where(_ticket_scope(org_id)).order_by(TicketEvent.id))


def _comments(org_id: int) -> sa.Select[Any]:
    return (sa.select(Comment.id, Comment.ticket_id, Ticket.reference.label("ticket_reference"), Comment.author_id,
                      Comment.author_label, Comment.is_internal, Comment.is_from_requester, Comment.body,
                      Comment.created_at)
            .join(Ticket, Ticket.id == Comment.ticket_id).where(_ticket_scope(org_id)).order_by(Comment.id))


def _attachments(org_id: int) -> sa.Select[Any]:
    return (sa.select(Attachment.id, Attachment.ticket_id, Ticket.reference.label("ticket_reference"),
                      Attachment.comment_id, Attachment.filename, Attachment.content_type, Attachment.size,
                      Attachment.sha256, Attachment.is_internal, Attachment.created_at, Attachment.storage_key)
            .join(Ticket, Ticket.id == Attachment.ticket_id).where(_ticket_scope(org_id)).order_by(Attachment.id))


def _notifications(org_id: int) -> sa.Select[Any]:
    return (sa.select(Notification.id, Notification.ticket_id, Ticket.reference.label("ticket_reference"),
                      Notification.channel, Notification.kind, Notification.event_type, Notification.user_id,
                      Notification.email, Notification.endpoint_id, Notification.subject, Notification.payload,
                      Notification.status, Notification.attempts, Notification.created_at, Notification.sent_at,
                      Notification.read_at, Notification.last_error)
            .join(Ticket, Ticket.id == Notification.ticket_id).where(_ticket_scope(org_id))
            .order_by(Notification.id))


def _subscriptions(org_id: int) -> sa.Select[Any]:
    return (sa.select(Subscription.id, Service.code.label("service"), Subscription.offer, Subscription.starts_on,
                      Subscription.ends_on)
            .join(Service, Service.id == Subscription.service_id)
            .where(Subscription.organisation_id == org_id).order_by(Subscription.id))


def _schools(org_id: int) -> sa.Select[Any]:
    return sa.select(School.id, School.uai, School.name).where(School.commune_id == org_id).order_by(School.id)


def _school_administrators(org_id: int) -> sa.Select[Any]:
    return (sa.select(SchoolAdministrator.id, School.uai.label("school_uai"), SchoolAdministrator.user_id,
                      User.given_name, User.family_name, User.email, SchoolAdministrator.created_at)
            .join(School, School.id == SchoolAdministrator.school_id).join(User, User.id == SchoolAdministrator.user_id)
            .where(School.commune_id == org_id).order_by(SchoolAdministrator.id))


def _memberships(org_id: int) -> sa.Select[Any]:
    return (sa.select(Membership.id, Membership.user_id, User.given_name, User.family_name, User.email,
                      Membership.role, Service.code.label("service"), Membership.created_at)
            .join(User, User.id == Membership.user_id).outerjoin(Service, Service.id == Membership.service_id)
            .where(Membership.organisation_id == org_id).order_by(Membership.id))


def _routing_rules(org_id: int) -> sa.Select[Any]:
    commune, target = aliased(Organisation), aliased(Organisation)
    return (sa.select(RoutingRule.id, RoutingRule.position, RoutingRule.name, Service.code.label("service"),
                      RoutingRule.category_code, commune.code.label("commune"), RoutingRule.offer, RoutingRule.target,
                      target.code.label("target_organisation"), RoutingRule.level, RoutingRule.reason,
                      RoutingRule.is_active)
            .outerjoin(Service, Service.id == RoutingRule.service_id)
            .outerjoin(commune, commune.id == RoutingRule.commune_id)
            .outerjoin(target, target.id == RoutingRule.target_organisation_id)
            .where(sa.or_(RoutingRule.commune_id == org_id, RoutingRule.target_organisation_id == org_id))
            .order_by(RoutingRule.id))


def _webhook_endpoints(org_id: int) -> sa.Select[Any]:
    return (sa.select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.is_active, WebhookEndpoint.events,
                      WebhookEndpoint.created_at, WebhookEndpoint.secret_rotated_at)
            .where(WebhookEndpoint.organisation_id == org_id).order_by(WebhookEndpoint.id))


def _security_alerts(org_id: int) -> sa.Select[Any]:
    return (sa.select(SecurityAlert.id, SecurityAlert.ticket_id, Ticket.reference.label("ticket_reference"),
                      Service.code.label("service"), SecurityAlert.reported_by_id, SecurityAlert.detected_at,
                      SecurityAlert.reported_at)
            .join(Ticket, Ticket.id == SecurityAlert.ticket_id).join(Service, Service.id == SecurityAlert.service_id)
            .where(SecurityAlert.commune_id == org_id).order_by(SecurityAlert.id))


_TICKET_REF = (Col("ticket_id", "integer", "Identifiant du ticket (tickets.id)"),
               Col("ticket_reference", "string", "Référence du ticket (SAU-AAAA-NNNNNN)"))

DATASETS: tuple[Dataset, ...] = (
    Dataset("tickets", "Les tickets de la commune : ceux qui la concernent (commune de la demande) et ceux de sa "
            "file de traitement (organisation en charge).", (
        Col("id", "integer", "Identifiant du ticket"),
        Col("reference", "string", "Référence lisible, unique (SAU-AAAA-NNNNNN)"),
        Col("kind", "string", "demande (demande d'aide d'un usager) ou incident (incident signalé par la commune)"),
        Col("service", "string", "Code du service numérique (toodego, laclasse…)"),
        Col("category", "string", "Code de la catégorie de la demande, ou vide"),
        Col("commune", "string", "Code INSEE de la commune de la demande, ou vide"),
        Col("school_uai", "string", "Code UAI de l'établissement scolaire, ou vide"),
        Col("organisation", "string", "Organisation dont la file détient le ticket (code INSEE ou metropole)"),
        Col("level", "integer", "Niveau de support (1 ou 2)"),
        Col("routing_reason", "text", "Motif du routage"),
        Col("needs_triage", "boolean", "Ticket à trier manuellement"),
        Col("subject", "string", "Objet"),
        Col("description", "text", "Description saisie par le demandeur"),
        Col("page_url", "string", "Page d'où la demande a été faite, ou vide"),
        Col("requester_id", "integer", "Identifiant du compte demandeur, ou vide (demandeur anonyme)"),
        Col("requester_given_name", "string", "Prénom du demandeur (compte), ou vide"),
        Col("requester_family_name", "string", "Nom du demandeur (compte), ou vide"),
        Col("requester_email", "string", "Adresse e-mail du demandeur (celle du compte, sinon celle saisie)"),
        Col("status", "string", "nouveau, en_cours, en_attente, resolu, clos, rejete ou doublon"),
        Col("status_reason", "text", "Motif du dernier changement de statut (rejet, doublon…), ou vide"),
        Col("duplicate_of", "string", "Référence du ticket dont celui-ci est le doublon, ou vide"),
        Col("priority", "string", "bloquant, majeur, mineur, ou vide (non définie)"),
        Col("assignee_id", "integer", "Identifiant de l'agent en charge, ou vide"),
        Col("assignee_given_name", "string", "Prénom de l'agent en charge"),
        Col("assignee_family_name", "string", "Nom de l'agent en charge"),
        Col("resolution_note", "text", "Note de résolution, ou vide"),
        Col("created_at", "datetime", "Création"),
        Col("updated_at", "datetime", "Dernière modification"),
        Col("first_response_at", "datetime", "Première réponse d'un agent, ou vide"),
        Col("resolved_at", "datetime", "Résolution, ou vide"),
        Col("closed_at", "datetime", "Clôture, ou vide"),
        Col("priority_set_at", "datetime", "Qualification de la priorité (début du délai SLA), ou vide"),
        Col("sla_deadline_at", "datetime", "Échéance de résolution (annexe Toodego § 6.1.a), ou vide"),
        Col("sla_at_risk_at", "datetime", "Instant où le ticket devient « à risque », ou vide"),
        Col("sla_breach_at", "datetime", "Instant du dépassement de l'échéance, ou vide"),
        Col("sla_state", "string", "sans_engagement, dans_les_temps, a_risque, depasse, respecte, non_respecte"),
        Col("sla_met", "boolean", "Délai respecté (vide tant que le ticket n'est pas résolu)"),
        Col("sla_paused", "boolean", "Décompte du délai suspendu"),
    ), _tickets),
    Dataset("ticket_events", "Le journal immuable de chaque ticket : qui, quand, quoi (avant/après).", (
        Col("id", "integer", "Identifiant de l'événement"), *_TICKET_REF,
        Col("type", "string", "Type d'événement (ticket.created, status.changed, comment.public, ticket.resolved…)"),
        Col("at", "datetime", "Instant de l'événement"),
        Col("actor_id", "integer", "Identifiant du compte auteur, ou vide (système, demandeur anonyme)"),
        Col("actor_label", "string", "Nom affiché de l'auteur au moment de l'événement"),
        Col("is_public", "boolean", "Visible du demandeur"),
        Col("data", "json", "Détail de l'événement (valeurs avant/après), objet JSON"),
    ), _events),
    Dataset("comments", "Réponses publiques et notes internes des tickets.", (
        Col("id", "integer", "Identifiant du commentaire"), *_TICKET_REF,
        Col("author_id", "integer", "Identifiant du compte auteur, ou vide"),
        Col("author_label", "string", "Nom affiché de l'auteur"),
        Col("is_internal", "boolean", "Note interne (agents seulement)"),
        Col("is_from_requester", "boolean", "Écrit par le demandeur"),
        Col("body", "text", "Texte"),
        Col("created_at", "datetime", "Date"),
    ), _comments),
    Dataset("attachments", "Pièces jointes des tickets ; le fichier lui-même est dans le dossier attachments/ de "
            "l'archive, au chemin indiqué par la colonne path.", (
        Col("id", "integer", "Identifiant de la pièce jointe"), *_TICKET_REF,
        Col("comment_id", "integer", "Commentaire auquel le fichier est joint, ou vide"),
        Col("filename", "string", "Nom du fichier"),
        Col("content_type", "string", "Type MIME"),
        Col("size", "integer", "Taille en octets"),
        Col("sha256", "string", "Empreinte SHA-256 du contenu, enregistrée au dépôt"),
        Col("is_internal", "boolean", "Pièce jointe interne (agents seulement)"),
        Col("created_at", "datetime", "Dépôt"),
        Col("path", "string", "Chemin du fichier dans l'archive (attachments/<id>/<nom>), vide si le fichier "
            "manque sur le serveur"),
    ), _attachments),
    Dataset("notifications", "Notifications envoyées (ou à envoyer) au sujet des tickets de la commune : la file "
            "d'envoi (outbox), par canal.", (
        Col("id", "integer", "Identifiant de la notification"), *_TICKET_REF,
        Col("channel", "string", "email, inapp ou webhook"),
        Col("kind", "string", "Modèle du message (request_received, status_changed…)"),
        Col("event_type", "string", "Type de l'événement du ticket qui l'a causée"),
        Col("user_id", "integer", "Compte destinataire, ou vide"),
        Col("email", "string", "Adresse e-mail destinataire, ou vide"),
        Col("endpoint_id", "integer", "Webhook destinataire (webhook_endpoints.id), ou vide"),
        Col("subject", "string", "Objet du message"),
        Col("payload", "json", "Contenu du message (objet JSON)"),
        Col("status", "string", "pending (en attente), sent (envoyée), dead (abandonnée)"),
        Col("attempts", "integer", "Nombre de tentatives d'envoi"),
        Col("created_at", "datetime", "Création"),
        Col("sent_at", "datetime", "Envoi, ou vide"),
        Col("read_at", "datetime", "Lecture (notification dans l'application), ou vide"),
        Col("last_error", "text", "Dernière erreur d'envoi, ou vide"),
    ), _notifications),
    Dataset("subscriptions", "Adhésions de la commune aux services (offre Toodego, dates).", (
        Col("id", "integer", "Identifiant de l'adhésion"),
        Col("service", "string", "Code du service"),
        Col("offer", "string", "partenaire, connecte, abonne, ou vide"),
        Col("starts_on", "date", "Début"),
        Col("ends_on", "date", "Fin, ou vide"),
    ), _subscriptions),
    Dataset("schools", "Établissements scolaires de la commune (laclasse.com).", (
        Col("id", "integer", "Identifiant"), Col("uai", "string", "Code UAI"), Col("name", "string", "Nom"),
    ), _schools),
    Dataset("school_administrators", "Administrateurs des établissements (support de 1er niveau laclasse.com) : "
            "seulement ce qui permet de les identifier et de les joindre.", (
        Col("id", "integer", "Identifiant"), Col("school_uai", "string", "Code UAI de l'établissement"),
        Col("user_id", "integer", "Identifiant du compte"), Col("given_name", "string", "Prénom"),
        Col("family_name", "string", "Nom"), Col("email", "string", "Adresse e-mail"),
        Col("created_at", "datetime", "Désignation"),
    ), _school_administrators),
    Dataset("memberships", "Habilitations des agents, référents et responsables de la commune : seulement le "
            "compte, le nom, l'adresse e-mail et le rôle (ni identifiants de connexion, ni sessions, ni jetons).", (
        Col("id", "integer", "Identifiant de l'habilitation"), Col("user_id", "integer", "Identifiant du compte"),
        Col("given_name", "string", "Prénom"), Col("family_name", "string", "Nom"),
        Col("email", "string", "Adresse e-mail"),
        Col("role", "string", "agent, referent, manager (responsable) ou admin"),
        Col("service", "string", "Service auquel le rôle est limité, ou vide (tous)"),
        Col("created_at", "datetime", "Attribution"),
    ), _memberships),
    Dataset("routing_rules", "Règles de routage qui nomment la commune (critère ou organisation désignée).", (
        Col("id", "integer", "Identifiant"), Col("position", "integer", "Ordre d'évaluation"),
        Col("name", "string", "Nom"), Col("service", "string", "Service (critère), ou vide"),
        Col("category_code", "string", "Catégorie (critère), ou vide"),
        Col("commune", "string", "Commune (critère), code INSEE, ou vide"),
        Col("offer", "string", "Offre (critère), ou vide"),
        Col("target", "string", "metropole, commune, school ou organisation"),
        Col("target_organisation", "string", "Organisation désignée (code), ou vide"),
        Col("level", "integer", "Niveau de support"), Col("reason", "text", "Motif affiché"),
        Col("is_active", "boolean", "Règle active"),
    ), _routing_rules),
    Dataset("webhook_endpoints", "Points de réception des webhooks du connecteur de la commune (sans leur "
            "secret).", (
        Col("id", "integer", "Identifiant"), Col("url", "string", "Adresse"), Col("is_active", "boolean", "Actif"),
        Col("events", "json", "Types d'événements envoyés (liste JSON), ou vide : tous"),
        Col("created_at", "datetime", "Création"), Col("secret_rotated_at", "datetime", "Dernier renouvellement du "
                                                                                       "secret, ou vide"),
    ), _webhook_endpoints),
    Dataset("security_alerts", "Alertes de sécurité signalées par la commune (annexe Toodego § 8).", (
        Col("id", "integer", "Identifiant"), *_TICKET_REF, Col("service", "string", "Service concerné"),
        Col("reported_by_id", "integer", "Compte qui a signalé, ou vide"),
        Col("detected_at", "datetime", "Détection de l'attaque"), Col("reported_at", "datetime", "Signalement"),
    ), _security_alerts),
)
DATASET_NAMES = tuple(d.name for d in DATASETS)
COMMUNE_COLUMNS = (
    Col("id", "integer", "Identifiant"), Col("code", "string", "Code INSEE"), Col("name", "string", "Nom"),
    Col("population", "integer", "Population, ou vide"), Col("is_active", "boolean", "Commune active"),
)


# --- the schema document -----------------------------------------------------------------------------------

FORMATS = (
    "Chaque table est fournie deux fois : en JSON Lines (`<table>.jsonl`, un objet JSON par ligne, UTF-8) et en "
    "CSV (`<table>.csv`, UTF-8 avec BOM, séparateur `;`, guillemets doubles si nécessaire, fins de ligne CRLF, "
    "première ligne : noms des colonnes). Dates et heures : ISO 8601 en UTC (`2026-03-10T09:00:00+00:00`) ; "
    "dates seules : `AAAA-MM-JJ`. Valeur absente : `null` en JSON, champ vide en CSV. Booléens : `true`/`false` "
    "(les deux formats). Colonnes `json` : objet ou liste JSON (en CSV, le texte JSON)."
)


def schema_document() -> dict[str, Any]:
    """The schema of the export, as written to schema.json."""
    def cols(columns: tuple[Col, ...]) -> list[dict[str, str]]:
        return [{"name": c.name, "type": c.type, "description": c.description} for c in columns]

    return {
        "schema_version": SCHEMA_VERSION,
        "formats": FORMATS,
        "files": {
            "manifest.json": "Pour chaque fichier de l'archive : nombre de lignes (tables), taille en octets, "
                             "SHA-256 ; date de l'export, commune, version du schéma.",
            "schema.json": "Ce schéma, lisible par programme.",
            "SCHEMA.md": "Ce schéma, lisible par une personne.",
            "commune.json": "La commune exportée (un objet JSON).",
            "attachments/<id>/<nom>": "Le contenu de chaque pièce jointe (voir la table attachments).",
        },
        "commune": cols(COMMUNE_COLUMNS),
        "tables": [{"name": d.name, "files": [f"{d.name}.jsonl", f"{d.name}.csv"], "description": d.description,
                    "columns": cols(d.columns)} for d in DATASETS],
    }


def schema_markdown() -> str:
    lines = [
        f"# Export d'une commune — schéma (version {SCHEMA_VERSION})", "",
        ("Convention-cadre, art. 12.3 : « la Métropole s'engage à permettre à la Commune de récupérer "
         "l'ensemble des données qui lui sont propres »."), "",
        "## Formats", "", FORMATS, "",
        "## Fichiers", "",
    ]
    for name, text in schema_document()["files"].items():
        lines.append(f"- `{name}` : {text}")
    lines += ["", "## commune.json", "", "| colonne | type | description |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.type} | {c.description} |" for c in COMMUNE_COLUMNS]
    for d in DATASETS:
        lines += ["", f"## {d.name} (`{d.name}.jsonl`, `{d.name}.csv`)", "", d.description, "",
                  "| colonne | type | description |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.description} |" for c in d.columns]
    return "\n".join(lines) + "\n"


# --- writing -------------------------------------------------------------------------------------------------

class _HashingWriter:
    """Counts and hashes the bytes written to a ZIP entry."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.target.write(data)
        self.sha256.update(data)
        self.size += len(data)


@dataclass
class ExportResult:
    commune_code: str
    exported_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    missing_files: list[int] = field(default_factory=list)

    @property
    def tickets(self) -> int:
        return self.counts.get("tickets", 0)


_JSON = json.JSONEncoder(ensure_ascii=False)
_JSON_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _csv_bool(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def _csv_json(value: Any) -> str:
    return "" if value is None else _JSON_SORTED.encode(value)


# Per column type: how a value is written in JSON and in CSV (None: as it is; the csv module writes None as "").
_JSON_CONVERT: dict[str, Callable[[Any], Any] | None] = {"datetime": _iso, "date": _iso}
_CSV_CONVERT: dict[str, Callable[[Any], Any] | None] = {"datetime": _iso, "date": _iso, "boolean": _csv_bool,
                                                       "json": _csv_json}


def attachment_path(attachment_id: int, filename: str) -> str:
    """Where an attachment's content sits in the archive (the id keeps equal file names apart)."""
    safe = filename.replace("/", "_").replace("\\", "_").strip() or "fichier"
    return f"attachments/{attachment_id}/{safe}"


class _Zip:
    def __init__(self, fileobj: IO[bytes], now: datetime) -> None:
        self.zf = zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.date_time = now.astimezone(PARIS).timetuple()[:6]
        self.files: list[dict[str, Any]] = []

    def _info(self, name: str, compress: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.date_time)  # type: ignore[arg-type]
        info.compress_type = compress
        info.external_attr = 0o644 << 16
        return info

    def open(self, name: str, compress: int = zipfile.ZIP_DEFLATED) -> IO[bytes]:
        return self.zf.open(self._info(name, compress), "w", force_zip64=True)

    def write_bytes(self, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
        with self.open(name) as fh:
            w = _HashingWriter(fh)
            w.write(data)
        return self._record(name, w, **extra)

    def copy_file(self, name: str, source: IO[bytes], compress: int = zipfile.ZIP_DEFLATED,
                  **extra: Any) -> dict[str, Any]:
        with self.open(name, compress) as fh:
            w = _HashingWriter(fh)
            while chunk := source.read(CHUNK):
                w.write(chunk)
        return self._record(name, w, **extra)

    def _record(self, name: str, w: _HashingWriter, **extra: Any) -> dict[str, Any]:
        entry = {"name": name, "bytes": w.size, "sha256": w.sha256.hexdigest(), **extra}
        self.files.append(entry)
        return entry

    def close(self) -> None:
        self.zf.close()


def _batches(stmt: sa.Select[Any], batch_size: int) -> Iterator[tuple[list[str], list[Any]]]:
    """The statement's column names and rows, `batch_size` rows at a time (a server-side cursor on PostgreSQL;
    plain rows, no ORM objects, so nothing accumulates in the session)."""
    # Core execution on the session's connection (same transaction): no ORM result processing.
    result = db.session.connection().execute(stmt.execution_options(yield_per=batch_size))
    keys = list(result.keys())
    for partition in result.partitions():
        yield keys, partition


def _convert(row: Any, converters: list[Callable[[Any], Any] | None]) -> list[Any]:
    return [v if f is None else f(v) for v, f in zip(row, converters, strict=True)]


def _write_dataset(z: _Zip, dataset: Dataset, org_id: int, batch_size: int, result: ExportResult,
                   transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Write one table as <name>.jsonl and <name>.csv: each batch of rows goes at once to the ZIP entry (JSON
    Lines) and to a temporary CSV file, which is copied into the ZIP afterwards (one entry is written at a time)."""
    names = [c.name for c in dataset.columns]
    json_conv = [_JSON_CONVERT.get(c.type) for c in dataset.columns]
    csv_conv = [_CSV_CONVERT.get(c.type) for c in dataset.columns]
    count = 0
    with tempfile.TemporaryFile() as csv_tmp:
        text = io.TextIOWrapper(csv_tmp, encoding="utf-8", newline="")
        text.write("\ufeff")
        writer = csv.writer(text, **CSV_DIALECT)  # type: ignore[arg-type]
        writer.writerow(names)
        with z.open(f"{dataset.name}.jsonl") as fh:
            out = _HashingWriter(fh)
            for keys, rows in _batches(dataset.query(org_id), batch_size):
                if transform is not None:
                    rows = [[r[n] for n in names] for r in (transform(dict(zip(keys, row, strict=True)))
                                                            for row in rows)]
                elif keys != names:
                    raise RuntimeError(f"{dataset.name}: the query's columns {keys} differ from the schema's")
                lines = [_JSON.encode(dict(zip(names, _convert(row, json_conv), strict=True))) for row in rows]
                out.write(("\n".join(lines) + "\n").encode("utf-8"))
                writer.writerows(_convert(row, csv_conv) for row in rows)
                count += len(lines)
        z._record(f"{dataset.name}.jsonl", out, rows=count)
        text.flush()
        csv_tmp.seek(0)
        z.copy_file(f"{dataset.name}.csv", csv_tmp, rows=count)
        text.detach()
    result.counts[dataset.name] = count


STORED_TYPES = ("image/png", "image/jpeg", "image/gif", "application/pdf")


def write_export(org: Organisation, fileobj: IO[bytes], now: datetime, *, batch_size: int = BATCH_SIZE) -> ExportResult:
    """Write the commune's export as a ZIP to `fileobj` (a seekable binary file). Reads only."""
    result = ExportResult(org.code, now)
    attachments_dir = Path(current_app.config["ATTACHMENTS_DIR"])
    z = _Zip(fileobj, now)
    try:
        z.write_bytes("SCHEMA.md", schema_markdown().encode("utf-8"))
        z.write_bytes("schema.json", json.dumps(schema_document(), ensure_ascii=False, indent=2).encode("utf-8"))
        commune = {"id": org.id, "code": org.code, "name": org.name, "population": org.population,
                   "is_active": org.is_active}
        z.write_bytes("commune.json", json.dumps(commune, ensure_ascii=False, indent=2).encode("utf-8"))

        def attachment_row(row: dict[str, Any]) -> dict[str, Any]:
            present = (attachments_dir / row["storage_key"]).is_file()
            row["path"] = attachment_path(row["id"], row["filename"]) if present else None
            return row

        for dataset in DATASETS:
            _write_dataset(z, dataset, org.id, batch_size, result,
                           attachment_row if dataset.name == "attachments" else None)
        # The files themselves, after their metadata (a ZIP is written one entry at a time).
        for row in (dict(zip(keys, r, strict=True)) for keys, rows in _batches(_attachments(org.id), batch_size)
                    for r in rows):
            source = attachments_dir / row["storage_key"]
            if not source.is_file():
                result.missing_files.append(row["id"])
                continue
            compress = zipfile.ZIP_STORED if row["content_type"] in STORED_TYPES else zipfile.ZIP_DEFLATED
            with source.open("rb") as fh:
                entry = z.copy_file(attachment_path(row["id"], row["filename"]), fh, compress,
                                    attachment_id=row["id"])
            if entry["sha256"] != row["sha256"]:
                entry["sha256_mismatch"] = True
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "exported_at": now.isoformat(),
            "commune": {"id": org.id, "code": org.code, "name": org.name},
            "counts": result.counts,
            "missing_attachment_files": result.missing_files,
            "files": z.files,
        }
        with z.open("manifest.json") as fh:
            fh.write(json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
        result.files = z.files
    finally:
        z.close()
    return result


def export_filename(org: Organisation, now: datetime) -> str:
    return f"export-{org.code}-{now.astimezone(PARIS):%Y%m%d-%H%M%S}.zip"


def write_export_to_path(org: Organisation, path: Path, now: datetime, *,
                         batch_size: int = BATCH_SIZE) -> ExportResult:
    """Write the export to `path` atomically (a partial file never takes the final name)."""
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("wb") as fh:
            result = write_export(org, fh, now, batch_size=batch_size)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return result


def record_export(actor: User | None, org: Organisation, result: ExportResult, now: datetime, *,
                  actor_label: str | None = None) -> None:
    """Write the export to the access log and to the administration journal (in the caller's transaction)."""
    label = actor.display_name if actor is not None else (actor_label or "Ligne de commande")
    counts = ", ".join(f"{name} {n}" for name, n in result.counts.items() if n)
    log_access(actor, "commune.export", commune_id=org.id, detail=f"{org.name} ({org.code}) : {counts}"[:300],
               actor_label=label)
    db.session.add(AuditEvent(
        at=now, actor_id=actor.id if actor is not None else None, actor_label=label[:200],
        action="organisation.exported", object_type="organisation", object_id=org.id,
        object_label=f"{org.name} ({org.code})",
        data={"before": None, "after": {"schema_version": SCHEMA_VERSION, "exported_at": now.isoformat(),
                                        **{name: n for name, n in result.counts.items()}}},
    ))


def export_commune_cli(code: str, out: Path, now: datetime) -> str:
    """`sau export-commune <code_insee> <out.zip>`: export, log, commit; returns the summary line.
    Raises click.ClickException with a French message for an unknown commune or an unwritable path."""
    import getpass

    import click

    from sau.orgs.models import ORG_COMMUNE

    org = db.session.scalar(sa.select(Organisation).where(Organisation.code == code.strip(),
                                                          Organisation.kind == ORG_COMMUNE))
    if org is None:
        raise click.ClickException(f"commune inconnue : {code!r} (code INSEE à 5 chiffres, ex. 69081)")
    if not out.parent.is_dir():
        raise click.ClickException(f"dossier introuvable : {out.parent}")
    try:
        result = write_export_to_path(org, out, now)
    except OSError as exc:
        db.session.rollback()
        raise click.ClickException(f"écriture impossible : {exc}") from None
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    record_export(None, org, result, now, actor_label=f"Ligne de commande ({user})")
    db.session.commit()
    counts = ", ".join(f"{name} {n}" for name, n in result.counts.items())
    return f"Export de {org.name} ({org.code}) écrit dans {out} : {counts}."
