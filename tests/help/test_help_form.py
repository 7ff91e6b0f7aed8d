"""The HTML help form (/aide): reachable with a service and a page URL, FAQ suggestions before submitting,
French messages next to every invalid field, attachments limited in size and type and stored on disk,
CSRF protection, and a reference with a tracking link on success."""
from __future__ import annotations

import hashlib
import html
import io
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sau.extensions import db
from sau.tickets.models import Attachment, Ticket
from tests.conftest import csrf_token, ticket_count

FORM = "/aide?service=toodego"
PAGE_URL = "https://www.toodego.com/demarches/inscription-cantine/?etape=3"


def tiny_png() -> bytes:
    """A real 1×1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def valid_form(client, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf_token(client, FORM),
        "service": "toodego",
        "page_url": PAGE_URL,
        "category": "teleservice-communal",
        "commune": "69081",
        "subject": "Impossible de valider l'inscription à la cantine",
        "description": "À la dernière étape, le bouton « Valider » reste grisé.",
        "email": "parent@example.org",
    }
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def stored_files(app) -> set[str]:
    directory = Path(app.config["ATTACHMENTS_DIR"])
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def field_error(page: str, field: str) -> str | None:
    """The message shown next to `field` (the macro's `<p class="error-message" id="<field>-erreur">`)."""
    match = re.search(rf'<p class="error-message" id="{field}-erreur">(.*?)</p>', page, re.DOTALL)
    return html.unescape(match.group(1)).strip() if match else None


def summary_links(page: str) -> dict[str, str]:
    """The error summary at the top: {field id: message}."""
    match = re.search(r'<div class="alert alert-error" role="alert"[^>]*id="resume-erreurs">(.*?)</div>', page,
                      re.DOTALL)
    if not match:
        return {}
    return {a: html.unescape(m).strip() for a, m in re.findall(r'<a href="#([^"]*)">(.*?)</a>', match.group(1))}


# --- reaching the form ------------------------------------------------------------------------------------------


def test_help_without_service_lists_the_sau_services(client):
    response = client.get("/aide")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for name, code in (("Toodego", "toodego"), ("laclasse.com", "laclasse"), ("GrandLyon Connect", "grandlyon-connect"),
                       ("data.grandlyon.com", "data-grandlyon")):
        assert name in page and f"service={code}" in page
    assert "service=geonet" not in page  # no SAU for Geonet


def test_unknown_service_is_404_with_the_list(client):
    response = client.get("/aide?service=minitel")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "« minitel » n&#39;existe pas" in page or "« minitel » n'existe pas" in page
    assert "service=toodego" in page


def test_geonet_explains_it_has_no_sau(client):
    response = client.get("/aide?service=geonet")
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "Geonet n'est pas couvert par le SAU" in page
    assert "référent SIG" in page
    assert 'name="subject"' not in page  # no form to fill in


def test_page_url_is_carried_into_the_hidden_field(client):
    response = client.get("/aide", query_string={"service": "toodego", "page": PAGE_URL})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    hidden = re.search(r'<input id="page_url" name="page_url" type="hidden" value="([^"]*)">', page)
    assert hidden and html.unescape(hidden.group(1)) == PAGE_URL
    assert re.search(r'<input id="service" name="service" type="hidden" value="toodego">', page)


def test_demo_service_page_links_to_the_help_form(client):
    page = client.get("/demo/service/toodego").get_data(as_text=True)
    assert "/aide/embed.js" in page or "/aide?service=toodego" in page


# --- FAQ suggestions --------------------------------------------------------------------------------------------


def test_faq_suggestions_are_rendered_server_side(client):
    page = html.unescape(client.get(f"{FORM}&q=confirmation+par+courriel").get_data(as_text=True))
    assert "Je n'ai pas reçu l'e-mail de confirmation de ma démarche" in page
    assert "no-reply@toodego.com" in page
    assert "Comment joindre une pièce justificative" not in page  # only what matches


def test_faq_suggestions_are_per_service(client):
    page = html.unescape(client.get("/aide?service=laclasse&q=confirmation").get_data(as_text=True))
    assert "e-mail de confirmation de ma démarche" not in page
    assert "Aucune question fréquente ne correspond à « confirmation »" in page


def test_faq_json_endpoint(client):
    data = client.get("/aide/faq.json?service=toodego&q=justificatif").get_json()
    assert [e["question"] for e in data["entries"]] == ["Comment joindre une pièce justificative à ma démarche ?"]
    assert data["entries"][0]["answer"].startswith("À l'étape")
    assert client.get("/aide/faq.json?service=geonet&q=compte").get_json() == {"entries": []}
    assert client.get("/aide/faq.json?service=inconnu&q=compte").get_json() == {"entries": []}
    mot_de_passe = client.get("/aide/faq.json?service=laclasse&q=mot de passe oublié").get_json()["entries"]
    assert mot_de_passe[0]["question"] == "J'ai oublié mon mot de passe laclasse.com"


# --- success ----------------------------------------------------------------------------------------------------


def test_anonymous_submission_gives_a_reference_and_a_tracking_link(app, client):
    response = client.post(FORM, data=valid_form(client))

    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/aide/merci/(SAU-\d{4}-\d{6})", response.headers["Location"])
    assert match, response.headers["Location"]
    reference = match.group(1)
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    page = html.unescape(thanks.get_data(as_text=True))
    assert reference in page and "Écully" in page
    link = re.search(rf'href="(/suivi/{reference}\?jeton=[^"]+)"', page)
    assert link, "the thanks page must give the secret tracking link"
    assert f"http://sau.test/suivi/{reference}?jeton=" in page  # the full link to keep

    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        assert ticket.page_url == PAGE_URL and ticket.requester_email == "parent@example.org"
        assert ticket.organisation.code == "69081" and ticket.status == "nouveau"
    # The link works from another browser (e.g. the e-mail opened on a phone).
    other = app.test_client()
    assert other.get(link.group(1)).status_code == 303
    assert reference in other.get(f"/suivi/{reference}").get_data(as_text=True)
    # The token is shown once: reloading the thanks page no longer shows it.
    assert "jeton=" not in client.get(response.headers["Location"]).get_data(as_text=True)


def test_signed_in_usager_submits_without_email(app, login_as):
    usager = login_as("usager_a")
    response = usager.post(FORM, data=valid_form(usager, email=""))
    assert response.status_code == 303
    reference = response.headers["Location"].rsplit("/", 1)[1]
    assert "jeton=" not in usager.get(response.headers["Location"]).get_data(as_text=True)
    assert reference in usager.get("/mes-demandes").get_data(as_text=True)


# --- invalid fields ---------------------------------------------------------------------------------------------

INVALID = {
    "missing-subject": ({"subject": ""}, "subject", "Indiquez l'objet de votre demande."),
    "subject-too-long": ({"subject": "x" * 201}, "subject", "L'objet ne doit pas dépasser 200 caractères."),
    "missing-description": ({"description": ...}, "description", "Décrivez votre demande."),
    "description-too-short": ({"description": "Aidez"}, "description",
                              "La description doit compter entre 10 et 10000 caractères."),
    "invalid-email": ({"email": "parent-at-example"}, "email",
                      "Adresse e-mail invalide (exemple : prenom.nom@exemple.fr)."),
    "missing-email-anonymous": ({"email": ""}, "email", "Indiquez votre adresse e-mail pour être tenu informé."),
    "missing-category": ({"category": ""}, "category", "Choisissez une catégorie."),
    "unknown-category": ({"category": "pizza"}, "category", "Catégorie inconnue pour ce service."),
    "unknown-commune": ({"commune": "75056"}, "commune",
                        "Commune inconnue (code INSEE attendu, par exemple 69081 pour Écully)."),
    "communal-without-commune": ({"commune": ""}, "commune", "Indiquez la commune concernée par ce téléservice."),
}


@pytest.mark.parametrize(("changes", "field", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_field_shows_a_french_message_next_to_it(app, client, changes, field, message):
    response = client.post(FORM, data=valid_form(client, **changes))

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    shown = field_error(page, field)
    assert shown == message, shown
    assert summary_links(page).get(field) == shown
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"', page)
    assert "<title>Erreur" in page
    assert ticket_count(app) == 0
    # What the usager typed is kept.
    if field != "subject":
        assert "Impossible de valider l&#39;inscription à la cantine" in page


def test_several_invalid_fields_are_all_reported(app, client):
    response = client.post(FORM, data=valid_form(client, subject="", description="", email="faux"))
    assert response.status_code == 422
    summary = summary_links(response.get_data(as_text=True))
    assert {"subject", "description", "email"} <= set(summary)
    assert ticket_count(app) == 0


def test_laclasse_needs_a_school(app, client):
    form = valid_form(client, service="laclasse", category="connexion", commune=...)
    response = client.post("/aide?service=laclasse", data=form)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "school") == "Choisissez votre établissement scolaire."
    form["school"] = "0690900A"
    response = client.post("/aide?service=laclasse", data=form)
    assert response.status_code == 303


def test_geonet_post_is_refused(app, client):
    response = client.post("/aide?service=geonet", data=valid_form(client, service="geonet"))
    assert response.status_code == 422
    assert ticket_count(app) == 0


@pytest.mark.parametrize("field", ["subject", "description", "page_url", "email"])
def test_a_nul_character_is_refused_in_french_next_to_its_field(app, client, field):
    """U+0000 cannot be stored in a PostgreSQL text column: the form says so, rather than failing when written."""
    value = {"email": "parent\x00@example.org"}.get(field, valid_form(client)[field] + "\x00")
    response = client.post(FORM, data=valid_form(client, **{field: value}))
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "caractère nul (U+0000)" in page
    if field != "page_url":  # a hidden field: its error shows in the form's summary
        assert "caractère nul" in (field_error(page, field) or "")
    assert ticket_count(app) == 0


def test_post_without_csrf_token_is_refused_in_french(app, client):
    response = client.post(FORM, data=valid_form(client, csrf_token=...))
    assert response.status_code == 400
    assert "jeton de sécurité" in html.unescape(response.get_data(as_text=True))
    response = client.post(FORM, data=valid_form(client, csrf_token="falsifié"))
    assert response.status_code == 400
    assert ticket_count(app) == 0


# --- attachments ------------------------------------------------------------------------------------------------


def test_valid_png_is_stored_on_disk_and_downloadable_by_the_requester(app, client, login_as):
    png = tiny_png()
    data = valid_form(client) | {"attachments": [(io.BytesIO(png), "capture écran.png", "image/png")]}
    response = client.post(FORM, data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    reference = response.headers["Location"].rsplit("/", 1)[1]

    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        [attachment] = ticket.attachments
        assert attachment.sha256 == hashlib.sha256(png).hexdigest() and attachment.size == len(png)
        assert attachment.content_type == "image/png" and attachment.filename.endswith(".png")
        on_disk = Path(app.config["ATTACHMENTS_DIR"]) / attachment.storage_key
        assert on_disk.read_bytes() == png  # the content lives outside the database
        url = f"/pieces-jointes/{attachment.id}/{attachment.filename}"
        assert "attachment.added" in [e.type for e in ticket.events]

    with client.get(url) as download:
        assert download.status_code == 200 and download.data == png
        assert download.mimetype == "image/png"
        assert "attachment" in download.headers["Content-Disposition"]
    with login_as("agent_ecully").get(url) as download:
        assert download.status_code == 200
    assert app.test_client().get(url).status_code == 404  # a stranger
    assert login_as("agent_tassin").get(url).status_code == 404
    assert client.get(f"/pieces-jointes/{attachment.id}/autre.png").status_code == 404


def _exe() -> bytes:
    return b"MZ\x90\x00" + b"\x00" * 60


BAD_ATTACHMENTS = {
    "executable": (lambda: [(io.BytesIO(_exe()), "facture.exe")], {}, "Types acceptés : PNG, JPEG, GIF, PDF ou texte."),
    "content-does-not-match-extension": (lambda: [(io.BytesIO(_exe()), "photo.png")], {},
                                         "Contenu du fichier non reconnu."),
    "pdf-that-is-not-a-pdf": (lambda: [(io.BytesIO(b"<html>hello</html>"), "scan.pdf")], {},
                              "Contenu du fichier non reconnu."),
    "oversized": (lambda: [(io.BytesIO(tiny_png() + b"\x00" * 2048), "grande.png")], {"MAX_ATTACHMENT_BYTES": 1024},
                  "1 Ko au plus par fichier."),
    "too-many-files": (lambda: [(io.BytesIO(tiny_png()), f"capture{i}.png") for i in range(4)], {},
                       "3 fichiers au plus."),
    "empty-file": (lambda: [(io.BytesIO(b""), "vide.txt")], {}, "Fichier vide."),
}


@pytest.mark.parametrize(("files", "config", "message"), BAD_ATTACHMENTS.values(), ids=BAD_ATTACHMENTS.keys())
def test_bad_attachment_is_refused_and_nothing_is_created(app, client, files, config, message):
    app.config.update(config)
    before = stored_files(app)
    data = valid_form(client) | {"attachments": files()}

    response = client.post(FORM, data=data, content_type="multipart/form-data")

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_error(page, "attachments") == message
    assert summary_links(page).get("attachments") == message
    assert ticket_count(app) == 0
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
    assert stored_files(app) == before


def test_attachment_limits_are_announced_in_french(app, client):
    app.config.update(MAX_ATTACHMENT_BYTES=512 * 1024, MAX_ATTACHMENTS=2)
    page = html.unescape(client.get(FORM).get_data(as_text=True))
    assert "2 fichiers au plus, 512 Ko chacun" in page
