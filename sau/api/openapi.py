"""The OpenAPI 3.1 document of /api/v1; request bodies come from the pydantic schemas themselves."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from sau.api import schemas
from sau.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from sau.api.idempotency import MAX_KEY_LENGTH as IDEMPOTENCY_KEY_MAX
from sau.api.idempotency import REPLAYED_HEADER


def _body(model: type[schemas.Body]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/Error"},
    "401": {"$ref": "#/components/responses/Error"},
    "403": {"$ref": "#/components/responses/Error"},
    "404": {"$ref": "#/components/responses/Error"},
    "409": {"$ref": "#/components/responses/Error"},
    "413": {"$ref": "#/components/responses/Error"},
    "415": {"$ref": "#/components/responses/Error"},
    "422": {"$ref": "#/components/responses/Error"},
}
REF = {"name": "reference", "in": "path", "required": True, "schema": {"type": "string", "example": "SAU-2026-000123"}}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "description": "Version du ticket lue (optimistic locking) ; 409 si elle a changé.",
            "schema": {"type": "string", "example": "\"3\""}}


def _action(summary: str, model: type[schemas.Body]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": [REF, IF_MATCH], "requestBody": _body(model),
                     "responses": {"200": {"description": "Ticket modifié",
                                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ticket"}}}},
                                   **ERRORS}}}


IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": "Clé choisie par le client (par exemple un UUID) pour rejouer un appel sans risque : un appel "
                   "répété avec la même clé et la même requête n'agit qu'une fois et reçoit la réponse d'origine "
                   "(avec l'en-tête Idempotent-Replayed). La même clé avec une autre requête : 422 ; un appel "
                   "encore en cours avec cette clé : 409. Une réponse d'erreur n'est pas conservée.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX,
               "example": "5f0c6e1e-8a7b-4c1e-9a55-0d3c2b1f7e42"},
}
REPLAYED_RESPONSE_HEADER = {
    "description": "Présent (valeur « true ») quand la réponse est celle, rejouée, d'un appel précédent ayant la "
                   "même clé Idempotency-Key : rien n'a été refait.",
    "schema": {"type": "string", "enum": ["true"]},
}


def _with_idempotency(paths: dict[str, Any]) -> dict[str, Any]:
    """Every POST takes the Idempotency-Key header, and its success answers may carry Idempotent-Replayed."""
    for item in paths.values():
        operation = item.get("post")
        if operation is None:
            continue
        operation["parameters"] = [*operation.get("parameters", []),
                                   {"$ref": "#/components/parameters/IdempotencyKey"}]
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                response["headers"] = {**response.get("headers", {}),
                                       REPLAYED_HEADER: {"$ref": "#/components/headers/IdempotentReplayed"}}
    return paths


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    from sau.incidents.schemas import NewIncidentBody

    models = [schemas.NewRequestBody, schemas.PriorityBody, schemas.CommentBody, schemas.StatusBody,
              schemas.AssignBody, schemas.EscalateBody, schemas.TransferBody]
    models.append(NewIncidentBody)
    components: dict[str, Any] = {m.__name__: m.model_json_schema(ref_template="#/components/schemas/{model}")
                                  for m in models}
    org = {"type": "object", "properties": {"kind": {"type": "string", "enum": ["metropole", "commune"]},
                                             "code": {"type": "string"}, "name": {"type": "string"}}}
    components["Organisation"] = org
    components["Ticket"] = {
        "type": "object",
        "required": ["reference", "status", "routed_to", "level"],
        "properties": {
            "reference": {"type": "string", "pattern": "^SAU-[0-9]{4}-[0-9]{6}$"},
            "kind": {"type": "string", "enum": ["demande", "incident"]},
            "status": {"type": "string",
                       "enum": ["nouveau", "en_cours", "en_attente", "resolu", "clos", "rejete", "doublon"]},
            "routed_to": {"$ref": "#/components/schemas/Organisation"},
            "level": {"type": "integer", "enum": [1, 2]},
            "priority": {"type": ["string", "null"], "enum": ["bloquant", "majeur", "mineur", None]},
            "subject": {"type": "string"}, "description": {"type": "string"},
            "version": {"type": "integer"},
            "tracking_url": {"type": "string", "description": "Lien de suivi secret, donné une fois à un demandeur "
                                                              "non connecté."},
        },
    }
    components["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}},
    }
    account_ref = {"type": "object", "required": ["sub"], "additionalProperties": False,
                   "properties": {"issuer": {"type": "string", "maxLength": 500,
                                             "description": "Défaut : l'émetteur de GrandLyon Connect"},
                                  "sub": {"type": "string", "maxLength": 255}}}
    components["DeletedAccountsPage"] = {
        "type": "object", "required": ["since", "deleted_accounts", "next"],
        "properties": {"since": {"type": "string", "format": "date-time"},
                       "deleted_accounts": {"type": "array", "items": {
                           "type": "object", "required": ["issuer", "sub", "deleted_at"],
                           "properties": {"issuer": {"type": "string"}, "sub": {"type": "string"},
                                          "deleted_at": {"type": "string", "format": "date-time"}}}},
                       "next": {"type": ["string", "null"], "description": "Page suivante, ou null"}}}
    components["ReportedAccounts"] = {
        "oneOf": [{"type": "array", "items": account_ref, "minItems": 1, "maxItems": 10000},
                  {"type": "object", "required": ["accounts"],
                   "properties": {"accounts": {"type": "array", "items": account_ref, "minItems": 1,
                                               "maxItems": 10000}}}]}
    components["ReportedAccountsResult"] = {
        "type": "object", "required": ["reported", "erased", "unknown"],
        "properties": {"reported": {"type": "integer"}, "erased": {"type": "integer"}, "unknown": {"type": "integer"}}}
    ticket_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ticket"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "SAU — API du Service d'Assistance à l'Utilisateur", "version": "1.0.0",
                 "description": "Demandes d'aide et tickets de la Métropole de Lyon et des communes."},
        "servers": [{"url": "/api/v1"}],
        "paths": _with_idempotency({
            "/requests": {"post": {
                "summary": "Créer une demande d'aide (routée vers l'organisation compétente)",
                "requestBody": _body(schemas.NewRequestBody),
                "responses": {"201": {"description": "Demande créée", **ticket_response}, **ERRORS,
                              "429": {"$ref": "#/components/responses/Error"}},
            }},
            "/incidents": {"post": {
                "summary": "Signaler un incident ou une alerte de sécurité d'une commune (support de la Métropole)",
                "requestBody": _body(NewIncidentBody),
                "responses": {"201": {"description": "Incident créé", **ticket_response}, **ERRORS},
            }},
            "/requests/{reference}": {"get": {
                "summary": "Lire une demande (demandeur ou agents habilités)",
                "parameters": [REF, {"name": "X-Tracking-Token", "in": "header", "required": False,
                                     "schema": {"type": "string"}}],
                "responses": {"200": {"description": "La demande", **ticket_response}, **ERRORS},
            }},
            "/tickets": {"get": {
                "summary": "File des tickets visibles par l'agent",
                "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 200}},
                               {"name": "offset", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "Tickets"}, **ERRORS},
            }},
            "/tickets/{reference}/priority": _action("Fixer la priorité après diagnostic", schemas.PriorityBody),
            "/tickets/{reference}/comments": _action("Réponse publique ou note interne", schemas.CommentBody),
            "/tickets/{reference}/assign": _action("Attribuer le ticket", schemas.AssignBody),
            "/tickets/{reference}/status": _action("Changer le statut (transition du workflow)", schemas.StatusBody),
            "/tickets/{reference}/escalate": _action("Escalader au niveau 2 (Métropole)", schemas.EscalateBody),
            "/tickets/{reference}/transfer": _action("Transférer à une autre organisation", schemas.TransferBody),
            "/me": {"get": {"summary": "L'utilisateur connecté", "responses": {"200": {"description": "Moi"},
                                                                               "401": ERRORS["401"]}}},
            "/services": {"get": {"summary": "Services et catégories", "responses": {"200": {"description": "Liste"}}}},
            "/reports/sla": {"get": {
                "summary": "Respect des délais par commune sur une période (objectif 95 %)",
                "parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
                                "description": d} for n, d in (
                    ("period", "AAAA-MM, AAAA-T1 à AAAA-T4 ou AAAA (défaut : le mois en cours)"),
                    ("start", "AAAA-MM-JJ (avec end)"), ("end", "AAAA-MM-JJ, inclus"),
                    ("service", "code du service"), ("priority", "bloquant ou majeur"),
                    ("kind", "demande ou incident"))],
                "responses": {"200": {"description": "Engagés, respectés, dépassés, taux et objectif par commune"},
                              "401": ERRORS["401"], "403": ERRORS["403"], "422": ERRORS["422"]},
            }},
            "/deleted-accounts": {
                "get": {
                    "summary": "Comptes supprimés depuis une date : (issuer, sub) pour que les connecteurs suppriment "
                               "leurs copies (annexe Toodego § 8). Autorisation accounts:read.",
                    "parameters": [
                        {"name": "since", "in": "query", "required": True, "schema": {"type": "string"},
                         "description": "Date ISO 8601 (AAAA-MM-JJ) ou date-heure ; sans décalage : heure de Paris"},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                        {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"},
                         "description": "Suite d'une page (donnée par « next »)"}],
                    "responses": {"200": {"description": "Comptes supprimés, du plus ancien au plus récent",
                                          "content": {"application/json": {"schema": {
                                              "$ref": "#/components/schemas/DeletedAccountsPage"}}}},
                                  "401": ERRORS["401"], "403": ERRORS["403"], "422": ERRORS["422"]},
                },
                "post": {
                    "summary": "Signaler des comptes supprimés par GrandLyon Connect : les comptes correspondants sont "
                               "effacés ici (idempotent). Autorisation accounts:write, jetons de la Métropole.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ReportedAccounts"}}}},
                    "responses": {"200": {"description": "Comptes signalés, effacés ici, inconnus",
                                          "content": {"application/json": {"schema": {
                                              "$ref": "#/components/schemas/ReportedAccountsResult"}}}},
                                  "401": ERRORS["401"], "403": ERRORS["403"], "415": ERRORS["415"],
                                  "422": ERRORS["422"]},
                },
            },
        }),
        "components": {
            "schemas": components,
            "responses": {"Error": {"description": "Erreur",
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "parameters": {"IdempotencyKey": IDEMPOTENCY_PARAMETER},
            "headers": {"IdempotentReplayed": REPLAYED_RESPONSE_HEADER},
        },
    }
