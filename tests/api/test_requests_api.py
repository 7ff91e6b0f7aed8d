"""`POST /api/v1/requests` and `GET /api/v1/requests/<reference>` (DESIGN.md contract): a valid body gives 201 with
the reference, the status and the organisation it was routed to; only those allowed can read it back; every bad
input is a 4xx JSON error naming the fields, never a 500."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from sau.extensions import db
from sau.tickets.models import Ticket
from tests.conftest import ticket_count

REFERENCE_RE = re.compile(r"^SAU-\d{4}-\d{6}$")
URL = "/api/v1/requests"

VALID: dict[str, Any] = {
    "service": "toodego",
    "category": "teleservice-communal",
    "commune": "69081",
    "subject": "Ma démarche d'inscription est bloquée",
    "description": "Le bouton « Valider » ne répond pas à la dernière étape.",
    "email": "demandeur@example.org",
    "page_url": "https://www.toodego.com/demarches/inscription-cantine/",
}


def body(**changes: Any) -> dict[str, Any]:
    """VALID with `changes` applied; a value of `...` removes the key."""
    data = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def assert_json_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


# --- success ----------------------------------------------------------------------------------------------------


def test_anonymous_request_is_created_routed_and_trackable(app, client):
    response = client.post(URL, json=VALID)

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert REFERENCE_RE.match(data["reference"])
    assert data["status"] == "nouveau"
    assert data["routed_to"] == {"kind": "commune", "code": "69081", "name": "Écully"}
    assert data["level"] == 1
    assert data["service"]["code"] == "toodego" and data["category"] == "teleservice-communal"
    assert data["page_url"] == VALID["page_url"]
    assert response.headers["Location"].endswith(f"/api/v1/requests/{data['reference']}")
    # An anonymous requester gets their secret tracking link once.
    tracking = urlsplit(data["tracking_url"])
    assert tracking.path == f"/suivi/{data['reference']}"
    assert parse_qs(tracking.query)["jeton"][0]
    # Staff-only details are not in the requester's view.
    for staff_key in ("routing_reason", "requester", "comments", "assignee"):
        assert staff_key not in data
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == data["reference"]))
        assert ticket is not None and ticket.requester_email == VALID["email"] and ticket.requester_id is None


def test_metropole_service_is_routed_to_the_metropole(client):
    response = client.post(URL, json=body(service="grandlyon-connect", category="franceconnect", commune=...))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert data["routed_to"] == {"kind": "metropole", "code": "metropole", "name": "Métropole de Lyon"}
    assert data["level"] == 1


def test_signed_in_requester_needs_no_email_and_reads_their_request(app, login_as):
    usager_a = login_as("usager_a")
    response = usager_a.post(URL, json=body(email=...))
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    assert "tracking_url" not in data  # signed in: followed from « Mes demandes »

    read = usager_a.get(response.headers["Location"])
    assert read.status_code == 200
    assert read.get_json()["reference"] == data["reference"]
    assert read.get_json()["subject"] == VALID["subject"]


def _create_anonymous(client) -> tuple[str, str]:
    response = client.post(URL, json=VALID)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()
    token = parse_qs(urlsplit(data["tracking_url"]).query)["jeton"][0]
    return data["reference"], token


def test_anonymous_requester_reads_with_tracking_token_header(app):
    reference, token = _create_anonymous(app.test_client())
    stranger = app.test_client()  # a fresh client: no session, only the token

    response = stranger.get(f"{URL}/{reference}", headers={"X-Tracking-Token": token})
    assert response.status_code == 200
    assert response.get_json()["reference"] == reference
    assert_json_error(stranger.get(f"{URL}/{reference}"), 404, "not_found")
    assert_json_error(stranger.get(f"{URL}/{reference}", headers={"X-Tracking-Token": token + "x"}), 404)


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("usager_a", 200),  # the requester
        ("agent_ecully", 200),  # staff of the routed organisation
        ("referent_ecully", 200),  # the commune's référent sees the commune's tickets
        ("admin", 200),
        ("usager_b", 404),  # another usager: 404, not 403 (no enumeration)
        ("agent_tassin", 404),  # an agent of another commune
        ("school_admin", 404),
        (None, 404),  # anonymous without the tracking token
    ],
)
def test_who_can_read_a_request(app, login_as, role, status):
    created = login_as("usager_a").post(URL, json=body(email=...))
    assert created.status_code == 201
    reference = created.get_json()["reference"]

    client = login_as(role) if role else app.test_client()
    response = client.get(f"{URL}/{reference}")
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 404:
        assert_json_error(response, 404, "not_found")
    else:
        assert response.get_json()["reference"] == reference


def test_staff_view_has_routing_details_and_requester_view_does_not(app, login_as):
    usager_a = login_as("usager_a")
    reference = usager_a.post(URL, json=body(email=...)).get_json()["reference"]

    staff = login_as("agent_ecully").get(f"{URL}/{reference}").get_json()
    assert "Partenaire" in staff["routing_reason"] and staff["needs_triage"] is False
    assert staff["requester"]["email"] == "camille.martin@example.org"
    requester = usager_a.get(f"{URL}/{reference}").get_json()
    assert "routing_reason" not in requester and "requester" not in requester


def test_unknown_reference_is_a_json_404(client):
    assert_json_error(client.get(f"{URL}/SAU-2026-999999"), 404, "not_found")


# --- bad input --------------------------------------------------------------------------------------------------

LONG_EMAIL = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".fr"  # 310 characters, well formed otherwise

INVALID_BODIES = [
    # (id, body, status, expected error code, fields that must be named)
    ("missing-service", body(service=...), 422, "validation_error", {"service"}),
    ("missing-subject", body(subject=...), 422, "validation_error", {"subject"}),
    ("missing-description", body(description=...), 422, "validation_error", {"description"}),
    ("missing-several", {"service": "toodego"}, 422, "validation_error", {"subject", "description"}),
    ("empty-object", {}, 422, "validation_error", {"service", "subject", "description"}),
    ("blank-subject", body(subject="   "), 422, "validation_error", {"subject"}),
    ("subject-too-long", body(subject="x" * 201), 422, "validation_error", {"subject"}),
    ("description-too-long", body(description="x" * 10_001), 422, "validation_error", {"description"}),
    ("description-too-short", body(description="Aidez"), 422, "validation_error", {"description"}),
    ("email-too-long", body(email=LONG_EMAIL), 422, "validation_error", {"email"}),
    ("email-invalid", body(email="pas-une-adresse"), 422, "validation_error", {"email"}),
    ("email-missing-anonymous", body(email=...), 422, "validation_error", {"email"}),
    ("unknown-extra-field", body(priority="bloquant"), 422, "validation_error", {"priority"}),
    ("subject-number", body(subject=42), 422, "validation_error", {"subject"}),
    ("service-list", body(service=["toodego"]), 422, "validation_error", {"service"}),
    ("description-object", body(description={"texte": "bonjour à tous"}), 422, "validation_error", {"description"}),
    ("page-url-not-http", body(page_url="javascript:alert(1)"), 422, "validation_error", {"page_url"}),
    ("page-url-too-long", body(page_url="https://x.example/" + "a" * 2000), 422, "validation_error", {"page_url"}),
    # U+0000 cannot be stored in a PostgreSQL text column: refused, not a 500 when written.
    ("subject-with-nul", body(subject="Connexion\x00impossible"), 422, "validation_error", {"subject"}),
    ("description-with-nul", body(description="Je ne peux pas\x00 me connecter."), 422, "validation_error",
     {"description"}),
    ("unknown-service", body(service="minecraft"), 422, "validation_error", {"service"}),
    ("unknown-commune", body(commune="75056"), 422, "validation_error", {"commune"}),
    ("unknown-category", body(category="pizza"), 422, "validation_error", {"category"}),
    ("missing-category", body(category=...), 422, "validation_error", {"category"}),
    ("category-needs-commune", body(commune=...), 422, "validation_error", {"commune"}),
    ("laclasse-without-school", body(service="laclasse", category="connexion", commune=...), 422,
     "validation_error", {"school"}),
    ("unknown-school", body(service="laclasse", category="connexion", commune=..., school="0000000Z"), 422,
     "validation_error", {"school"}),
    ("school-of-another-commune", body(service="laclasse", category="connexion", commune="69244", school="0690900A"),
     422, "validation_error", {"school"}),
]


@pytest.mark.parametrize(("payload", "status", "code", "fields"), [c[1:] for c in INVALID_BODIES],
                         ids=[c[0] for c in INVALID_BODIES])
def test_invalid_body_is_a_json_error_naming_the_fields(app, client, payload, status, code, fields):
    response = client.post(URL, json=payload)

    error = assert_json_error(response, status, code)
    assert fields <= set(error.get("fields", {})), error
    for message in error["fields"].values():
        assert message.strip()
    assert ticket_count(app) == 0


def test_geonet_is_refused_with_an_explanation(app, client):
    response = client.post(URL, json=body(service="geonet", category=..., commune=...))

    error = assert_json_error(response, 422, "validation_error")
    assert "service" in error["fields"]
    assert "Geonet" in error["message"] and "SAU" in error["message"]
    assert ticket_count(app) == 0


RAW_BODIES = [
    # (id, raw body, content type, status, error code)
    ("malformed-json", b'{"service": "toodego", ', "application/json", 400, "invalid_json"),
    ("not-utf8", b"\xff\xfe{}", "application/json", 400, "invalid_json"),
    ("empty-body", b"", "application/json", 400, "invalid_json"),
    ("json-array", b'["toodego"]', "application/json", 422, "validation_error"),
    ("json-string", b'"toodego"', "application/json", 422, "validation_error"),
    ("json-null", b"null", "application/json", 422, "validation_error"),
    ("text-plain", b'{"service": "toodego"}', "text/plain", 415, "unsupported_media_type"),
    ("form-encoded", b"service=toodego&subject=x", "application/x-www-form-urlencoded", 415,
     "unsupported_media_type"),
    ("no-content-type", b'{"service": "toodego"}', None, 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(("raw", "content_type", "status", "code"), [c[1:] for c in RAW_BODIES],
                         ids=[c[0] for c in RAW_BODIES])
def test_unreadable_body_is_a_json_error(app, client, raw, content_type, status, code):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(URL, data=raw, headers=headers)

    assert_json_error(response, status, code)
    assert ticket_count(app) == 0


@pytest.mark.parametrize("raw", [b"[]", b"42", b"null", b'"texte"'])
def test_non_object_json_says_an_object_is_expected(client, raw):
    error = assert_json_error(client.post(URL, data=raw, content_type="application/json"), 422, "validation_error")
    assert error["message"] == "Le corps de la requête doit être un objet JSON."
    assert error["fields"] == {"body": "Un objet JSON est attendu."}


def test_json_content_type_with_charset_is_accepted(client):
    import json

    response = client.post(URL, data=json.dumps(VALID), headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201, response.get_data(as_text=True)


def test_oversized_body_is_413(app, client):
    limit = app.config["MAX_JSON_BYTES"]
    payload = body(description="x" * (limit + 1))  # bigger than the limit before any field check

    assert_json_error(client.post(URL, json=payload), 413, "payload_too_large")
    assert ticket_count(app) == 0


def test_oversized_body_without_content_length_is_413(app, client):
    """A chunked upload has no Content-Length: the limit is enforced on the bytes actually read."""
    import io
    import json

    limit = app.config["MAX_JSON_BYTES"]
    raw = json.dumps(body(description="x" * (limit + 1))).encode()
    response = client.post(URL, input_stream=io.BytesIO(raw),
                           headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert_json_error(response, 413, "payload_too_large")
    assert ticket_count(app) == 0


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_wrong_method_is_a_json_405(client, method):
    response = getattr(client, method)(URL)
    assert_json_error(response, 405, "method_not_allowed")


def test_unknown_api_route_is_a_json_404(client):
    assert_json_error(client.get("/api/v1/nowhere"), 404, "not_found")


def test_field_errors_are_french(client):
    error = assert_json_error(client.post(URL, json=body(subject="x" * 201, email="faux", extra=1)), 422)
    assert error["fields"]["subject"] == "Trop long : 200 caractères au plus."
    assert error["fields"]["email"] == "Adresse e-mail invalide."
    assert error["fields"]["extra"] == "Champ inconnu."
    assert error["message"].startswith("Certains champs sont invalides")
