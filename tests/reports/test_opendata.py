"""Open data (/donnees-ouvertes): figures equal the SLA dashboard's (itself checked against the pure reference)
and the availability report's; no personal data in the files; the documented schema matches the files; the
snapshot is built on the first request, refreshed at most once per OPENDATA_REFRESH_HOURS, idempotently."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Service
from sau.reports import opendata
from sau.reports.availability_report import availability_report, percent
from sau.reports.compliance import compliance_by_commune
from sau.reports.models import OpenDataSnapshot
from sau.status import operations as status_ops
from sau.tickets import operations as ops
from sau.tickets import sla as ticket_sla
from sau.tickets.models import Ticket
from sla import ComplianceTicket, compliance_by
from sla.availability import month_bounds
from tests.conftest import DEMO_EMAILS

PARIS = ZoneInfo("Europe/Paris")


def _history(app, clock, make_request) -> None:
    """February 2026: Écully 3 tickets (2 bloquant met, 1 bloquant late), Tassin 1 majeur met, 1 mineur, 1
    laclasse ticket in Écully; a 2-hour Toodego outage. March (current month, not published): 1 ticket."""
    clock.set(datetime(2026, 2, 9, 10, tzinfo=PARIS))
    ecully = [make_request(commune="69081", subject=f"Sujet confidentiel {i}", email=f"personne{i}@example.org")
              for i in range(3)]
    tassin = [make_request(commune="69244", subject="Sujet de Tassin") for _ in range(2)]
    make_request(service="grandlyon-connect", category="compte", commune="69081", subject="Sujet GLC")
    with app.app_context():
        agents = {c: db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[r]))
                  for c, r in (("69081", "agent_ecully"), ("69244", "agent_tassin"), ("metro", "agent_metropole"))}
        now = clock.now()
        for i, ref in enumerate(ecully):
            t = ops.get_ticket(ref)
            ops.set_priority(t, agents["69081"], "bloquant", now)
            ops.resolve(t, agents["69081"], "Fait", now + timedelta(days=3 if i == 2 else 0, hours=2))
        t = ops.get_ticket(tassin[0])
        ops.set_priority(t, agents["69244"], "majeur", now)
        ops.resolve(t, agents["69244"], "Fait", now + timedelta(hours=3))
        ops.set_priority(ops.get_ticket(tassin[1]), agents["69244"], "mineur", now)
        toodego = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        status_ops.record_outage(agents["metro"], datetime(2026, 3, 10, 10, tzinfo=PARIS), toodego,
                                 datetime(2026, 2, 11, 9, tzinfo=PARIS), datetime(2026, 2, 11, 11, tzinfo=PARIS),
                                 "total", False, "Panne du serveur", [ecully[0]])
        db.session.commit()
    clock.set(datetime(2026, 3, 10, 10, tzinfo=PARIS))
    make_request(commune="69081", subject="Sujet de mars")


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ticket_figures_equal_the_sla_dashboard(app, clock, make_request, client) -> None:
    _history(app, clock, make_request)
    response = client.get("/donnees-ouvertes/sau-tickets.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = _csv(response.get_data(as_text=True))
    assert {r["mois"] for r in rows} == {"2026-02"}  # complete months only: March is not over
    by_key = {(r["mois"], r["code_insee"], r["service_code"]): r for r in rows}
    ecully = by_key[("2026-02", "69081", "toodego")]
    assert (ecully["tickets"], ecully["engages"], ecully["respectes"], ecully["depasses"], ecully["en_cours"]) == (
        "3", "3", "2", "1", "0")
    assert ecully["conformite_pourcent"] == "66.67" and ecully["conforme"] == "non"
    assert by_key[("2026-02", "69244", "toodego")]["tickets"] == "2"
    assert by_key[("2026-02", "69244", "toodego")]["conforme"] == "oui"
    assert by_key[("2026-02", "69081", "grandlyon-connect")]["engages"] == "0"
    assert by_key[("2026-02", "69081", "grandlyon-connect")]["conformite_pourcent"] == ""
    with app.app_context():
        start, end = month_bounds(2026, 2)
        for service in ("toodego", "laclasse", "grandlyon-connect"):
            for c in compliance_by_commune(start, end, clock.now(), service=service):
                row = by_key.get(("2026-02", c.code, service))
                if c.figures.committed == 0 and row is None:
                    continue
                assert row is not None
                assert (int(row["engages"]), int(row["respectes"]), int(row["depasses"]), int(row["en_cours"])) == (
                    c.figures.committed, c.figures.met, c.figures.breached, c.figures.open)
                assert (row["conforme"] == "oui") == c.figures.is_conforme
        # And the SLA engine's pure reference, per commune and service.
        tickets = db.session.scalars(sa.select(Ticket).where(Ticket.commune_id.is_not(None))).all()
        reference = compliance_by(
            [ComplianceTicket.from_state(t.commune.code, t.service.code, ticket_sla.compute(t, clock.now(), explain=False))
             for t in tickets], start, end, clock.now(), key=lambda t: (t.commune, t.service))
        assert sum(f.committed for f in reference.values()) == 4
        for (commune, service), f in reference.items():
            row = by_key.get(("2026-02", commune, service))
            if row is None:
                assert f.committed == 0
                continue
            assert (int(row["engages"]), int(row["respectes"]), int(row["depasses"])) == (f.committed, f.met, f.breached)
        created = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(
            Ticket.created_at >= start, Ticket.created_at < end, Ticket.commune_id.is_not(None)))
    assert sum(int(r["tickets"]) for r in rows) == created == 6


def test_availability_figures_equal_the_report(app, clock, make_request, client) -> None:
    _history(app, clock, make_request)
    document = client.get("/donnees-ouvertes/sau-disponibilite.json").get_json()
    assert document["licence"]["name"] == "etalab-2.0" and document["genere_le"] == "2026-03-10T09:00:00Z"
    rows = {(r["mois"], r["service_code"]): r for r in document["donnees"]}
    assert len(rows) == 24 * 5 and document["nombre_lignes"] == 120
    feb = rows[("2026-02", "toodego")]
    assert feb["indisponibilite_minutes"] == 120.0 and feb["conforme"] is False
    assert feb["indisponibilites_non_programmees"] == 1 and feb["objectif_pourcent"] == 99.9
    with app.app_context():
        report = availability_report([(2026, 2)], clock.now(), partial_weight=0.5, service="toodego")
    assert feb["disponibilite_pourcent"] == float(percent(report[0].months[0].figure))
    assert rows[("2026-01", "laclasse")]["disponibilite_pourcent"] == 100.0


def test_no_personal_data_in_any_file(app, clock, make_request, client) -> None:
    _history(app, clock, make_request)
    with app.app_context():
        references = list(db.session.scalars(sa.select(Ticket.reference)))
        subjects = list(db.session.scalars(sa.select(Ticket.subject)))
        users = db.session.execute(sa.select(User.email, User.given_name, User.family_name)).all()
        requester_emails = [e for e in db.session.scalars(sa.select(Ticket.requester_email)) if e]
    texts = [client.get(f"/donnees-ouvertes/{name}.{ext}").get_data(as_text=True)
             for name in opendata.RESOURCES for ext in ("csv", "json")]
    blob = "\n".join(texts).casefold()
    assert references and subjects and users and requester_emails
    for value in [*references, *subjects, *requester_emails, *(u.email for u in users),
                  *(f"{u.given_name} {u.family_name}" for u in users), *(u.family_name for u in users),
                  "Panne du serveur", "Sujet confidentiel"]:
        assert value.casefold() not in blob, value
    assert "@" not in blob.replace("etalab", "")
    for name in opendata.RESOURCES:  # only the documented columns
        header = texts[opendata.RESOURCES.index(name) * 2].splitlines()[0].split(",")
        assert header == opendata.field_names(name)


def test_schema_documents_every_column(app, client) -> None:
    package = client.get("/donnees-ouvertes/datapackage.json").get_json()
    assert package["profile"] == "tabular-data-package" and package["licenses"][0]["name"] == "etalab-2.0"
    for resource in package["resources"]:
        schema = client.get(f"/donnees-ouvertes/{resource['name']}.schema.json").get_json()
        assert [f["name"] for f in schema["fields"]] == [f["name"] for f in resource["schema"]["fields"]]
        assert all(f["type"] in ("string", "integer", "number", "boolean", "yearmonth") for f in schema["fields"])
        assert set(schema["primaryKey"]) <= {f["name"] for f in schema["fields"]}
        assert all(f.get("title") for f in schema["fields"])
    page = client.get("/donnees-ouvertes")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Licence Ouverte" in html and "article 7.1" in html
    assert "conformite_pourcent" in html and "Les petits effectifs sont" in html


def test_refresh_is_idempotent_and_served_until_stale(app, clock, make_request) -> None:
    _history(app, clock, make_request)
    with app.app_context():
        settings = opendata.settings(app.config)
        assert opendata.refresh_if_stale(clock.now(), settings) is True  # none yet
        first = {s.name: (s.csv, s.json, s.sha256, s.row_count) for s in db.session.scalars(sa.select(OpenDataSnapshot))}
        opendata.refresh(clock.now(), months=settings.months)
        db.session.commit()
        again = {s.name: (s.csv, s.json, s.sha256, s.row_count) for s in db.session.scalars(sa.select(OpenDataSnapshot))}
        assert again == first and len(again) == 2
        clock.advance(timedelta(hours=23))
        assert opendata.refresh_if_stale(clock.now(), settings) is False  # younger than 24 h: untouched
        clock.advance(timedelta(hours=1))
        assert opendata.refresh_if_stale(clock.now(), settings) is True
        snap = db.session.get(OpenDataSnapshot, opendata.TICKETS)
        assert snap.csv == first[opendata.TICKETS][0] and snap.sha256 == first[opendata.TICKETS][2]
        assert snap.generated_at == clock.now()


def test_served_snapshot_is_the_stored_one_until_refreshed(app, clock, make_request, client) -> None:
    before = client.get("/donnees-ouvertes/sau-tickets.csv")  # built on the first request
    assert before.status_code == 200 and before.headers["Access-Control-Allow-Origin"] == "*"
    assert before.headers["X-Generated-At"] == "2026-03-10T09:00:00Z"
    assert before.get_data(as_text=True).count("\n") == 1  # header only: no ticket in February yet
    _history(app, clock, make_request)
    assert client.get("/donnees-ouvertes/sau-tickets.csv").get_data() == before.get_data()  # not rebuilt
    conditional = client.get("/donnees-ouvertes/sau-tickets.csv", headers={"If-None-Match": before.headers["ETag"]})
    assert conditional.status_code == 304
    clock.advance(timedelta(minutes=5))
    result = app.test_cli_runner().invoke(args=["opendata-refresh"], catch_exceptions=False)
    assert result.exit_code == 0 and "sau-tickets" in result.output, result.output
    after = client.get("/donnees-ouvertes/sau-tickets.csv")
    assert after.get_data() != before.get_data() and after.headers["X-Generated-At"] == "2026-03-10T09:05:00Z"


def test_scheduler_job_refreshes_a_stale_snapshot(app, clock) -> None:
    from sau.scheduler import build_scheduler, run_opendata_refresh

    scheduler = build_scheduler(app)
    assert scheduler.get_job("opendata-refresh") is not None
    run_opendata_refresh(app)
    with app.app_context():
        assert opendata.last_generated() == clock.now()
        assert json.loads(db.session.get(OpenDataSnapshot, opendata.AVAILABILITY).json)["nombre_lignes"] == 120
