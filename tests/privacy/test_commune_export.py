"""A commune's full export (convention art. 12.3; issue 8, point 4): the demo commune (Écully, 69081) round-trips
through the ZIP, the manifest's checksums match, attachments are byte-identical, nothing of another commune
leaks in; admins only, CSRF required; logged to the access log and to the administration journal."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, csrf_token

ECULLY = "69081"
TASSIN = "69244"
# Strings that exist only in the other commune's data: none may appear anywhere in Écully's export.
TASSIN_MARKERS = ("TASSIN-SUBJECT-7f3a", "TASSIN-DESCRIPTION-7f3a", "tassin.only.7f3a@example.org",
                  "TASSIN-COMMENT-7f3a", "TASSIN-NOTE-7f3a", "tassin-file-7f3a.txt", "TASSIN-FILE-BYTES-7f3a")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _user(email: str) -> Any:
    from sau.auth.models import User
    from sau.extensions import db

    return db.session.scalar(sa.select(User).where(User.email == email))


def _work(app: Flask, reference: str, comments: list[tuple[str, bool]], files: list[tuple[str, str, bytes]]) -> None:
    """Comment on a ticket (as the admin, who may work any ticket) and attach files."""
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.tickets import attachments as att
    from sau.tickets import operations as ops

    with app.app_context():
        ticket = ops.get_ticket(reference)
        admin = _user(DEMO_EMAILS["admin"])
        now = now_utc()
        for body, internal in comments:
            ops.add_comment(ticket, admin, body, now, internal=internal)
        if files:
            stored = att.store(ticket, [att.Upload(n, t, d) for n, t, d in files], now)
            ops.record_event(ticket, "attachment.added", now, admin, {"files": [a.filename for a in stored]})
        db.session.commit()


@pytest.fixture()
def populated(app: Flask, make_request: Any) -> dict[str, Any]:
    """Écully: three requests (an account holder's, an anonymous one, a school one), comments, attachments;
    Tassin: one request whose every field carries a marker."""
    a = make_request(requester="usager_a", commune=ECULLY, subject="Paiement cantine refusé")
    b = make_request(email="anonyme@example.org", commune=ECULLY, subject="Inscription périscolaire")
    c = make_request(requester="usager_b", commune=ECULLY, subject="Démarche bloquée, réessai")
    _work(app, a, [("Nous regardons votre demande.", False), ("Vu avec le service finances.", True)],
          [("capture.png", "image/png", PNG), ("notes.txt", "text/plain", "Numéro de dossier 42\n".encode())])
    _work(app, b, [("Pouvez-vous préciser ?", False)], [("justificatif.txt", "text/plain", b"Justificatif\n")])
    t = make_request(email="tassin.only.7f3a@example.org", commune=TASSIN, subject="TASSIN-SUBJECT-7f3a",
                     description="TASSIN-DESCRIPTION-7f3a")
    _work(app, t, [("TASSIN-COMMENT-7f3a", False), ("TASSIN-NOTE-7f3a", True)],
          [("tassin-file-7f3a.txt", "text/plain", b"TASSIN-FILE-BYTES-7f3a\n")])
    return {"ecully": [a, b, c], "tassin": t}


def _export(app: Flask, login_as: Any, code: str = ECULLY) -> zipfile.ZipFile:
    client = login_as("admin")
    token = csrf_token(client, "/admin/export-commune")
    response = client.post("/admin/export-commune", data={"csrf_token": token, "commune": code})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/zip"
    assert f"export-{code}-" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_data()
    response.close()
    return zipfile.ZipFile(io.BytesIO(data))


def _jsonl(zf: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in zf.read(name).decode("utf-8").splitlines()]


def _csv(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    text = zf.read(name).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def _db_ids(app: Flask, code: str) -> dict[str, set[int]]:
    from sau.extensions import db
    from sau.notify.models import Notification
    from sau.orgs.models import Organisation
    from sau.tickets.models import Attachment, Comment, Ticket, TicketEvent

    with app.app_context():
        org_id = db.session.scalar(sa.select(Organisation.id).where(Organisation.code == code))
        scope = sa.or_(Ticket.commune_id == org_id, Ticket.organisation_id == org_id)
        tickets = set(db.session.scalars(sa.select(Ticket.id).where(scope)))

        def children(model: Any) -> set[int]:
            return set(db.session.scalars(sa.select(model.id).where(model.ticket_id.in_(tickets))))

        return {"tickets": tickets, "ticket_events": children(TicketEvent), "comments": children(Comment),
                "attachments": children(Attachment), "notifications": children(Notification)}


def test_demo_commune_round_trips(app: Flask, login_as: Any, populated: dict[str, Any]) -> None:
    from sau.extensions import db
    from sau.tickets import attachments as att
    from sau.tickets.models import Attachment, Ticket

    zf = _export(app, login_as)
    expected = _db_ids(app, ECULLY)
    assert len(expected["tickets"]) == 3 and len(expected["attachments"]) == 3 and len(expected["comments"]) == 3
    assert expected["notifications"], "the requests sent notifications (outbox rows)"

    # Every ticket, event, comment, attachment and notification of the commune, and nothing else.
    for table, ids in expected.items():
        rows = _jsonl(zf, f"{table}.jsonl")
        assert {r["id"] for r in rows} == ids, table
        assert len(rows) == len(ids), f"{table}: duplicates"
        assert {int(r["id"]) for r in _csv(zf, f"{table}.csv")} == ids, f"{table}.csv"
    tickets = {r["reference"]: r for r in _jsonl(zf, "tickets.jsonl")}
    assert set(tickets) == set(populated["ecully"])
    first = tickets[populated["ecully"][0]]
    assert first["requester_email"] == DEMO_EMAILS["usager_a"] and first["requester_family_name"] == "Martin"
    assert first["commune"] == ECULLY and first["service"] == "toodego"
    assert tickets[populated["ecully"][1]]["requester_email"] == "anonyme@example.org"
    with app.app_context():
        db_ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == populated["ecully"][0]))
        assert first["created_at"] == db_ticket.created_at.isoformat()
        assert first["subject"] == db_ticket.subject and first["description"] == db_ticket.description
    events = _jsonl(zf, "ticket_events.jsonl")
    assert {e["type"] for e in events} >= {"ticket.created", "comment.public", "comment.internal", "attachment.added"}
    assert {c["body"] for c in _jsonl(zf, "comments.jsonl")} == {
        "Nous regardons votre demande.", "Vu avec le service finances.", "Pouvez-vous préciser ?"}

    # Reference data of the commune.
    assert {s["service"] for s in _jsonl(zf, "subscriptions.jsonl")} == {"toodego", "laclasse", "grandlyon-connect"}
    assert {s["uai"] for s in _jsonl(zf, "schools.jsonl")} == {"0690900A", "0690901B"}
    assert [a["email"] for a in _jsonl(zf, "school_administrators.jsonl")] == [DEMO_EMAILS["school_admin"]]
    memberships = _jsonl(zf, "memberships.jsonl")
    assert {m["email"] for m in memberships} == {DEMO_EMAILS["agent_ecully"], DEMO_EMAILS["referent_ecully"]}
    assert set(memberships[0]) == {"id", "user_id", "given_name", "family_name", "email", "role", "service",
                                   "created_at"}, "memberships hold only what is needed"
    assert json.loads(zf.read("commune.json"))["code"] == ECULLY

    # Attachments: the files themselves, byte for byte, at the path given by their metadata.
    with app.app_context():
        for row in _jsonl(zf, "attachments.jsonl"):
            content = zf.read(row["path"])
            db_att = db.session.get(Attachment, row["id"])
            assert hashlib.sha256(content).hexdigest() == row["sha256"] == db_att.sha256
            assert content == att.path_of(db_att).read_bytes()
            assert len(content) == row["size"]
    assert zf.read(next(r["path"] for r in _jsonl(zf, "attachments.jsonl") if r["filename"] == "capture.png")) == PNG


def test_manifest_checksums_and_counts(app: Flask, login_as: Any, populated: dict[str, Any]) -> None:
    zf = _export(app, login_as)
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["schema_version"] == 1
    assert manifest["commune"]["code"] == ECULLY
    assert manifest["exported_at"] == "2026-03-10T09:00:00+00:00"
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(zf.namelist()) - {"manifest.json"}, "every file is in the manifest"
    for name, entry in listed.items():
        content = zf.read(name)
        assert entry["bytes"] == len(content), name
        assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert not entry.get("sha256_mismatch"), name
        if name.endswith(".jsonl"):
            assert entry["rows"] == len(content.splitlines()), name
        if name.endswith(".csv"):
            assert entry["rows"] == len(_csv(zf, name)), name
    assert manifest["counts"]["tickets"] == 3
    assert manifest["missing_attachment_files"] == []
    # The documented schema is inside and names every column written.
    schema = json.loads(zf.read("schema.json"))
    assert "SCHEMA.md" in zf.namelist() and "12.3" in zf.read("SCHEMA.md").decode()
    for table in schema["tables"]:
        rows = _jsonl(zf, f"{table['name']}.jsonl")
        header = zf.read(f"{table['name']}.csv").decode("utf-8-sig").splitlines()[0].split(";")
        assert header == [c["name"] for c in table["columns"]], table["name"]
        for row in rows:
            assert list(row) == header, table["name"]


def test_nothing_of_another_commune(app: Flask, login_as: Any, populated: dict[str, Any]) -> None:
    zf = _export(app, login_as)
    tassin_ids = _db_ids(app, TASSIN)
    assert tassin_ids["tickets"] and tassin_ids["attachments"]
    markers = (*TASSIN_MARKERS, populated["tassin"])
    for name in zf.namelist():
        text = zf.read(name).decode("utf-8", errors="replace")
        for marker in markers:
            assert marker not in text and marker not in name, f"{marker} found in {name}"
    # And by id: no row of a ticket-scoped table points at a Tassin ticket.
    for table in ("tickets", "ticket_events", "comments", "attachments", "notifications"):
        for row in _jsonl(zf, f"{table}.jsonl"):
            ticket_id = row["id"] if table == "tickets" else row["ticket_id"]
            assert ticket_id not in tassin_ids["tickets"], table
            assert row["id"] not in tassin_ids[table], table
    # The other way round: Tassin's export holds its ticket and none of Écully's.
    other = _export(app, login_as, TASSIN)
    refs = {r["reference"] for r in _jsonl(other, "tickets.jsonl")}
    assert populated["tassin"] in refs
    assert not refs & set(populated["ecully"])


def test_queue_tickets_of_the_commune_are_included(app: Flask, login_as: Any, make_request: Any) -> None:
    """A ticket about another commune transferred to Écully's queue belongs to Écully's export too."""
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.orgs.models import Organisation
    from sau.tickets import operations as ops

    ref = make_request(email="x@example.org", commune=TASSIN, subject="Transféré")
    with app.app_context():
        ticket = ops.get_ticket(ref)
        ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == ECULLY))
        ops.transfer(ticket, _user(DEMO_EMAILS["admin"]), ecully, "Relève d'Écully", now_utc())
        db.session.commit()
    zf = _export(app, login_as)
    assert ref in {r["reference"] for r in _jsonl(zf, "tickets.jsonl")}


def test_export_is_logged(app: Flask, login_as: Any, populated: dict[str, Any]) -> None:
    from sau.admin.models import AuditEvent
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    _export(app, login_as)
    with app.app_context():
        entries = db.session.scalars(sa.select(AccessLogEntry).where(AccessLogEntry.action == "commune.export")).all()
        assert len(entries) == 1
        assert entries[0].actor_id == _user(DEMO_EMAILS["admin"]).id
        assert "tickets 3" in entries[0].detail
        audits = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "organisation.exported")).all()
        assert len(audits) == 1 and audits[0].after["tickets"] == 3
        assert audits[0].object_label == "Écully (69081)"


@pytest.mark.parametrize("role", ["agent_ecully", "referent_ecully", "manager_metropole", "agent_metropole",
                                  "usager_a"])
def test_non_admins_are_refused(app: Flask, login_as: Any, populated: dict[str, Any], role: str) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    client = login_as(role)
    assert client.get("/admin/export-commune").status_code == 403
    token = csrf_token(client, "/aide?service=toodego")
    response = client.post("/admin/export-commune", data={"csrf_token": token, "commune": ECULLY})
    assert response.status_code == 403
    assert response.mimetype != "application/zip"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)
                                 .where(AccessLogEntry.action == "commune.export")) == 0


def test_anonymous_is_sent_to_sign_in(client: Any) -> None:
    response = client.get("/admin/export-commune")
    assert response.status_code in (302, 303) and "/auth/login" in response.headers["Location"]
    response = client.post("/admin/export-commune", data={"commune": ECULLY})
    assert response.status_code in (302, 303, 400)
    assert response.mimetype != "application/zip"


def test_csrf_is_required(app: Flask, login_as: Any) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    client = login_as("admin")
    response = client.post("/admin/export-commune", data={"commune": ECULLY})
    assert response.status_code == 400
    assert response.mimetype != "application/zip"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 0


@pytest.mark.parametrize("value, message", [
    ("", "Choisissez la commune à exporter."),
    ("99999", "N&#39;est pas un choix valide."),
    ("metropole", "N&#39;est pas un choix valide."),  # the Métropole is not a commune
    ("<script>alert(1)</script>", "N&#39;est pas un choix valide."),
])
def test_bad_commune_is_refused_in_french(app: Flask, login_as: Any, value: str, message: str) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    client = login_as("admin")
    token = csrf_token(client, "/admin/export-commune")
    response = client.post("/admin/export-commune", data={"csrf_token": token, "commune": value})
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert message in html
    assert "<script>alert(1)</script>" not in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 0


def test_missing_attachment_file_is_reported_not_fatal(app: Flask, login_as: Any, populated: dict[str, Any]) -> None:
    from sau.extensions import db
    from sau.tickets import attachments as att
    from sau.tickets.models import Attachment

    with app.app_context():
        victim = db.session.scalar(sa.select(Attachment).where(Attachment.filename == "notes.txt"))
        att.path_of(victim).unlink()
        victim_id = victim.id
    zf = _export(app, login_as)
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["missing_attachment_files"] == [victim_id]
    row = next(r for r in _jsonl(zf, "attachments.jsonl") if r["id"] == victim_id)
    assert row["path"] is None


def test_cli_export(app: Flask, populated: dict[str, Any], tmp_path: Path) -> None:
    from sau.admin.models import AuditEvent
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    out = tmp_path / "ecully.zip"
    result = app.test_cli_runner().invoke(args=["export-commune", ECULLY, str(out)])
    assert result.exit_code == 0, result.output
    assert "Écully (69081)" in result.output and "tickets 3" in result.output
    with zipfile.ZipFile(out) as zf:
        assert {r["reference"] for r in _jsonl(zf, "tickets.jsonl")} == set(populated["ecully"])
        assert zf.testzip() is None
    assert not (tmp_path / "ecully.zip.part").exists()
    with app.app_context():
        entry = db.session.scalar(sa.select(AccessLogEntry).where(AccessLogEntry.action == "commune.export"))
        assert entry is not None and entry.actor_id is None and entry.actor_label.startswith("Ligne de commande")
        assert db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "organisation.exported")) is not None

    bad = app.test_cli_runner().invoke(args=["export-commune", "00000", str(tmp_path / "x.zip")])
    assert bad.exit_code != 0 and "commune inconnue" in bad.output
    assert not (tmp_path / "x.zip").exists()
    nodir = app.test_cli_runner().invoke(args=["export-commune", ECULLY, str(tmp_path / "absent" / "x.zip")])
    assert nodir.exit_code != 0


def test_export_page_lists_communes_and_tables(login_as: Any) -> None:
    html = login_as("admin").get("/admin/export-commune").get_data(as_text=True)
    assert "Export complet d'une commune" in html
    assert '<option value="69081">Écully (69081)</option>' in html
    assert "tickets.jsonl" in html and "manifest.json" in html


def test_documented_schema_is_current() -> None:
    """docs/export-commune-schema.md (linked from the README) is the schema the export writes as SCHEMA.md;
    regenerate it with `python -c "from sau.privacy.commune_export import schema_markdown; print(schema_markdown(),
    end='')" > docs/export-commune-schema.md` after changing a column."""
    from sau.privacy.commune_export import schema_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "export-commune-schema.md"
    assert doc.read_text(encoding="utf-8") == schema_markdown()
