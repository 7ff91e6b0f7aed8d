"""The access log (issue 8, point 5): who read or exported which personal data, kept (retention) and shown to
admins only, with filters and a CSV export."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, csrf_token, user_id


def _entries(app: Flask, **where: Any) -> list[Any]:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry

    with app.app_context():
        stmt = sa.select(AccessLogEntry).filter_by(**where).order_by(AccessLogEntry.id)
        entries = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return entries


def _org_id(app: Flask, code: str) -> int:
    from sau.extensions import db
    from sau.orgs.models import Organisation

    with app.app_context():
        return int(db.session.scalar(sa.select(Organisation.id).where(Organisation.code == code)))


def _ticket_id(app: Flask, reference: str) -> int:
    from sau.extensions import db
    from sau.tickets.models import Ticket

    with app.app_context():
        return int(db.session.scalar(sa.select(Ticket.id).where(Ticket.reference == reference)))


def test_agent_viewing_a_ticket_writes_one_entry(app: Flask, login_as: Any, make_request: Any) -> None:
    reference = make_request(requester="usager_a", commune="69081")
    assert _entries(app) == []
    client = login_as("agent_ecully")
    assert client.get(f"/agent/tickets/{reference}").status_code == 200
    entries = _entries(app)
    assert len(entries) == 1
    entry = entries[0]
    assert entry.action == "ticket.view"
    assert entry.actor_id == user_id(app, "agent_ecully") and entry.actor_label == "Étienne Roux"
    assert entry.subject_user_id == user_id(app, "usager_a")
    assert entry.ticket_id == _ticket_id(app, reference) and entry.commune_id == _org_id(app, "69081")
    assert entry.detail == reference
    assert entry.at.isoformat() == "2026-03-10T09:00:00+00:00"
    # A second view is a second read.
    client.get(f"/agent/tickets/{reference}")
    assert len(_entries(app, action="ticket.view")) == 2


def test_api_ticket_read_by_staff_is_logged_not_by_the_requester(app: Flask, login_as: Any,
                                                                 make_request: Any) -> None:
    reference = make_request(requester="usager_a", commune="69081")
    assert login_as("usager_a").get(f"/api/v1/requests/{reference}").status_code == 200
    assert _entries(app) == [], "a usager reading their own request is not an access to someone else's data"
    assert login_as("agent_ecully").get(f"/api/v1/requests/{reference}").status_code == 200
    entries = _entries(app)
    assert [(e.action, e.detail) for e in entries] == [("ticket.view", f"{reference} (API)")]
    assert entries[0].subject_user_id == user_id(app, "usager_a")


def test_refused_ticket_view_writes_nothing(app: Flask, login_as: Any, make_request: Any) -> None:
    reference = make_request(requester="usager_a", commune="69081")
    assert login_as("agent_tassin").get(f"/agent/tickets/{reference}").status_code == 404
    assert _entries(app) == []


def test_export_writes_one_entry(app: Flask, login_as: Any, make_request: Any) -> None:
    make_request(requester="usager_a", commune="69081")
    client = login_as("admin")
    token = csrf_token(client, "/admin/export-commune")
    response = client.post("/admin/export-commune", data={"csrf_token": token, "commune": "69081"})
    assert response.status_code == 200
    response.close()
    entries = _entries(app)
    assert [e.action for e in entries] == ["commune.export"]
    assert entries[0].commune_id == _org_id(app, "69081") and entries[0].actor_id == user_id(app, "admin")


def test_account_lists_are_logged(app: Flask, login_as: Any) -> None:
    client = login_as("admin")
    assert client.get("/admin/habilitations?organisation=69081").status_code == 200
    entries = _entries(app, action="user.list")
    assert len(entries) == 1 and entries[0].commune_id == _org_id(app, "69081")
    assert "Écully" in entries[0].detail


def test_page_shows_entries_to_admins(app: Flask, login_as: Any, make_request: Any) -> None:
    reference = make_request(requester="usager_a", commune="69081")
    login_as("agent_ecully").get(f"/agent/tickets/{reference}")
    response = login_as("admin").get("/admin/journal-acces")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "Journal des accès aux données personnelles" in html
    assert "1 entrée." in html
    assert "Étienne Roux" in html and "Consultation d&#39;un ticket" in html and reference in html
    assert DEMO_EMAILS["usager_a"] not in html, "the page names the account by number, never by its e-mail"


@pytest.mark.parametrize("role", ["agent_ecully", "referent_ecully", "agent_metropole", "manager_metropole",
                                  "usager_a"])
def test_page_is_refused_to_non_admins(login_as: Any, role: str) -> None:
    client = login_as(role)
    assert client.get("/admin/journal-acces").status_code == 403
    assert client.get("/admin/journal-acces.csv").status_code == 403


def test_anonymous_is_sent_to_sign_in(client: Any) -> None:
    for path in ("/admin/journal-acces", "/admin/journal-acces.csv"):
        response = client.get(path)
        assert response.status_code in (302, 303) and "/auth/login" in response.headers["Location"]


def _seed(app: Flask, clock: Any) -> None:
    """Entries by two actors, in two communes, over two months."""
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.access_log import log_access

    with app.app_context():
        agent = db.session.get(User, user_id(app, "agent_ecully"))
        tassin = db.session.get(User, user_id(app, "agent_tassin"))
        ecully_id, tassin_id = _org_id(app, "69081"), _org_id(app, "69244")
        clock.set(clock.now() - timedelta(days=40))  # end of January
        log_access(agent, "ticket.view", commune_id=ecully_id, detail="janvier")
        db.session.commit()
        clock.set(clock.now() + timedelta(days=40))
        log_access(agent, "ticket.view", commune_id=ecully_id, detail="mars-ecully")
        log_access(tassin, "ticket.view", commune_id=tassin_id, detail="mars-tassin")
        log_access(None, "commune.export", commune_id=tassin_id, detail="mars-cli", actor_label="Ligne de commande")
        db.session.commit()


@pytest.mark.parametrize("query, shown", [
    ("", {"janvier", "mars-ecully", "mars-tassin", "mars-cli"}),
    ("?period=2026-03", {"mars-ecully", "mars-tassin", "mars-cli"}),
    ("?start=2026-01-01&end=2026-02-15", {"janvier"}),
    ("?commune=69244", {"mars-tassin", "mars-cli"}),
    ("?action=commune.export", {"mars-cli"}),
    ("?acteur=systeme", {"mars-cli"}),
    ("?period=2026-03&commune=69081", {"mars-ecully"}),
])
def test_filters(app: Flask, clock: Any, login_as: Any, query: str, shown: set[str]) -> None:
    _seed(app, clock)
    all_details = {"janvier", "mars-ecully", "mars-tassin", "mars-cli"}
    html = login_as("admin").get("/admin/journal-acces" + query).get_data(as_text=True)
    for detail in all_details:
        assert (f"<td>{detail}</td>" in html) == (detail in shown), (query, detail)


def test_actor_filter(app: Flask, clock: Any, login_as: Any) -> None:
    _seed(app, clock)
    html = login_as("admin").get(f"/admin/journal-acces?acteur={user_id(app, 'agent_tassin')}").get_data(as_text=True)
    assert "<td>mars-tassin</td>" in html and "<td>mars-ecully</td>" not in html
    assert '<option value="' + str(user_id(app, "agent_tassin")) + '" selected>Tania Petit</option>' in html


@pytest.mark.parametrize("query, message", [
    ("?period=2026-13", "Mois invalide."),
    ("?start=hier", "Date de début attendue au format AAAA-MM-JJ."),
    ("?acteur=quelqu'un", "Auteur inconnu : choisissez-le dans la liste."),
    ("?commune=99999", "Commune inconnue : choisissez-la dans la liste."),
])
def test_bad_filters_are_explained(login_as: Any, query: str, message: str) -> None:
    client = login_as("admin")
    response = client.get("/admin/journal-acces" + query)
    assert response.status_code == 422
    assert message.replace("'", "&#39;") in response.get_data(as_text=True)
    assert client.get("/admin/journal-acces.csv" + query).status_code == 422


def test_pagination(app: Flask, login_as: Any) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import log_access

    with app.app_context():
        for i in range(55):
            log_access(None, "ticket.view", detail=f"n{i:02d}", actor_label="Système")
        db.session.commit()
    client = login_as("admin")
    first = client.get("/admin/journal-acces").get_data(as_text=True)
    assert "55 entrées." in first and "Page 1 sur 2" in first and "Page suivante" in first
    assert "<td>n54</td>" in first and "<td>n04</td>" not in first
    second = client.get("/admin/journal-acces?page=2").get_data(as_text=True)
    assert "<td>n04</td>" in second and "<td>n00</td>" in second and "<td>n54</td>" not in second


def test_csv_export(app: Flask, clock: Any, login_as: Any) -> None:
    _seed(app, clock)
    response = login_as("admin").get("/admin/journal-acces.csv?commune=69244")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment;" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert {r["detail"] for r in rows} == {"mars-tassin", "mars-cli"}
    assert {r["commune_code_insee"] for r in rows} == {"69244"}
    assert next(r for r in rows if r["detail"] == "mars-cli")["auteur"] == "Ligne de commande"
    # Exporting the log is itself an access.
    exports = _entries(app, action="access_log.export")
    assert len(exports) == 1 and "commune=69244" in exports[0].detail


def test_entries_are_append_only(app: Flask) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry, log_access

    with app.app_context():
        log_access(None, "ticket.view", actor_label="Système")
        db.session.commit()
        entry = db.session.scalar(sa.select(AccessLogEntry))
        entry.detail = "modifié"
        with pytest.raises(RuntimeError, match="immutable"):
            db.session.flush()
        db.session.rollback()
        entry = db.session.scalar(sa.select(AccessLogEntry))
        db.session.delete(entry)
        with pytest.raises(RuntimeError, match="immutable"):
            db.session.flush()
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 1


def test_entry_is_rolled_back_with_its_transaction(app: Flask) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry, log_access

    with app.app_context():
        log_access(None, "ticket.view", actor_label="Système")
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 0


def test_retention_purge(app: Flask, clock: Any) -> None:
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry, log_access, purge_expired

    now = clock.now()
    with app.app_context():
        for days in (400, 366, 364, 0):
            clock.set(now - timedelta(days=days))
            log_access(None, "ticket.view", detail=f"{days}", actor_label="Système")
        db.session.commit()
        assert app.config["ACCESS_LOG_RETENTION_DAYS"] == 365
        assert purge_expired(now) == 2
        db.session.commit()
        assert sorted(db.session.scalars(sa.select(AccessLogEntry.detail))) == ["0", "364"]
        assert purge_expired(now) == 0, "a second run deletes nothing more"
        assert purge_expired(now, days=0) == 0, "0: keep everything"
        app.config["ACCESS_LOG_RETENTION_DAYS"] = 30
        assert purge_expired(now) == 1


def test_purge_job_is_scheduled(app: Flask) -> None:
    from sau.scheduler import build_scheduler

    assert "access-log-purge" in {job.id for job in build_scheduler(app).get_jobs()}


def test_pseudonymise_actor(app: Flask) -> None:
    from sau.auth.models import User
    from sau.extensions import db
    from sau.privacy.access_log import AccessLogEntry, log_access, pseudonymise_actor

    with app.app_context():
        agent = db.session.get(User, user_id(app, "agent_ecully"))
        log_access(agent, "ticket.view")
        log_access(None, "ticket.view", actor_label="Système")
        db.session.commit()
        assert pseudonymise_actor(agent.id, "Utilisateur supprimé n° 1") == 1
        db.session.commit()
        labels = set(db.session.scalars(sa.select(AccessLogEntry.actor_label)))
        assert labels == {"Utilisateur supprimé n° 1", "Système"}
